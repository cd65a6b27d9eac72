#!/usr/bin/env python3
"""Differential test of the fingerprint: random queries made of tricky
tokens (quotes, escapes, comments, numbers, IN/VALUES lists, LIMIT forms,
UNION, ORDER BY ... ASC, CALL, use, whitespace of every kind, non-ASCII)
go through pt-query-digest's own QueryRewriter::fingerprint and through
sesame's; every difference is printed. Exits 1 on any difference.

    fingerprint_fuzz.py SESAME_FINGERPRINT_BINARY [--queries N] [--seed S]
"""
import argparse
import os
import random
import subprocess
import sys

TOKENS = [
    "SELECT", "select", "Select", " ", "  ", "\t", "\n", "\r\n", "\f", "\v", "IN", "in", "VALUES",
    "values", "value", "Values", "LIMIT", "limit", "OFFSET", "offset", "ORDER BY", "order by", "ASC",
    "asc", "DESC", "UNION", "union", "ALL", "all", "NULL", "null", "TRUE", "true", "False", "CALL",
    "call", "INSERT INTO", "insert ignore into", "REPLACE INTO", "IGNORE", "use", "USE", "(", ")",
    ",", ";", "'", '"', "\\", "#", "--", "-", "/*", "*/", "/*!", "?", ".", "+", "x", "b", "0x1F",
    "12", "3.5", "-7", "1e5", "t1", "users", "user_id", "a", "b1", "\u00e9", "`", "=", "<", "*",
    "FROM", "from", "WHERE", "where", "AND", "(?,?)", "( 1 , 2 )", "('a','b')", "\\'", '\\"',
    "limit ?", "order by a asc", "select a from t", "select a from t union select a from t",
    "/* c */", "-- c\n", "# c\n", "administrator command: ",
    "SELECT /*!40001 SQL_NO_CACHE */ * FROM `", "/*db.t:1/2*/", "inx", "join", "login",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sesame")
    ap.add_argument("--queries", type=int, default=40000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    queries = []
    for _ in range(args.queries):
        parts = [rng.choice(TOKENS) + rng.choice(["", " ", " ", ""]) for _ in range(rng.randint(1, 25))]
        queries.append("".join(parts).encode())
    stdin = b"".join(q + b"\0" for q in queries)
    here = os.path.dirname(os.path.abspath(__file__))
    pt = subprocess.run(["perl", os.path.join(here, "pt_fingerprint.pl")], input=stdin,
                        capture_output=True, check=True).stdout.split(b"\0")
    ours = subprocess.run([args.sesame], input=stdin, capture_output=True, check=True).stdout.split(b"\0")
    bad = [(q, p, m) for q, p, m in zip(queries, pt, ours) if p != m]
    if len(ours) != len(pt):
        bad.append((b"(output count)", str(len(pt)).encode(), str(len(ours)).encode()))
    for q, p, m in bad[:10]:
        print(f"query {q!r}\n  pt     {p!r}\n  sesame {m!r}")
    print(f"fingerprints: {len(queries) - len(bad)} of {len(queries)} random queries (seed {args.seed}) as pt-query-digest")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
