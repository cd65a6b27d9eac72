"""A Jepsen-style checker of the histories that clients record while they
drive the login service through faults (database failover, Redis failover,
network partitions, a frozen instance).

  PYTHONPATH=scripts/lib python3 -m sesame_fleet.history HISTORY.json

prints the report as JSON and exits 1 if any promise was broken, 0 if none
(2 if the history cannot be read).

The promises
------------
1. An acknowledged registration (201) is never lost.
2. Once a password change is acknowledged (204), no login with the old
   password that starts after the acknowledgment succeeds, on any instance,
   across any failover.
3. Once a logout or a password change is acknowledged, the revoked session
   is refused by every instance for every request that starts more than
   `revocation_bound` seconds after the acknowledgment (0 unless given:
   at once; the fleet's instances cache sessions and are allowed 0.05).
4. After a registration is acknowledged, every login with it (with a
   password that is certainly the current one) succeeds unless it is
   answered with a documented refusal: 503 `unavailable` or `overloaded`,
   or 429 `rate_limited` (the `documented` parameter of check()).

The history
-----------
A dict (or a JSON file holding one):

  {"operations": [{"id": int, "client": str, "via": "lb" | instance,
                   "op": "register" | "login" | "change_password"
                         | "logout" | "session",
                   "user": str, "start": float, "end": float,
                   "status": int,          # 0 = no answer
                   "error": str | null,    # the answer's JSON error code
                   "password": str,        # register: set; login: tried
                   "old_password": str, "new_password": str,  # change
                   "session": str}, ...],  # login (200): issued;
                                           # logout/session: used
   "faults": [{"name": str, "args": [str, ...],
               "start": float, "end": float | null}, ...],
   "users_present": [str, ...] | null}     # read once healed; null: unread

Outcomes: 200/201/204 are ok (definite success); 400/401/403/404/409/422/
429 are definite refusals (nothing happened); anything else (0, 5xx, ...)
is ambiguous for a write (register, change_password, logout: it may or may
not have taken effect) and a refusal for a read.

Times: "A before B" is strict (A.end < B.start). Two operations whose
closed windows [start, end] touch or overlap are concurrent.

The rules
---------
Each user is checked on that user's operations only, and nothing assumes
that one user's operations never overlap.

Writes. A registration writes its `password`, a change its
`new_password`. A write that is not definitely refused may have taken
effect; one that answered ok did. An ambiguous write is taken to have
taken effect, if at all, within its own window (with late_writes=True it
may take effect at any time after its start instead, Jepsen's rule for
indeterminate operations: right when a frozen instance can finish a
request after its client gave up, at the price of weaker checks).

Possible passwords for a login (or a change) with window [t, u]: the
password of every write W of the user, not definitely refused, that
started at or before u (so writes concurrent with the login count),
unless W is superseded: some acked write A (a 201 registration or a 204
change) started after W ended and ended before t. For changes that do not
overlap one another this is exactly the fold "start from the registration's
password (acked, or ambiguous: possible too); in order of start, every
change that ended before t: 204 -> {new}, ambiguous -> add new, refused ->
unchanged; then add the new password of every change, not refused, that
had not ended before t but started before the login ended". Unlike the
fold it stays right when changes overlap one another (two overlapping 204
changes may land in either order: both passwords are possible).

Certainly current: a password P is certainly current for an operation O
when the possible set for O's window is exactly {P}, an acked (201)
registration of the user ended before O started, and no change of the
user other than O, not definitely refused, is concurrent with O.

P1. If `users_present` is not null, every user with an acked (201)
    registration must be in it; else a violation names the registration.
P2. A login answering 200 whose password is not possible for its window
    is a violation naming the login and the last acked write (normally a
    204 change) that ended before the login started, or the registration
    if the password was never written at all. A login answering 200 for a
    user never registered (no registration, or only definitely refused
    ones) is a violation naming the login.
P3. A session id is revoked at time e when (a) a logout of that id answered
    ok (204) and ended at e, or (b) a change of the password of the user
    of the login that issued the session (the login answering 200 with
    that session; the earliest, should two carry it) answered 204, ended
    at e, and that login ended before the change started. A `session`
    operation (check) of a revoked id that starts after e + bound (the
    `revocation_bound` parameter, 0 by default) and answers ok (200) is a
    violation naming the check, the revoking operation (the earliest
    revocation) and the issuing login; one that starts within the bound
    may answer either way. A logout answering 204 again is not one:
    logout is idempotent.
P4. A login whose password is certainly current answering anything but
    success, no answer (0) or a documented refusal (a 401, say) is a
    violation naming the login. Any operation answered by a 5xx or a 429
    whose (status, error) is not documented is a violation ("undocumented
    answer"). No answer (0) is not a violation; availability counts it.

Each violation is {"promise": n, "what": text, "operations": [ids]}, and
the same (promise, ids) is never reported twice. Violations are sorted by
promise, then ids.

Availability
------------
Each operation gets an expectation:
  "ok"       registrations; logins with a certainly current password;
             changes whose old password is certainly current; logouts and
             checks of a live session (issuing login answered 200 and
             ended before the operation started, and no logout of that id
             nor change of that user, not definitely refused, that could
             revoke it started before the operation ended);
  "refused"  logins with a password that is not possible; checks of a
             session revoked (as above) more than the bound before the
             check started;
  "unknown"  everything else.
For each fault (labelled by its name and args joined with spaces; a label
that repeats gets " #2", " #3", ...) and for "no fault" (operations that
overlap no fault's window), over the operations whose [start, end]
overlaps the window (a fault without an end lasts for ever):
  {"operations": n, "expected_ok": k (expectation "ok"),
   "ok": j (of those k, answered ok), "share": j/k to 3 decimals or null,
   "no_answer": operations answered 0, "refused_503": answered 503}.

API: check(history, documented=DEFAULT_DOCUMENTED, late_writes=False,
revocation_bound=0.0) ->
{"operations": n, "violations": [...], "availability": {...}};
load(path) -> history; main(argv) -> exit status.
"""

