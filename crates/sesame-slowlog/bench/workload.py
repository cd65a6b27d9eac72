#!/usr/bin/env python3
"""Prints a varied SQL workload of a login service for the `mariadb` client
(run it with --comments so comments reach the server and the slow log):
schema, user lookups, sessions, IN lists, multi-row INSERTs, comments,
LIMIT forms, UNION, a stored procedure, NULL/TRUE/FALSE, errors.

    workload.py [--statements N] [--seed S] | mariadb --comments --force ...
"""
import argparse
import random

SCHEMA = """
DROP DATABASE IF EXISTS sesame_slowlog;
CREATE DATABASE sesame_slowlog;
USE sesame_slowlog;
CREATE TABLE users (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  username VARCHAR(64) NOT NULL UNIQUE,
  password_hash VARCHAR(255) NOT NULL,
  locked BOOLEAN NOT NULL DEFAULT FALSE,
  updated_at BIGINT NULL
);
CREATE TABLE sessions (
  token_hash BINARY(32) PRIMARY KEY,
  user_id BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  KEY (user_id)
);
CREATE TABLE login_events (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  ts BIGINT NOT NULL, user_id BIGINT, ip VARCHAR(45), outcome VARCHAR(16), total_ms DOUBLE, note TEXT,
  KEY (user_id, ts)
);
DELIMITER //
CREATE PROCEDURE expire_sessions(IN now_ts BIGINT)
BEGIN
  DELETE FROM sessions WHERE expires_at < now_ts;
END//
DELIMITER ;
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--statements", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(SCHEMA)
    users = 200
    rows = ",\n".join(f"('user{i}', '$argon2id$v=19$m=19456,t=2,p=1$salt{i}$hash{i}', {i % 7 == 0})" for i in range(users))
    print(f"INSERT INTO users (username, password_hash, locked) VALUES {rows};")
    now = 1_795_675_331

    def hexb():
        return "".join(rng.choice("0123456789abcdef") for _ in range(64))

    tokens = []
    forms = [
        lambda: f"SELECT id, password_hash FROM users WHERE username = 'user{rng.randrange(users)}';",
        lambda: f"/* sesame login request_id={rng.randrange(10**9)} */ SELECT id, password_hash FROM users WHERE username = 'user{rng.randrange(users)}';",
        lambda: f"SELECT id, password_hash\n  FROM users -- by name\n WHERE username = \"user{rng.randrange(users)}\";",
        lambda: f"select ID, PASSWORD_HASH from users where USERNAME='user{rng.randrange(users)}';",
        lambda: (tokens.append(hexb()) or f"INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (UNHEX('{tokens[-1]}'), {rng.randrange(1, users)}, {now + 3600});"),
        lambda: f"SELECT user_id, expires_at FROM sessions WHERE token_hash = UNHEX('{rng.choice(tokens) if tokens else hexb()}') AND expires_at > {now};",
        lambda: f"DELETE FROM sessions WHERE token_hash = x'{hexb()}';",
        lambda: f"DELETE FROM sessions WHERE user_id = {rng.randrange(users)};",
        lambda: f"SELECT id, username FROM users WHERE id IN ({', '.join(str(rng.randrange(users)) for _ in range(rng.randrange(1, 30)))});",
        lambda: f"SELECT id FROM users WHERE username IN ({','.join(repr('user%d' % rng.randrange(users)) for _ in range(rng.randrange(1, 8)))}) AND locked = FALSE;",
        lambda: "INSERT INTO login_events (ts, user_id, ip, outcome, total_ms, note) VALUES "
        + ", ".join(
            f"({now}, {rng.randrange(users)}, '10.0.{rng.randrange(256)}.{rng.randrange(256)}', '{rng.choice(['success', 'failure'])}', {rng.random() * 80:.3f}, {rng.choice(['NULL', repr('it' + chr(92) + chr(39) + 's')])})"
            for _ in range(rng.randrange(1, 12))
        )
        + ";",
        lambda: f"UPDATE users SET password_hash = '$argon2id$v=19$m=19456,t=2,p=1${hexb()[:22]}', updated_at = {now} WHERE id = {rng.randrange(users)};",
        lambda: f"SELECT ts, ip, outcome FROM login_events WHERE user_id = {rng.randrange(users)} ORDER BY ts DESC, id ASC {rng.choice(['LIMIT 20', 'LIMIT 20 OFFSET 40', 'LIMIT 40, 20', 'limit 5'])};",
        lambda: f"SELECT COUNT(*) FROM login_events WHERE user_id = {rng.randrange(users)} AND ts > {now - 3600} AND outcome = 'failure';",
        lambda: f"SELECT u.id, u.username\n  FROM users u\n  JOIN sessions s ON s.user_id = u.id\n WHERE s.expires_at > {now}\n   AND u.locked = FALSE\n ORDER BY u.id LIMIT {rng.choice([5, 10])};",
        lambda: f"SELECT id FROM users WHERE username = 'user{rng.randrange(users)}' UNION ALL SELECT id FROM users WHERE username = 'user{rng.randrange(users)}';",
        lambda: f"CALL expire_sessions({now - rng.randrange(100)});",
        lambda: rng.choice(["BEGIN;", "COMMIT;", "SET NAMES utf8mb4;", "SELECT 1;", "SELECT NOW(), TRUE, NULL;", "SHOW TABLES;"]),
        lambda: f"SELECT * FROM users WHERE updated_at IS NULL AND id > {rng.randrange(users)} LIMIT 3;",
    ]
    for _ in range(args.statements):
        print(rng.choice(forms)())


if __name__ == "__main__":
    main()
