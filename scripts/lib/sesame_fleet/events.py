"""The instances' event logs, as the proofs and the drills read them: what
the service itself recorded, before the balancer and the shared cores."""

import datetime
import json
import os

# The latency budget of a login (sesame serve's default, the SLO threshold).
BUDGET_MS = 250.0


def logs(directory):
    """Every instance's event log in a fleet's directory, those of the
    instances replaced by deploys too."""
    found = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name, "events.jsonl")
        if name.startswith("sesame-") and os.path.exists(path):
            found.append(path)
    return found


def epoch_of(ts):
    """Seconds since the epoch of an event's `ts`."""
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def login_events(paths, since, until):
    """The login events of the event logs at `paths` between `since` and
    `until` (epoch s); lines that are not events are skipped."""
    for path in paths:
        with open(path) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if isinstance(e, dict) and "outcome" in e and "total_ms" in e and since <= epoch_of(e["ts"]) < until:
                    yield e


def by_answer(paths, since, until):
    """Count and p99 of `total_ms` by kind of answer: `admitted` (answered
    200), `shed` (refused at admission, before any store or hash: no
    `db_role`) and `expired` (admitted, then dropped in the queue past its
    deadline), the two halves of `overloaded`."""
    kinds = {"admitted": [], "shed": [], "expired": []}
    for e in login_events(paths, since, until):
        if e["status"] == 200:
            kinds["admitted"].append(e["total_ms"])
        elif e["outcome"] == "overloaded":
            kinds["expired" if e.get("db_role") else "shed"].append(e["total_ms"])

    def p99(xs):
        xs = sorted(xs)
        return round(xs[min(len(xs) - 1, int(len(xs) * 0.99))], 2) if xs else None

    return {k: {"count": len(v), "p99_ms": p99(v)} for k, v in kinds.items()}


def users_hurt(paths, since, until, group):
    """Logins that failed with a 5xx or took longer than the budget, by
    `group(event)`, with each group's share hurt."""
    groups = {}
    for e in login_events(paths, since, until):
        g = groups.setdefault(group(e), {"logins": 0, "failed": 0, "slow": 0})
        g["logins"] += 1
        if e["status"] >= 500:
            g["failed"] += 1
        elif e["total_ms"] > BUDGET_MS:
            g["slow"] += 1
    for g in groups.values():
        g["hurt_share"] = round((g["failed"] + g["slow"]) / g["logins"], 3)
    return dict(sorted(groups.items()))