import bisect
import collections
import itertools
import json
import math
import sys

DEFAULT_DOCUMENTED = frozenset({
    (503, "unavailable"),
    (503, "overloaded"),
    (429, "rate_limited"),
})
OK_STATUSES = frozenset({200, 201, 204})
REFUSAL_STATUSES = frozenset({400, 401, 403, 404, 409, 422, 429})
OPS = ("register", "login", "change_password", "logout", "session")
NO_FAULT = "no fault"

_FIELDS = {
    "register": ("password",),
    "login": ("password",),
    "change_password": ("old_password", "new_password"),
    "logout": ("session",),
    "session": ("session",),
}


def outcome(status):
    """"ok", "refused" (nothing happened) or "ambiguous" (for a write: it
    may or may not have taken effect; for a read: a refusal)."""
    if status in OK_STATUSES:
        return "ok"
    if status in REFUSAL_STATUSES:
        return "refused"
    return "ambiguous"


class Op:
    """One operation of the history, checked and normalised."""

    __slots__ = ("id", "client", "via", "op", "user", "start", "end",
                 "status", "error", "password", "old_password",
                 "new_password", "session", "outcome", "effect_end")

    def __init__(self, raw, late_writes=False):
        if not isinstance(raw, dict):
            raise ValueError(f"operation is not an object: {raw!r}")
        where = f"operation {raw.get('id')!r}"
        for key in ("id", "op", "user", "start", "end", "status"):
            if raw.get(key) is None:
                raise ValueError(f"{where}: no {key!r}")
        if not _is_int(raw["id"]):
            raise ValueError(f"{where}: id is not an integer")
        if raw["op"] not in OPS:
            raise ValueError(f"{where}: unknown op {raw['op']!r}")
        if not _is_int(raw["status"]):
            raise ValueError(f"{where}: status is not an integer")
        for key in ("start", "end"):
            if not _is_number(raw[key]):
                raise ValueError(f"{where}: {key} is not a number")
        if raw["end"] < raw["start"]:
            raise ValueError(f"{where}: ends before it starts")
        self.id = raw["id"]
        self.client = raw.get("client")
        self.via = raw.get("via")
        self.op = raw["op"]
        self.user = raw["user"]
        self.start = float(raw["start"])
        self.end = float(raw["end"])
        self.status = raw["status"]
        self.error = raw.get("error")
        for key in ("password", "old_password", "new_password", "session"):
            setattr(self, key, raw.get(key))
        for key in _FIELDS[self.op]:
            if raw.get(key) is None:
                raise ValueError(f"{where} ({self.op}): no {key!r}")
        self.outcome = outcome(self.status)
        # When a write can last have taken effect.
        self.effect_end = self.end
        if late_writes and self.is_write and self.outcome == "ambiguous":
            self.effect_end = math.inf

    @property
    def ok(self):
        return self.outcome == "ok"

    @property
    def is_write(self):
        return self.op in ("register", "change_password", "logout")

    @property
    def written(self):
        """The password a registration or change writes."""
        return self.password if self.op == "register" else self.new_password

    def __repr__(self):
        return f"{self.op} {self.id}"


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _describe(op):
    return (f"{op.op} {op.id} of {op.user!r} via {op.via} "
            f"[{op.start:.3f}, {op.end:.3f}] -> {op.status}"
            + (f" {op.error}" if op.error else ""))


