CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- canonical form (NFKC, case-folded): the login key
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_username ON users (username);

CREATE TABLE sessions (
    -- SHA-256 of the token; the token itself is never stored
    token_hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);
