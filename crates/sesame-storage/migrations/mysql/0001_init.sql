-- MySQL 8 / MariaDB 10.11. Timestamps are integer milliseconds since the
-- epoch (UTC), as on SQLite.
CREATE TABLE users (
    id BIGINT NOT NULL AUTO_INCREMENT,
    -- canonical form (NFKC, case-folded): the login key, compared bytewise
    username VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    -- PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash)
    password_hash VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at BIGINT NOT NULL,
    password_changed_at BIGINT NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY users_username (username)
) ENGINE = InnoDB;

-- Sessions live here only when no Redis is configured (--cache).
CREATE TABLE sessions (
    -- SHA-256 of the token; the token itself is never stored
    token_hash BINARY(32) NOT NULL,
    user_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (token_hash),
    KEY sessions_user (user_id),
    KEY sessions_expiry (expires_at),
    CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;

-- Replica lag: every sesame instance writes its clock here on the primary a
-- few times a second; reading it back on a replica says how far behind that
-- replica is (the pt-heartbeat method).
CREATE TABLE heartbeat (
    id TINYINT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB;
INSERT INTO heartbeat (id, ts) VALUES (1, 0);