class _ByStart:
    """Operations by start, to find those whose window [start, effect_end]
    meets [lo, hi] without looking at every one."""

    def __init__(self, ops):
        self.ops = sorted(ops, key=lambda o: (o.start, o.id))
        self.starts = [o.start for o in self.ops]
        # reach[k]: the latest effect_end among ops[0..k].
        self.reach = list(itertools.accumulate(
            (o.effect_end for o in self.ops), max))

    def overlapping(self, lo, hi):
        """The ops with start <= hi and effect_end >= lo, latest first."""
        k = bisect.bisect_right(self.starts, hi) - 1
        while k >= 0 and self.reach[k] >= lo:
            if self.ops[k].effect_end >= lo:
                yield self.ops[k]
            k -= 1


class _Checker:
    def __init__(self, history, documented, late_writes, revocation_bound=0.0):
        if not isinstance(history, dict):
            raise ValueError("a history is an object")
        raw_ops = history.get("operations")
        if not isinstance(raw_ops, list):
            raise ValueError("history: 'operations' is not a list")
        self.ops = [Op(raw, late_writes) for raw in raw_ops]
        ids = collections.Counter(op.id for op in self.ops)
        twice = sorted(i for i, n in ids.items() if n > 1)
        if twice:
            raise ValueError(f"history: operation ids used twice: {twice}")
        self.faults = _parse_faults(history.get("faults") or [])
        present = history.get("users_present")
        if present is not None and not isinstance(present, list):
            raise ValueError("history: 'users_present' is not a list or null")
        self.users_present = None if present is None else set(present)
        self.documented = frozenset(
            (status, error) for status, error in documented)
        if not _is_number(revocation_bound) or revocation_bound < 0:
            raise ValueError(f"revocation_bound must be a number >= 0, not {revocation_bound!r}")
        self.revocation_bound = float(revocation_bound)

        self.registrations = collections.defaultdict(list)
        self.writes = collections.defaultdict(list)   # password writes
        self.acked = collections.defaultdict(list)    # ... that answered ok
        self.changes = collections.defaultdict(list)  # not refused
        self.logouts = collections.defaultdict(list)  # by session, not refused
        self.issuer = {}                              # session -> login
        for op in sorted(self.ops, key=lambda o: (o.start, o.id)):
            if op.op == "register":
                self.registrations[op.user].append(op)
            if op.op in ("register", "change_password") and op.outcome != "refused":
                self.writes[op.user].append(op)
                if op.ok:
                    self.acked[op.user].append(op)
                if op.op == "change_password":
                    self.changes[op.user].append(op)
            if op.op == "logout" and op.outcome != "refused":
                self.logouts[op.session].append(op)
            if op.op == "login" and op.ok and op.session is not None:
                self.issuer.setdefault(op.session, op)
        self._index()

    # -- indexes -----------------------------------------------------------

    def _index(self):
        self._writes = {u: _ByStart(ws) for u, ws in self.writes.items()}
        self._changes = {u: _ByStart(cs) for u, cs in self.changes.items()}
        self._acked_end = {}   # user -> (ends, running max of starts)
        for user, acked in self.acked.items():
            acked = sorted(acked, key=lambda a: a.end)
            self._acked_end[user] = (
                [a.end for a in acked],
                list(itertools.accumulate((a.start for a in acked), max)))
        self._acked_changes = {}  # user -> (starts, running min from the end)
        for user, changes in self.changes.items():
            acked = sorted((c for c in changes if c.ok),
                           key=lambda c: (c.start, c.id))
            earliest, best = [], None
            for c in reversed(acked):
                if best is None or (c.end, c.id) < (best.end, best.id):
                    best = c
                earliest.append(best)
            earliest.reverse()
            self._acked_changes[user] = ([c.start for c in acked], earliest)
        self._revocation = {}

    # -- passwords ---------------------------------------------------------

    def possible(self, user, op):
        """The passwords that may be current for op's window."""
        # The latest start of an acked write that ended before op started:
        # every write that ended before it is superseded.
        superseded_before = -math.inf
        if user in self._acked_end:
            ends, latest_start = self._acked_end[user]
            k = bisect.bisect_left(ends, op.start)
            if k:
                superseded_before = latest_start[k - 1]
        if user not in self._writes:
            return set()
        return {w.written
                for w in self._writes[user].overlapping(superseded_before, op.end)
                if w is not op}

    def certain(self, user, password, op):
        """Whether password is certainly the current one for op's window."""
        if self.possible(user, op) != {password}:
            return False
        if not any(r.ok and r.end < op.start for r in self.registrations[user]):
            return False
        return user not in self._changes or not any(
            c is not op for c in self._changes[user].overlapping(op.start, op.end))

    # -- sessions ----------------------------------------------------------

    def revocation(self, session):
        """(time, op) of the earliest certain revocation of session, or
        None."""
        if session not in self._revocation:
            revs = [(l.end, l.id, l) for l in self.logouts[session] if l.ok]
            login = self.issuer.get(session)
            if login is not None and login.user in self._acked_changes:
                starts, earliest = self._acked_changes[login.user]
                k = bisect.bisect_right(starts, login.end)
                if k < len(starts):
                    c = earliest[k]
                    revs.append((c.end, c.id, c))
            first = min(revs, default=None, key=lambda r: (r[0], r[1]))
            self._revocation[session] = first and (first[0], first[2])
        return self._revocation[session]

    def revoked_before(self, session, op):
        """The earliest certain revocation of session that op must see
        (acknowledged more than the bound before op started), or None."""
        revoked = self.revocation(session)
        if revoked is not None and revoked[0] + self.revocation_bound < op.start:
            return revoked[1]
        return None

    def session_state(self, session, op):
        """"revoked" (certainly, more than the bound before op started),
        "live" (certainly valid for all of op's window) or "unknown"."""
        if self.revoked_before(session, op) is not None:
            return "revoked"
        revoked = self.revocation(session)
        if revoked is not None and revoked[0] < op.start:
            return "unknown"
        login = self.issuer.get(session)
        if login is None or not login.end < op.start:
            return "unknown"
        if any(l is not op and l.start <= op.end
               for l in self.logouts[session]):
            return "unknown"
        if login.user in self._changes and any(
                c is not op for c in
                self._changes[login.user].overlapping(login.start, op.end)):
            return "unknown"
        return "live"

    def expectation(self, op):
        if op.op == "register":
            return "ok"
        if op.op == "login":
            if self.certain(op.user, op.password, op):
                return "ok"
            if op.password not in self.possible(op.user, op):
                return "refused"
            return "unknown"
        if op.op == "change_password":
            return "ok" if self.certain(op.user, op.old_password, op) else "unknown"
        state = self.session_state(op.session, op)
        if state == "live":
            return "ok"
        if state == "revoked" and op.op == "session":
            return "refused"
        return "unknown"

    # -- the promises ------------------------------------------------------

    def violations(self):
        found = {}

        def report(promise, what, ops):
            key = (promise, tuple(o.id for o in ops))
            if key not in found:
                found[key] = {"promise": promise, "what": what,
                              "operations": list(key[1])}

        if self.users_present is not None:
            for user, regs in self.registrations.items():
                for reg in regs:
                    if reg.ok and user not in self.users_present:
                        report(1, f"acknowledged registration lost: "
                               f"{_describe(reg)}, but {user!r} is not in "
                               f"the database after the run", [reg])

        for op in self.ops:
            if (op.status >= 500 or op.status == 429) and \
                    (op.status, op.error) not in self.documented:
                report(4, f"undocumented answer {op.status} "
                       f"{op.error!r}: {_describe(op)}", [op])
            if op.op == "login":
                self._check_login(op, report)
            if op.op == "session" and op.ok:
                rev = self.revoked_before(op.session, op)
                if rev is not None:
                    login = self.issuer.get(op.session)
                    ops = [op, rev] + ([login] if login is not None else [])
                    late = (f" and the {self.revocation_bound * 1000:g} ms "
                            f"allowed" if self.revocation_bound else "")
                    report(3, f"revoked session accepted: {_describe(op)} "
                           f"started after {_describe(rev)} revoked "
                           f"session {op.session!r}{late}"
                           + (f" issued by login {login.id}" if login else ""),
                           ops)

        return sorted(found.values(),
                      key=lambda v: (v["promise"], v["operations"]))

    def _check_login(self, op, report):
        user = op.user
        if op.ok:
            regs = [r for r in self.registrations[user]
                    if r.outcome != "refused"]
            if not regs:
                report(2, f"login succeeded for a user never registered: "
                       f"{_describe(op)}", [op])
                return
            if op.password in self.possible(user, op):
                return
            ever = any(w.written == op.password for w in self.writes[user])
            before = [a for a in self.acked[user] if a.end < op.start]
            if ever and before:
                last = max(before, key=lambda a: (a.end, a.id))
                report(2, f"old password accepted: {_describe(op)} with "
                       f"a password no longer current since "
                       f"{_describe(last)}", [op, last])
            else:
                reg = next((r for r in regs if r.ok), regs[0])
                report(2, f"password never valid accepted: {_describe(op)} "
                       f"with a password never current by "
                       f"{op.start:.3f} (registration {reg.id})", [op, reg])
        elif op.status != 0 and (op.status, op.error) not in self.documented \
                and self.certain(user, op.password, op):
            report(4, f"login with the certainly current password refused: "
                   f"{_describe(op)}", [op])

    # -- availability ------------------------------------------------------

    def availability(self):
        expected = {op.id: self.expectation(op) for op in self.ops}

        def figures(ops):
            k = sum(1 for op in ops if expected[op.id] == "ok")
            j = sum(1 for op in ops if expected[op.id] == "ok" and op.ok)
            return {
                "operations": len(ops),
                "expected_ok": k,
                "ok": j,
                "share": round(j / k, 3) if k else None,
                "no_answer": sum(1 for op in ops if op.status == 0),
                "refused_503": sum(1 for op in ops if op.status == 503),
            }

        def overlaps(op, fault):
            return op.start <= fault["end"] and op.end >= fault["start"]

        result = {}
        for fault in self.faults:
            result[fault["label"]] = figures(
                [op for op in self.ops if overlaps(op, fault)])
        result[NO_FAULT] = figures(
            [op for op in self.ops
             if not any(overlaps(op, f) for f in self.faults)])
        return result


