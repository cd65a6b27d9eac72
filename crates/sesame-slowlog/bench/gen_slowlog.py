#!/usr/bin/env python3
"""Writes a realistic slow query log of a login service, MariaDB 10.x or
MySQL 8 flavour: user lookups by name, session insert/select/delete, IN
lists, multi-row INSERTs, comments, multi-line queries, a server banner.

    gen_slowlog.py --flavor mariadb|mysql8 --mb 100 [--seed 1] > slow.log
"""
import argparse
import random
import sys
import time

BANNER = {
    "mariadb": "/usr/sbin/mariadbd, Version: 10.11.6-MariaDB-0+deb12u1-log (Debian 12). started with:\n"
    "Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock\n"
    "Time\t\t    Id Command\tArgument\n",
    "mysql8": "/usr/sbin/mysqld, Version: 8.0.36 (MySQL Community Server - GPL). started with:\n"
    "Tcp port: 3306  Unix socket: /var/run/mysqld/mysqld.sock\n"
    "Time                 Id Command    Argument\n",
}


def hexbytes(rng, n):
    return "".join(rng.choice("0123456789ABCDEF") for _ in range(2 * n))


def user(rng):
    return f"user{rng.randrange(1_000_000)}"


def q_lookup(rng, now):
    name = user(rng)
    forms = [
        f"SELECT id, password_hash FROM users WHERE username = '{name}'",
        f"/* sesame login request_id={hexbytes(rng, 8)} */ SELECT id, password_hash FROM users WHERE username = '{name}'",
        f"SELECT id, password_hash\n  FROM users\n WHERE username = '{name}'",
        f"select id, password_hash from users where username = \"{name}\"",
    ]
    return rng.choice(forms), 1, 1, 0


def q_session_insert(rng, now):
    return (
        f"INSERT INTO sessions (token_hash, user_id, expires_at, created_at) VALUES "
        f"(x'{hexbytes(rng, 32)}', {rng.randrange(1_000_000)}, {now + 3600}, {now})",
        0,
        0,
        1,
    )


def q_session_select(rng, now):
    return (
        f"SELECT user_id, expires_at FROM sessions WHERE token_hash = x'{hexbytes(rng, 32)}' AND expires_at > {now}",
        1,
        1,
        0,
    )


def q_session_delete(rng, now):
    if rng.random() < 0.7:
        return f"DELETE FROM sessions WHERE token_hash = x'{hexbytes(rng, 32)}'", 0, 1, 1
    n = rng.randrange(1, 9)
    return f"DELETE FROM sessions WHERE user_id = {rng.randrange(1_000_000)} -- revoke all\n", 0, n, n


def q_in_list(rng, now):
    ids = ", ".join(str(rng.randrange(1_000_000)) for _ in range(rng.randrange(1, 60)))
    if rng.random() < 0.5:
        return f"SELECT id, username FROM users WHERE id IN ({ids})", 10, 10, 0
    names = ",".join(f"'{user(rng)}'" for _ in range(rng.randrange(1, 20)))
    return f"SELECT id, username, locked FROM users WHERE username IN ({names}) AND locked = FALSE", 5, 5, 0


def q_events_insert(rng, now):
    rows = ", ".join(
        f"({now}, {rng.randrange(1_000_000)}, '10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}', "
        f"'{rng.choice(['success', 'failure', 'rate_limited'])}', {rng.random() * 80:.3f}, NULL)"
        for _ in range(rng.randrange(1, 25))
    )
    return (
        f"INSERT INTO login_events (ts, user_id, ip, outcome, total_ms, note) VALUES {rows}",
        0,
        0,
        1,
    )


def q_password_update(rng, now):
    return (
        f"UPDATE users SET password_hash = '$argon2id$v=19$m=19456,t=2,p=1${hexbytes(rng, 16)}', "
        f"updated_at = {now} WHERE id = {rng.randrange(1_000_000)}",
        0,
        1,
        1,
    )


def q_recent_events(rng, now):
    uid = rng.randrange(1_000_000)
    limit = rng.choice(["LIMIT 20", "LIMIT 20 OFFSET 40", "LIMIT 40, 20", "limit 10"])
    return (
        f"SELECT ts, ip, outcome FROM login_events WHERE user_id = {uid} ORDER BY ts DESC, id ASC {limit}",
        20,
        200,
        0,
    )


