"""The failover checker's run: clients drive registrations, logins,
password changes, logouts and session checks at random, against every
instance and through the balancer, each operation recorded with its start,
end and answer; a nemesis puts faults in place at random times; then the
history is checked against the four promises (`history.check`).

The clients own their users (one client per user, so a user's operations
never overlap: the checker knows exactly which password is current), but
any user's request goes to any instance. Now and then a client tries what
must fail: a password that an acknowledged change replaced, a session that
an acknowledged logout or password change revoked."""

import datetime
import hashlib
import http.client
import json
import os
import random
import secrets
import threading
import time

from . import client, faults, fleet, history, parts
from .parts import wait_for
from .state import State

# The operations a client picks from, by weight.
MIX = {
    "register": 8,
    "login": 30,
    "login_old": 8,
    "change_password": 10,
    "logout": 8,
    "session": 26,
    "session_revoked": 10,
}
USERS_PER_CLIENT = 12
# The control run's instances: revocations acknowledged by no Redis replica.
UNSAFE_ARGS = ["--cache-replica-acks", "0"]
# The answers the failure table documents, besides 503 `unavailable` and
# `overloaded` and 429 `rate_limited`: the balancer's 504 when an instance
# froze with the request (its `timeout server`).
DOCUMENTED = history.DEFAULT_DOCUMENTED | {(504, None)}
# The instances cache the sessions they check: another instance than the
# one that revoked a session may accept it this long after the
# acknowledgment (seconds), and no longer (the book's promise 3).
REVOCATION_BOUND = 0.05
# A client pauses this long between operations: the run checks promises,
# not capacity (the fleet's hashes share two cores here).
THINK_S = 0.05


class Recorder:
    """The history: operations appended by every client thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.operations = []
        self.faults = []
        self.client_errors = []

    def record(self, **op):
        with self.lock:
            op["id"] = len(self.operations)
            self.operations.append(op)
        return op


def session_id(token):
    """What the history keeps of a session: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class Client(threading.Thread):
    def __init__(self, name, targets, recorder, rng, stop):
        super().__init__(daemon=True)
        self.name_, self.targets, self.recorder, self.rng, self.stop = name, targets, recorder, rng, stop
        self.users = []  # dicts: name, ip, password (believed current), old (replaced), live, revoked
        self.made = 0

    def run(self):
        while not self.stop.is_set():
            try:
                self.step()
            except Exception as e:  # a client bug must not end the run silently
                self.recorder.client_errors.append(repr(e))
            self.stop.wait(THINK_S)

    def pick(self):
        ops = dict(MIX)
        if not self.users:
            return "register"
        if len(self.users) >= USERS_PER_CLIENT:
            ops["register"] = 0
        return self.rng.choices(list(ops), weights=list(ops.values()))[0]

    def call(self, op, user, method, path, body=None, token=None, **fields):
        via, base = self.rng.choice(self.targets)
        start = time.time()
        try:
            status, answer = client.request(base, method, path, body, token=token, timeout=5.0)
        except (OSError, http.client.HTTPException):  # no (whole) answer
            status, answer = 0, None
        end = time.time()
        error = ((answer or {}).get("error") or {}).get("code") if isinstance(answer, dict) else None
        recorded = self.recorder.record(client=self.name_, op=op, user=user, via=via, start=start, end=end,
                                        status=status, error=error, **fields)
        return status, answer, recorded

    def login(self, user, password):
        return self.call("login", user["name"], "POST", "/v1/login",
                         {"user": user["name"], "password": password, "ip": user["ip"]}, password=password)

    def step(self):
        op = self.pick()
        if op == "register":
            self.made += 1
            user = {"name": f"{self.name_}u{self.made}", "ip": f"198.18.{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}",
                    "password": secrets.token_urlsafe(15), "maybe": [], "old": [], "live": [], "revoked": []}
            status, _, _ = self.call("register", user["name"], "POST", "/v1/users",
                                  {"user": user["name"], "password": user["password"]}, password=user["password"])
            if status == 201:
                self.users.append(user)
            return
        user = self.rng.choice(self.users)
        if op == "login":
            # The believed password first, then those an ambiguous change
            # may have left in place.
            for password in [user["password"], *user["maybe"]]:
                status, answer, recorded = self.login(user, password)
                if status == 200:
                    if isinstance(answer, dict) and answer.get("session"):
                        recorded["session"] = session_id(answer["session"])  # the session it issued
                        user["live"].append(answer["session"])
                        del user["live"][:-4]
                    others = [p for p in [user["password"], *user["maybe"]] if p != password]
                    user["old"] += others
                    user["password"], user["maybe"] = password, []
                if status != 401:
                    break
        elif op == "login_old":
            if user["old"]:
                self.login(user, self.rng.choice(user["old"]))
        elif op == "change_password":
            new = secrets.token_urlsafe(15)
            status, _, _ = self.call("change_password", user["name"], "PUT", f"/v1/users/{user['name']}/password",
                                     {"old_password": user["password"], "new_password": new},
                                     old_password=user["password"], new_password=new)
            if status == 204:
                user["old"] += [user["password"], *user["maybe"]]
                user["password"], user["maybe"] = new, []
                user["revoked"] += user["live"]
                user["live"] = []
            elif status == 0 or status >= 500:
                # It may have happened: try the new one first from now on.
                user["password"], user["maybe"] = new, [user["password"], *user["maybe"]]
            elif status == 401 and user["maybe"]:
                user["password"], user["maybe"] = user["maybe"][0], [*user["maybe"][1:], user["password"]]
        elif op in ("logout", "session"):
            if not user["live"]:
                return
            token = self.rng.choice(user["live"])
            if op == "logout":
                status, _, _ = self.call("logout", user["name"], "DELETE", "/v1/session", token=token, session=session_id(token))
                if status == 204:
                    user["live"].remove(token)
                    user["revoked"].append(token)
            else:
                self.call("session", user["name"], "GET", "/v1/session", token=token, session=session_id(token))
        elif op == "session_revoked":
            if user["revoked"]:
                token = self.rng.choice(user["revoked"][-6:])
                self.call("session", user["name"], "GET", "/v1/session", token=token, session=session_id(token))