def _parse_faults(raw_faults):
    if not isinstance(raw_faults, list):
        raise ValueError("history: 'faults' is not a list")
    faults, seen = [], collections.Counter()
    for raw in raw_faults:
        if not isinstance(raw, dict) or not raw.get("name"):
            raise ValueError(f"fault without a name: {raw!r}")
        start, end = raw.get("start"), raw.get("end")
        if not _is_number(start):
            raise ValueError(f"fault {raw['name']!r}: start is not a number")
        if end is None:
            end = math.inf
        elif not _is_number(end) or end < start:
            raise ValueError(f"fault {raw['name']!r}: bad end {end!r}")
        label = " ".join([str(raw["name"])]
                         + [str(a) for a in raw.get("args") or []])
        seen[label] += 1
        if seen[label] > 1:
            label = f"{label} #{seen[label]}"
        faults.append({"label": label, "start": float(start),
                       "end": float(end)})
    return faults


def check(history, documented=DEFAULT_DOCUMENTED, late_writes=False,
          revocation_bound=0.0):
    """Check a history (see the module's doc) against the four promises.

    documented: the (status, error) pairs that are documented refusals.
    late_writes: let an ambiguous write take effect at any time after its
    start, not only within its window.
    revocation_bound: seconds after a revocation's acknowledgment during
    which a check of the revoked session may still be accepted (an
    instance's session cache); a check that starts later must be refused.

    Returns {"operations": n, "violations": [...], "availability": {...}};
    raises ValueError on a malformed history."""
    checker = _Checker(history, documented, late_writes, revocation_bound)
    return {
        "operations": len(checker.ops),
        "violations": checker.violations(),
        "availability": checker.availability(),
    }


def load(path):
    """The history in a JSON file."""
    with open(path, encoding="utf-8") as f:
        history = json.load(f)
    if not isinstance(history, dict):
        raise ValueError(f"{path}: not a JSON object")
    return history


USAGE = ("usage: python3 -m sesame_fleet.history [--late-writes] "
         "[--revocation-bound SECONDS] HISTORY.json")


def main(argv=None):
    """Print the report of the history file as JSON; 1 if any violation,
    0 if none, 2 if the file cannot be read or checked."""
    argv = list(sys.argv[1:] if argv is None else argv)
    late = "--late-writes" in argv
    args = [a for a in argv if a != "--late-writes"]
    bound = 0.0
    if "--revocation-bound" in args:
        at = args.index("--revocation-bound")
        try:
            bound = float(args[at + 1])
        except (IndexError, ValueError):
            print(USAGE, file=sys.stderr)
            return 2
        del args[at:at + 2]
    if len(args) != 1 or args[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        report = check(load(args[0]), late_writes=late, revocation_bound=bound)
    except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        print(f"history: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 1 if report["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