def q_failures(rng, now):
    return (
        f"SELECT COUNT(*) FROM login_events WHERE user_id = {rng.randrange(1_000_000)} "
        f"AND ts > {now - 3600} AND outcome = 'failure'",
        1,
        300,
        0,
    )


def q_active_users(rng, now):
    return (
        "SELECT u.id, u.username\n"
        "  FROM users u -- only users with a live session\n"
        "  JOIN sessions s ON s.user_id = u.id\n"
        f" WHERE s.expires_at > {now}\n"
        "   AND u.locked = FALSE # not locked out\n"
        f" ORDER BY u.id LIMIT {rng.choice([50, 100])}",
        50,
        5000,
        0,
    )


def q_misc(rng, now):
    return rng.choice(
        [
            ("SET NAMES utf8mb4", 0, 0, 0),
            ("BEGIN", 0, 0, 0),
            ("COMMIT", 0, 0, 0),
            (f"CALL expire_sessions({now})", 0, 50, 50),
            (
                f"SELECT id FROM users WHERE username = '{user(rng)}' UNION ALL SELECT id FROM users WHERE username = '{user(rng)}'",
                2,
                2,
                0,
            ),
            ("SELECT 1", 1, 0, 0),
        ]
    )


MIX = [
    (q_lookup, 30),
    (q_session_insert, 14),
    (q_session_select, 20),
    (q_session_delete, 6),
    (q_in_list, 6),
    (q_events_insert, 6),
    (q_password_update, 3),
    (q_recent_events, 5),
    (q_failures, 4),
    (q_active_users, 2),
    (q_misc, 4),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flavor", choices=["mariadb", "mysql8"], default="mariadb")
    ap.add_argument("--mb", type=float, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    limit = int(args.mb * 1e6)
    now = 1_795_675_331
    out = sys.stdout
    written = 0
    chunk = [BANNER[args.flavor]]
    last_second = None
    db_announced = False
    while written < limit:
        now += 1 if rng.random() < 0.01 else 0
        kind = rng.choices(kinds, weights)[0]
        query, rows_sent, rows_examined, rows_affected = kind(rng, now)
        qt = rng.lognormvariate(-8, 1.2) + (rng.random() < 0.002) * rng.uniform(0.5, 3)
        lt = rng.lognormvariate(-11, 1)
        thread = rng.randrange(1, 400)
        host = f"app-{thread % 12}"
        ip = f"10.0.{thread % 12}.{thread % 250}"
        lines = []
        if args.flavor == "mariadb":
            if now != last_second:
                t = time.gmtime(now)
                lines.append(f"# Time: {time.strftime('%y%m%d', t)} {t.tm_hour:2d}:{t.tm_min:02d}:{t.tm_sec:02d}\n")
            lines.append(f"# User@Host: sesame[sesame] @ {host} [{ip}]\n")
            lines.append(f"# Thread_id: {thread}  Schema: sesame  QC_hit: No\n")
            lines.append(
                f"# Query_time: {qt:.6f}  Lock_time: {lt:.6f}  Rows_sent: {rows_sent}  Rows_examined: {rows_examined}\n"
            )
            lines.append(f"# Rows_affected: {rows_affected}  Bytes_sent: {60 + 40 * rows_sent}\n")
        else:
            t = time.gmtime(now)
            lines.append(f"# Time: {time.strftime('%Y-%m-%dT%H:%M:%S', t)}.{rng.randrange(1_000_000):06d}Z\n")
            lines.append(f"# User@Host: sesame[sesame] @ {host} [{ip}]  Id: {thread:5d}\n")
            lines.append(
                f"# Query_time: {qt:.6f}  Lock_time: {lt:.6f} Rows_sent: {rows_sent}  Rows_examined: {rows_examined}\n"
            )
        last_second = now
        if not db_announced or rng.random() < 0.01:
            lines.append("use sesame;\n")
            db_announced = True
        lines.append(f"SET timestamp={now};\n")
        lines.append(query + ";\n")
        text = "".join(lines)
        chunk.append(text)
        written += len(text)
        if len(chunk) >= 2000:
            out.write("".join(chunk))
            chunk = []
    out.write("".join(chunk))


if __name__ == "__main__":
    main()