# --- the nemesis ----------------------------------------------------------------


def steps_short(rng, instances):
    """Every fault once, in a random order: each partition both ways and
    one way, a frozen instance, a Redis failover and a primary promotion
    (each after the server was cut off from its replicas, so that writes
    it took in the meantime are what a failover could lose)."""
    steps = []
    for b in ("primary", "redis", "everything"):
        for one_way in (False, True):
            steps.append(("partition", [rng.choice(instances), b], one_way))
    steps += [("partition", ["primary", "replicas"], False), ("partition", ["primary", "replicas"], True)]
    steps.append(("pause", [rng.choice(instances)], False))
    steps.append(("redis-failover", [], False))
    steps.append(("promote", [], False))
    rng.shuffle(steps)
    return steps


def steps_random(rng, instances, count):
    kinds = steps_short(rng, instances)
    return [rng.choice(kinds) for _ in range(count)]


def apply_step(directory, step, window_s, recorder, log):
    """Puts one fault in place for `window_s`, heals it, records its window."""
    name, args, one_way = step
    label = " ".join([name, *args] + (["--one-way"] if one_way else []))
    start = time.time()
    cut_off = None  # when a failover follows a partition: the partition's window
    if name == "partition":
        faults.partition(directory, args[0], args[1], one_way=one_way)
        time.sleep(window_s)
        faults.heal(directory)
    elif name == "pause":
        faults.pause(directory, args[0])
        time.sleep(window_s)
        faults.resume(directory, args[0])
    elif name == "redis-failover":
        # The master cut off from its replica first: what it acknowledges
        # then exists nowhere else.
        faults.partition(directory, "redis-master", "redis-replicas")
        time.sleep(window_s)
        cut_off = [start, time.time()]
        faults.redis_failover(directory, heal_first=True)
    elif name == "promote":
        faults.partition(directory, "primary", "replicas")
        time.sleep(window_s)
        cut_off = [start, time.time()]
        faults.promote(directory, log=log)
        faults.heal(directory)
        faults.rejoin(directory, log=log)
    end = time.time()
    recorder.faults.append({"name": name, "args": args + (["--one-way"] if one_way else []), "start": start, "end": end,
                            "cut_off": cut_off})
    log(f"fault: {label}: {end - start:.1f} s")


