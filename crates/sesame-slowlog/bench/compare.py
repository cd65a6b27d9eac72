#!/usr/bin/env python3
"""Compares `sesame slowlog --json` with `pt-query-digest --output json
--limit 100%:10000` (or `--limit 1000000`) on the same log: same classes
(query IDs and fingerprints), same counts, and the same Query_time and
Lock_time statistics (pt prints them with 6 decimals; its 95% and median
come from the same buckets). Exits 1 and prints a diff when they disagree.

sesame lists the classes pt-query-digest's `--limit 100%` lists: when the
log took any time, classes of zero time are left out (and counted in
`not_listed`). pt's classes of zero time are set aside here (it lists them
with `--limit 1000000`), and their number checked against that count.

    compare.py PT.json SESAME.json
    compare.py --mysqldumpslow MYSQLDUMPSLOW.txt SESAME_MYSQLDUMPSLOW.txt
"""
import json
import sys


def load(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return json.load(f)


def compare_digest(pt_path, sesame_path):
    pt = load(pt_path)
    me = load(sesame_path)
    pt_classes = {c["checksum"]: c for c in pt.get("classes", [])}
    me_classes = {c["id"][2:]: c for c in me["classes"]}
    problems = []

    def query_time(c):
        return float(c["metrics"].get("Query_time", {}).get("sum", 0))

    if any(query_time(c) > 0 for c in pt_classes.values()):
        zero_time = [k for k, c in pt_classes.items() if query_time(c) == 0]
        for checksum in zero_time:
            del pt_classes[checksum]
        not_listed = me.get("not_listed", {}).get("classes_zero_time", 0)
        # (With `--limit 100%` pt has usually left them out itself.)
        if zero_time and len(zero_time) != not_listed:
            problems.append(
                f"classes of zero time: pt {len(zero_time)}, sesame not_listed {not_listed}"
            )
    for checksum in sorted(set(pt_classes) | set(me_classes)):
        p, m = pt_classes.get(checksum), me_classes.get(checksum)
        if p is None:
            problems.append(f"only sesame: 0x{checksum} count={m['count']} {m['fingerprint'][:100]!r}")
            continue
        if m is None:
            problems.append(f"only pt:     0x{checksum} count={p['query_count']} {p['fingerprint'][:100]!r}")
            continue
        if int(p["query_count"]) != m["count"]:
            problems.append(f"count 0x{checksum}: pt {p['query_count']} sesame {m['count']} {m['fingerprint'][:80]!r}")
        if not m["fingerprint"].startswith(p["fingerprint"]):
            problems.append(f"fingerprint 0x{checksum}: pt {p['fingerprint']!r} sesame {m['fingerprint']!r}")
        for attrib in ("Query_time", "Lock_time"):
            pm, mm = p["metrics"].get(attrib), m["metrics"].get(attrib)
            if pm is None or mm is None:
                if (pm is None) != (mm is None):
                    problems.append(f"{attrib} 0x{checksum}: pt {pm} sesame {mm}")
                continue
            for stat in ("sum", "min", "max", "pct_95", "median"):
                want = float(pm[stat])
                got = mm.get(stat)
                # Sums are added in another order (threads): allow rounding.
                if got is None or abs(got - want) > 1.5e-6 + 1e-9 * abs(want):
                    problems.append(f"{attrib}.{stat} 0x{checksum}: pt {pm[stat]} sesame {got}")
    total_pt = sum(int(c["query_count"]) for c in pt_classes.values())
    total_me = sum(c["count"] for c in me_classes.values())
    print(
        f"pt-query-digest: {len(pt_classes)} classes, {total_pt} queries; "
        f"sesame: {len(me_classes)} classes, {total_me} queries"
    )
    return problems


def parse_dumpslow(path):
    """mysqldumpslow's report: {statement: (count, 'Count: ...' line)}."""
    classes = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        blocks = f.read().split("\n\n")
    for block in blocks:
        if not block.startswith("Count: "):
            continue
        header, _, statement = block.partition("\n")
        classes[statement] = (int(header.split()[1]), header)
    return classes


def compare_dumpslow(mds_path, sesame_path):
    want = {}
    for statement, value in parse_dumpslow(mds_path).items():
        # mysqldumpslow drops `use db;` but not ``use `db`;`` (and then not
        # SET timestamp either); sesame drops both always.
        if statement.startswith("  use `") and "SET timestamp=N;\n" in statement:
            statement = statement.split("SET timestamp=N;\n", 1)[1]
        want[statement] = value
    got = parse_dumpslow(sesame_path)
    problems = []
    for statement in sorted(set(want) | set(got)):
        w, g = want.get(statement), got.get(statement)
        if w != g:
            problems.append(f"mysqldumpslow {statement[:100]!r}:\n  want {w}\n  got  {g}")
    print(f"mysqldumpslow: {len(want)} statements; sesame --mysqldumpslow: {len(got)}")
    return problems


def main():
    args = sys.argv[1:]
    problems = []
    if args[:1] == ["--mysqldumpslow"]:
        problems += compare_dumpslow(args[1], args[2])
    else:
        problems += compare_digest(args[0], args[1])
    for p in problems[:50]:
        print("  " + p)
    if problems:
        print(f"DIFFERENT: {len(problems)} differences")
        sys.exit(1)
    print("same classes and counts")


if __name__ == "__main__":
    main()