def _since(iso, started):
    try:
        return f"{datetime.datetime.fromisoformat(iso.replace('Z', '+00:00')).timestamp() - started:+.3f}"
    except (AttributeError, ValueError):
        return repr(iso)


def stories(violations, hist, state, started):
    """What a failed run needs to be understood from its log alone: for
    each violation, its user's operations and the faults (seconds from the
    clients' start), and what every instance's event log says about that
    user's logins (which database role answered, whether a session was
    made before the refusal)."""
    ops = {o["id"]: o for o in hist["operations"]}
    out = []
    for v in violations:
        users = sorted({ops[i]["user"] for i in v["operations"] if i in ops})
        lines = [f"promise {v['promise']}: {v['what']}"]
        lines += [f"fault {f['name']} {' '.join(f['args'])}: {f['start'] - started:+.2f} .. "
                  f"{(f['end'] or started) - started:+.2f}" for f in hist["faults"]]
        for o in hist["operations"]:
            if o["user"] in users:
                lines.append(f"op {o['id']} {o['op']} via {o['via']} {o['start'] - started:+.3f} .. "
                             f"{o['end'] - started:+.3f} -> {o['status']} {o.get('error') or ''}".rstrip())
        for p in state.of_kind("sesame"):
            try:
                with open(p.extra["event_log"]) as f:
                    events = [json.loads(line) for line in f if any(f'"user":"{u}"' in line for u in users)]
            except (OSError, ValueError):
                continue
            lines += [f"event {_since(e.get('ts'), started)} {p.name} {e.get('user')} {e.get('outcome')} {e.get('status')} db={e.get('db_role')} "
                      f"db_ms={e.get('db_ms')} session_ms={e.get('session_ms')}" for e in events]
        out.append(lines)
    return out


def run(directory, seed, minutes=None, unsafe=False, window_s=6.0, calm_s=3.0, clients=4, log=print, binary=None):
    """Brings up a fleet, runs the clients and the nemesis, takes the fleet
    down; returns the checker's report with the run's figures."""
    rng = random.Random(seed)
    # Rate limits off: they are tested elsewhere, and here would only turn
    # the history's logins into 429s (each user tries old passwords on
    # purpose; password changes come from one address).
    args = ["--ip-rate", "100000", "--ip-burst", "100000", "--ip-failures-per-min", "100000",
            "--account-ip-failures-per-min", "100000", "--account-failures-per-min", "100000",
            "--ip-logins-in-flight", "1000"]
    if unsafe:
        args += UNSAFE_ARGS
    fleet.up(directory, 3, binary, args, log=log, semi_sync=not unsafe, sentinel=True)
    try:
        state = State.load(directory)
        instances = [p.name for p in state.of_kind("sesame")]
        targets = [("lb", f"http://127.0.0.1:{state.ports['lb']}")] + [
            (p.name, f"http://{p.address}") for p in state.of_kind("sesame")
        ]
        recorder, stop = Recorder(), threading.Event()
        workers = [Client(f"n{seed}c{i}", targets, recorder, random.Random(rng.random()), stop) for i in range(clients)]
        for w in workers:
            w.start()
        started = time.time()
        time.sleep(calm_s * 2)
        steps = steps_short(rng, instances) if minutes is None else steps_random(rng, instances, 10**6)
        for step in steps:
            if minutes is not None and time.time() - started > minutes * 60:
                break
            apply_step(directory, step, window_s, recorder, log)
            time.sleep(calm_s)
        time.sleep(calm_s)
        stop.set()
        for w in workers:
            w.join(timeout=10)
        state = State.load(directory)
        present = parts.sql(state.primary, "SELECT username FROM sesame.users").split()
        hist = {"operations": recorder.operations, "faults": recorder.faults, "users_present": present}
        report = history.check(hist, documented=DOCUMENTED, revocation_bound=REVOCATION_BOUND)
        report["stories"] = stories(report["violations"][:3], hist, state, started)
        report.update({"seed": seed, "unsafe": unsafe, "seconds": round(time.time() - started, 1),
                       "faults_run": [" ".join([f["name"], *f["args"]]) for f in recorder.faults],
                       "client_errors": recorder.client_errors[:20]})
        return report, hist
    finally:
        faults.heal(directory)
        fleet.down(directory, log=log)
