"""Incident drills on a fleet that is up (the book's "Fleet" chapter): each
reproduces one incident under a replayed day of traffic, then does what
the runbook (docs/src/operators/detect.md and fix.md) tells an operator to
do, with the shipped tools only, and measures it:

  time to detect    injection -> the shipped burn-rate alert fires in the
                    fleet's Alertmanager (rules compressed by FACTOR)
  time to diagnose  does `sesame triage` over every instance's event log
                    name the injected cause first, and how long it ran
  time to mitigate  detection -> the SLO holds again (the compressed short
                    windows back under the page thresholds)
  users hurt        logins that failed (5xx) or took longer than the budget
                    while the incident lasted, by user group

Each drill has stated limits and fails when one is missed: `surge`,
`bad-deploy`, `replica-lag`, `stuffing` and `primary-crash`. `all` runs
them one after another and then checks the runbook against what they ran
(runbook.py): every `sesame` command the runbook pages give is run by a
drill."""

import datetime
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from . import client, events, fleet, net, parts, rules, runbook
from .events import BUDGET_MS
from .parts import FleetError
from .proofs import PASSWORD, USERS, Fleet
from .state import State, signal_part

# A drill compresses an hour of the shipped rules' windows into a minute:
# the fast-burn page's 1h and 5m windows become 1m and 5s, its `for: 2m`
# becomes 2s. One factor for every window, from the shipped files.
FACTOR = 60
PAGES = ("SesameLoginErrorsFastBurn", "SesameLoginLatencyFastBurn")
# The thresholds of the fast-burn pages on their short windows: under both,
# the SLO holds again. A drill starts only when the long windows are under
# them too, so that no earlier burn speeds its detection up.
SHORT_WINDOWS = {
    "job:sesame_login_errors:ratio_rate5m": 14.4 * 0.001,
    "job:sesame_login_slow:ratio_rate5m": 14.4 * 0.01,
}
LONG_WINDOWS = {
    "job:sesame_login_errors:ratio_rate1h": 14.4 * 0.001,
    "job:sesame_login_slow:ratio_rate1h": 14.4 * 0.01,
}
DRILLS = ("surge", "bad-deploy", "replica-lag", "stuffing", "primary-crash")


class DrillFailed(Exception):
    pass


def log_to_stderr(message):
    print(f"drill: {message}", file=sys.stderr, flush=True)


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Drill:
    """One drill's clock, its marks and its figures."""

    def __init__(self, directory, name, log):
        state = State.load(directory)
        if state is None:
            raise FleetError(f"no fleet in {os.path.abspath(directory)}; `scripts/fleet up` first")
        self.name = name
        self.f = Fleet(directory, fleet.describe(state))
        self.log = log
        self.marks = {}
        self.figures = {}
        self.limits = []
        # Every operator command the drill ran, the binary as `sesame`:
        # what the runbook check compares with the runbook's pages.
        self.commands = []

    def run_tool(self, argv, **kwargs):
        """Runs a `sesame` command as an operator would, and records it
        (once: a rerun is the same command)."""
        if ["sesame", *argv[1:]] not in self.commands:
            self.commands.append(["sesame", *argv[1:]])
        return subprocess.run(argv, capture_output=True, text=True, **kwargs)

    def start_load(self, args, report):
        """`sesame load` against the balancer in the background, recorded."""
        self.commands.append(["sesame", "load", "--target", self.f.lb, *args])
        return client.start_load(self.f.binary, self.f.lb, args, os.path.join(self.f.dir, report))

    # --- the compressed rules ---------------------------------------------

    def compress_rules(self):
        """Reloads the fleet's Prometheus with the shipped rules compressed
        by FACTOR, generated now from deploy/prometheus/rules."""
        out = os.path.join(self.f.dir, "drill-rules")
        self._load_rules(rules.write_compressed(parts.shipped_rules(), out, FACTOR))
        fast = [r for r in self._rules() if r.get("name") == PAGES[0]]
        if not fast or fast[0].get("duration") != 120 / FACTOR:
            raise DrillFailed(f"Prometheus did not take the compressed rules: {fast}")

    def restore_rules(self):
        self._load_rules(parts.shipped_rules())

    def _load_rules(self, files):
        state = State.load(self.f.dir)
        parts.prometheus_config(state, files)
        prometheus = self.f.d["prometheus"]
        req = urllib.request.Request(f"{prometheus}/-/reload", method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            if r.status != 200:
                raise DrillFailed(f"prometheus reload answered {r.status}")

    def _rules(self):
        with urllib.request.urlopen(f"{self.f.d['prometheus']}/api/v1/rules", timeout=10) as r:
            groups = json.load(r)["data"]["groups"]
        return [rule for g in groups for rule in g["rules"]]

    # --- the clock --------------------------------------------------------

    def mark(self, label, at=None):
        self.marks[label] = time.time() if at is None else at
        origin = self.marks.get("injected", min(self.marks.values()))
        self.log(f"{label} at {self.marks[label] - origin:+.1f} s")

    def firing(self, names=PAGES):
        """The alerts of `names` firing now in Alertmanager, with their
        labels: {alert name: [labels, ...]}."""
        url = f"{self.f.d['alertmanager']}/api/v2/alerts?active=true&silenced=false&inhibited=false"
        with urllib.request.urlopen(url, timeout=5) as r:
            alerts = json.load(r)
        found = {}
        for a in alerts:
            if a["labels"].get("alertname") in names:
                found.setdefault(a["labels"]["alertname"], []).append(a["labels"])
        return found

    def wait_quiet(self, names=PAGES, timeout=180):
        """Waits until none of the alerts `names` fires and the SLO windows
        are clean, so that what the drill detects is its own incident."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.firing(names) and self.slo_holds(SHORT_WINDOWS | LONG_WINDOWS):
                return
            time.sleep(1)
        raise DrillFailed(f"the fleet did not get quiet before the drill: {self.firing(names)}")

    def wait_detected(self, timeout, names=PAGES):
        """Waits until one of the alerts `names` fires; the names firing
        then (sorted), or [] when none did within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.firing(names)
            if found:
                self.mark("alert fired")
                self.figures["alert_labels"] = found
                return sorted(found)
            time.sleep(0.5)
        return []

    def slo_holds(self, windows=SHORT_WINDOWS):
        for record, threshold in windows.items():
            for _, value in client.prom_query(self.f.d["prometheus"], record):
                if value == value and value > threshold:  # NaN: no logins, nothing burns
                    return False
        return True

    def wait_slo_holds(self, timeout):
        holds = wait_until(self.slo_holds, timeout)
        if holds:
            self.mark("SLO holds again")
        return holds

    # --- the tools an operator runs ---------------------------------------

    def triage(self, since, until=None, extra=(), threshold_ms=BUDGET_MS):
        """`sesame triage --json` over every instance's log, as the runbook's
        first command; (report, CPU seconds it took)."""
        argv = [self.f.binary, "triage", *events.logs(self.f.dir), "--since", iso(since),
                "--threshold-ms", f"{threshold_ms:.0f}", "--json", *extra]
        if until is not None:
            argv += ["--until", iso(until)]
        # At the lowest priority: an operator runs it on another machine,
        # and here it would take the fleet's cores from its logins. What it
        # costs is its CPU time; its wall time here is mostly waiting for a
        # core the fleet holds.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = self.run_tool(argv, preexec_fn=lambda: os.nice(19))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        took = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if r.returncode != 0:
            raise DrillFailed(f"sesame triage failed: {r.stderr.strip()[-1000:]}")
        return json.loads(r.stdout), took

    def diagnose(self, since, names_it, timeout, threshold_ms=BUDGET_MS):
        """The runbook's first command, over every instance's log, at once
        and then every 5 s, as an operator reruns it while the incident
        grows, until its first cause is the injected one (`names_it`) or
        `timeout` passes; marks "diagnosed" then. Its last report."""
        deadline = time.monotonic() + timeout
        runs = 0
        while True:
            report, took = self.triage(since, threshold_ms=threshold_ms)
            runs += 1
            first = report["causes"][0] if report["causes"] else None
            self.figures["triage"] = triage_figures(report, runs, took)
            if first is not None and names_it(first):
                self.mark("diagnosed")
                return report
            if time.monotonic() + 5 > deadline:
                return report
            time.sleep(5)

    def timeline_html(self, path, since, until):
        """The story at a glance: triage's HTML timeline, per second, with
        the drill's moments marked on it."""
        marks = [arg for label, at in self.marks.items() if at > since for arg in ("--mark", f"{label}={iso(at)}")]
        self.triage(since, until, ["--interval", "1s", "--html", path, *marks])

    def limit(self, name, value, passed, limit):
        self.limits.append({"name": name, "value": value, "limit": limit, "passed": bool(passed)})
        self.log(f"  {'ok' if passed else 'MISSED'}: {name}: {value} (limit: {limit})")

    def report(self):
        return {
            "drill": self.name,
            "rules_factor": FACTOR,
            "marks": {label: iso(at) for label, at in sorted(self.marks.items(), key=lambda m: m[1])},
            "figures": self.figures,
            "limits": self.limits,
            "commands": [" ".join(shlex.quote(w) for w in argv) for argv in self.commands],
            "passed": all(limit["passed"] for limit in self.limits),
        }



def triage_figures(report, runs, cpu_seconds):
    """What a drill keeps of triage's report: each cause's kind, stage and
    group (and how many addresses an attack's has), the first one's
    summary, how many runs it took and their CPU."""
    first = report["causes"][0] if report["causes"] else None
    return {
        "causes": [{"kind": c["kind"], "stage": c["stage"], "group": c["group"],
                    **({"addresses": len(c["addresses"])} if c.get("addresses") else {})}
                   for c in report["causes"]],
        "first": first["summary"] if first else None,
        "runs": runs,
        "cpu_seconds": round(cpu_seconds, 2),
    }

# --- the day's traffic --------------------------------------------------------


def day_of_traffic(f, rate, seconds):
    """A production-shaped day (regions, platforms, app versions, a few
    percent wrong passwords) from triage's generator, compressed to
    `seconds` at `rate` logins/s: what `sesame load --replay` drives."""
    generator = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(parts.ROOT, "target")), "debug", "examples", "gen-eventlog")
    subprocess.run(["cargo", "build", "-q", "-p", "sesame-triage", "--example", "gen-eventlog"], cwd=parts.ROOT, check=True)
    day = os.path.join(f.dir, "day.jsonl")
    subprocess.run(
        [generator, "--out", day, "--incident", "none", "--rate", f"{rate:.1f}", "--seconds", str(seconds), "--seed", "15"],
        check=True, capture_output=True,
    )
    return day


def replay_args(day):
    return ["--replay", day, "--speed", "1", "--users", str(USERS), "--password", PASSWORD,
            "--connections", "256", "--timeout", "5s"]


def start_day(d, rate, quiet):
    """The day's traffic at `rate` logins/s through the balancer, started
    once none of the alerts `quiet` fires: its `sesame load` process."""
    d.figures["day_rate"] = round(rate, 1)
    day = day_of_traffic(d.f, rate, 600)
    d.wait_quiet(quiet)
    load = d.start_load(replay_args(day), "drill-day.json")
    d.mark("day traffic starts")
    return load


# --- surge --------------------------------------------------------------------


def surge(d, short=True):
    """Legitimate traffic rises to 3x the fleet's capacity for a minute, on
    top of the day's traffic. Runbook: the page fires; triage names a
    surge; the service sheds the excess fast (503 `overloaded`), so
    admitted logins stay within the budget; `sesame plan --peak-logins`
    says how many pods the surge needed. On one machine the fleet cannot
    add cores, so the surge is ridden out by shedding; the SLO must hold
    again soon after it ends."""
    f = d.f
    baseline_s, surge_s, after_s = 30, 60 if short else 120, 40
    raw = f.capacity()
    # What the fleet serves at most, measured as the proofs do (5 s past
    # saturation): the surge is 3x that. Its sheds burn the compressed
    # windows; the drill waits until even the long ones are clean.
    capacity = f.saturation(raw, seconds=5)
    background = 0.3 * capacity
    offered = 3 * capacity
    d.figures.update({"raw_hashes_per_s": raw, "capacity_logins_per_s": round(capacity, 1),
                      "day_rate": round(background, 1), "surge_rate": round(offered, 1)})
    day = day_of_traffic(f, background, 600)
    day_load = d.start_load(replay_args(day), "drill-day.json")
    d.mark("day traffic starts")
    try:
        d.wait_quiet()
        time.sleep(baseline_s)
        surge_load = d.start_load(
            ["--rate", f"{offered:.1f}", "--duration", f"{surge_s}s", "--arrival", "poisson", "--mix", "login=100",
             "--users", str(USERS), "--password", PASSWORD, "--connections", "1024", "--timeout", "5s"],
            "drill-surge.json",
        )
        d.mark("injected")
        alerts = d.wait_detected(timeout=surge_s)
        if alerts:
            report = d.diagnose(d.marks["injected"] - baseline_s, lambda c: c["kind"] == "surge", timeout=45)
            # The runbook's capacity answer, at the rate triage measured.
            peak = max((row["rate_per_s"] for row in report["timeline"]), default=0.0)
            hash_ms = 1000.0 * (os.cpu_count() or 1) / raw  # one hash on one core
            plan = d.run_tool([f.binary, "plan", "--peak-logins", f"{peak:.0f}", "--pod-cpus", "2",
                               "--hash-ms", f"{hash_ms:.1f}", "--json"])
            if plan.returncode == 0:
                answer = json.loads(plan.stdout)
                d.figures["plan"] = {"peak_logins": answer["inputs"]["peak_logins"], "hash_ms": answer["inputs"]["hash_ms"],
                                     "pods_at_peak": answer["hpa"]["max_replicas"], "why": answer["steps"]}
            else:
                d.figures["plan"] = {"error": plan.stderr.strip()}
        surge_load.communicate(timeout=surge_s + 120)
        d.mark("surge ends")
        holds = d.wait_slo_holds(timeout=after_s)
    finally:
        day_load.terminate()
        day_load.wait(timeout=30)
    injected, ended = d.marks["injected"], d.marks["surge ends"]
    recovered = d.marks.get("SLO holds again", ended + after_s)
    inside = events.by_answer(events.logs(f.dir), injected, ended)
    shed_p99, shed = inside["shed"]["p99_ms"], inside["shed"]["count"]
    admitted_p99, admitted = inside["admitted"]["p99_ms"], inside["admitted"]["count"]
    d.figures.update({
        "alerts": alerts,
        "time_to_detect_s": round(d.marks["alert fired"] - injected, 1) if alerts else None,
        "time_to_diagnose_s": round(d.marks["diagnosed"] - d.marks["alert fired"], 1) if "diagnosed" in d.marks else None,
        "time_to_mitigate_s": round(recovered - d.marks["alert fired"], 1) if alerts and holds else None,
        "slo_holds_after_surge_s": round(recovered - ended, 1) if holds else None,
        "in_the_instances": inside,
        "users_hurt": events.users_hurt(events.logs(f.dir), injected, recovered, lambda e: "surge" if e["ip"].startswith("198.18.") else f"day {e.get('region', '?')}"),
    })
    d.limit("a page fired within 30 s of the injection", d.figures["time_to_detect_s"], alerts and d.figures["time_to_detect_s"] <= 30, "<= 30 s")
    diagnosed = d.marks.get("diagnosed")
    first = [c["kind"] for c in d.figures.get("triage", {}).get("causes", [])][:1]
    d.limit("triage names the surge first within 45 s of the page", first,
            diagnosed is not None and first == ["surge"], "['surge']")
    cpu = d.figures.get("triage", {}).get("cpu_seconds", 99)
    d.limit("triage takes under 10 s of CPU", cpu, cpu <= 10, "<= 10 CPU s")
    pods = d.figures.get("plan", {}).get("pods_at_peak")
    d.limit("sesame plan says how many pods the surge needed", pods, isinstance(pods, int) and pods >= len(f.instances), f">= {len(f.instances)} pods")
    d.limit("shed answers (refused at admission) fast in the instances", shed_p99, shed > 0 and shed_p99 <= 10, "p99 <= 10 ms, some shed")
    # Two budgets on shared cores, as the overload proof allows there.
    d.limit("admitted logins within the budget in the instances", admitted_p99, admitted > 0 and admitted_p99 <= 2 * BUDGET_MS, f"p99 <= {2 * BUDGET_MS:.0f} ms")
    d.limit("the SLO holds again within 30 s of the surge's end", d.figures["slo_holds_after_surge_s"], holds and recovered - ended <= 30, "<= 30 s")


# --- bad-deploy ---------------------------------------------------------------


# The bad deploy: the canary's pod gets this share of the CPU it should
# (`resources.limits.cpu` cut by a manifest change), so its hashes run
# several times slower. Doubling Argon2's memory was tried first and is not
# a clean injection: a login verifies with the stored hash's own parameters
# and upgrades the hash in the background, so the canary's own latency
# barely moved while every user it upgraded then cost the stable instances
# a double-memory verification and a rehash back down.
BAD_CPU_SHARE = 0.125


def bad_deploy(d, short=True):
    """One instance goes out as a canary with a manifest change that makes
    logins slow: its CPU limit cut to an eighth. Runbook (the book's "Roll out and roll back"):
    `sesame canary` judges the canary against the stable instances from
    Prometheus, as the rollout's analysis does; a failed canary is rolled
    back (`kubectl argo rollouts abort` in Kubernetes; here, the canary
    replaced by a stable instance). Triage names the hash stage on the
    canary; the rollback restores the fleet's latency."""
    f = d.f
    baseline_s, judge_timeout_s = 30, 120 if short else 240
    raw = f.capacity()
    d.figures["raw_hashes_per_s"] = raw
    # About 30% of the fleet's capacity (which is about two thirds of the
    # raw rate here), as in the surge drill, without measuring it past
    # saturation: the canary's slower hashes then fit.
    day_load = start_day(d, 0.2 * raw, PAGES)
    quiet = lambda m: None  # noqa: E731
    try:
        time.sleep(baseline_s)
        baseline_p50 = fleet_p50(d)
        state = State.load(f.dir)
        victim = state.of_kind("sesame")[-1]
        pod_cpus = victim.extra.get("cpus", 2)
        d.mark("injected")
        deployed = fleet.deploy(f.dir, state.binary, None, log=quiet, only=[victim.name], track="canary",
                                cpus=pod_cpus * BAD_CPU_SHARE)
        canary = deployed["replaced"][0]["new"]
        d.mark("canary serving")
        verdict = judge_until_failed(d, judge_timeout_s)
        # A failed analysis aborts the rollout at once (Argo Rollouts does it
        # by itself): the canary is replaced by a stable instance. Then the
        # operator looks at what happened.
        fleet.deploy(f.dir, state.binary, None, log=quiet, only=[canary], track="stable")
        d.mark("rolled back")
        restored = wait_until(lambda: fleet_p50(d) <= 1.25 * baseline_p50, timeout=60)
        if restored:
            d.mark("latency restored")
        # Was it the hash parameters? `sesame calibrate` on these cores, for
        # the target the pods are sized for (the runbook's check of a
        # slower hash): it keeps the deployed parameters when they fit.
        env = state.of_kind("sesame")[0].env
        deployed = (int(env.get("SESAME_HASH_M_COST", 19456)), int(env.get("SESAME_HASH_T_COST", 2)))
        calibrated = d.run_tool([f.binary, "calibrate", "--target-ms", "25", "--seconds", "1"])
        d.figures["calibrate"] = calibrated_params(calibrated.stdout) | {"deployed": list(deployed)}
        if verdict is not None:
            # Caught before the SLO saw it, the canary's logins are slower
            # but not slower than the budget: triage looks for logins slower
            # than twice the fleet's usual median instead (the book's
            # "Triage" says when to lower --threshold-ms).
            d.diagnose(d.marks["injected"] - baseline_s, lambda c: c.get("stage") == "hash", timeout=30,
                       threshold_ms=2000 * baseline_p50)
    finally:
        day_load.terminate()
        day_load.wait(timeout=30)
    injected = d.marks["injected"]
    end = d.marks.get("latency restored", time.time())
    detected = d.marks.get("canary failed")
    after = State.load(f.dir)
    d.figures.update({
        "canary": canary,
        "bad_deploy": f"the canary's CPU limit {pod_cpus * BAD_CPU_SHARE:g} (stable: {pod_cpus:g})",
        "baseline_p50_ms": round(1000 * baseline_p50, 1),
        "canary_verdict": verdict,
        "time_to_detect_s": round(detected - d.marks["canary serving"], 1) if detected else None,
        "time_to_diagnose_s": round(d.marks["diagnosed"] - detected, 1) if "diagnosed" in d.marks else None,
        "time_to_roll_back_s": round(d.marks["rolled back"] - detected, 1) if detected else None,
        "time_to_mitigate_s": round(end - detected, 1) if detected and restored else None,
        "after_rollback": {p.name: p.extra.get("track") for p in after.of_kind("sesame")},
        "users_hurt": events.users_hurt(events.logs(f.dir), injected, end, lambda e: "canary" if e["instance"] == canary else "stable"),
    })
    d.limit("sesame canary fails the canary within 90 s of it serving", d.figures["time_to_detect_s"],
            detected is not None and d.figures["time_to_detect_s"] <= 90, "<= 90 s")
    # The canary judge names the track; triage must name the stage that
    # grew. Whether it also names the canary's instance depends on how many
    # slow logins the canary made before it was stopped (30 at least).
    first = (d.figures.get("triage", {}).get("causes") or [{}])[0]
    d.figures["triage_names_the_canary"] = f"instance={canary}" in first.get("group", [])
    d.limit("triage names the hash stage first within 30 s", first, "diagnosed" in d.marks, "stage hash")
    d.limit("the rollback restores the fleet's latency within 60 s", d.figures["time_to_mitigate_s"], restored,
            f"p50 <= 1.25 x {d.figures['baseline_p50_ms']} ms")
    calibrate = d.figures.get("calibrate", {})
    d.limit("sesame calibrate keeps the deployed hash parameters: the CPU limit, not the hash, was the change",
            calibrate, calibrate.get("params") == calibrate.get("deployed"), "same m and t")
    d.limit("every instance is stable after the rollback", d.figures["after_rollback"],
            set(d.figures["after_rollback"].values()) == {"stable"}, "all stable")
    # A bad canary hurts its own users until it is rolled back: that is the
    # blast radius a canary buys. The stable instances' users must not pay.
    stable = d.figures["users_hurt"].get("stable", {"hurt_share": 0.0})
    d.limit("the stable instances' users unhurt by the canary", stable["hurt_share"], stable["hurt_share"] <= 0.01,
            "<= 1% failed or slower than the budget")



# --- primary-crash ------------------------------------------------------------


PRIMARY_DOWN = ("SesamePrimaryDown",)


class WriteProbe:
    """A user writing through the balancer every `every` seconds,
    registering and changing passwords in turn, each write recorded with
    its start, its end, its status and its error code: what the users
    whose writes fall in an outage see."""

    def __init__(self, base, prefix, every=0.25):
        self.base, self.prefix, self.every = base, prefix, every
        self.records = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=30)

    def _run(self):
        accounts = []  # [name, password] of the registrations that took
        n = 0
        while not self.stopping.is_set():
            start = time.time()
            if n % 2 == 0 or not accounts:
                op, name, password = "register", f"{self.prefix}{n}", f"drill-first-{n}-password"
                status, body = client.request(self.base, "POST", "/v1/users", {"user": name, "password": password})
                if status == 201:
                    accounts.append([name, password])
            else:
                op = "change_password"
                account = accounts[(n // 2) % len(accounts)]
                new = f"drill-changed-{n}-password"
                status, body = client.request(self.base, "PUT", f"/v1/users/{account[0]}/password",
                                              {"old_password": account[1], "new_password": new})
                if status == 204:
                    account[1] = new
            error = ((body or {}).get("error") or {}).get("code") if isinstance(body, dict) else None
            self.records.append({"op": op, "start": start, "end": time.time(), "status": status, "error": error})
            n += 1
            self.stopping.wait(max(0.0, self.every - (time.time() - start)))

    def between(self, since, until):
        return [r for r in self.records if since <= r["start"] < until]

    def first_success_after(self, since):
        return next((r["end"] for r in self.records if r["start"] >= since and r["status"] in (201, 204)), None)


def primary_crash(d, short=True):
    """The primary database is killed (SIGKILL, no clean shutdown). Runbook:
    `SesamePrimaryDown` pages (an instance missed the primary's heartbeat);
    logins go on from the replicas, while registrations and password
    changes answer 503 `unavailable` at once, with a Retry-After; the
    primary is brought back (its pod restarted: here, the same data
    directory started again after InnoDB's crash recovery) and writes
    recover within a heartbeat. Promoting a replica instead is the
    failover issue's fault `promote`, not this drill."""
    f = d.f
    baseline_s, outage_s, after_s = 20, 40 if short else 120, 60
    raw = f.capacity()
    d.figures["raw_hashes_per_s"] = raw
    day_load = start_day(d, 0.2 * raw, PAGES + PRIMARY_DOWN)
    probe = WriteProbe(f.lb, f"drill-pc{int(time.time())}-")
    probe.start()
    alerts = []
    try:
        time.sleep(baseline_s)
        state = State.load(f.dir)
        primary = state.parts["primary"]
        signal_part(primary, signal.SIGKILL)
        d.mark("injected")
        alerts = d.wait_detected(timeout=60, names=PRIMARY_DOWN + PAGES)
        # Logins were not hurt: triage over them finds no cause to blame
        # the outage on (the page, not the login log, names the primary).
        if alerts:
            report, took = d.triage(d.marks["injected"] - baseline_s)
            d.figures["triage"] = triage_figures(report, 1, took)
        time.sleep(max(0.0, d.marks["injected"] + outage_s - time.time()))
        # The fix: the primary's pod restarts on its volume. Writes that
        # start while it is starting may already reach it, so the outage
        # ends when the restart begins.
        restart_begun = time.time()
        parts.start_mariadb(State.load(f.dir), "primary", fleet.PRIMARY_HOST, server_id=1, fresh=False)
        d.mark("primary back")
        if wait_until(lambda: probe.first_success_after(d.marks["primary back"]) is not None, timeout=30):
            d.mark("writes recover", probe.first_success_after(d.marks["primary back"]))
        if wait_until(lambda: not d.firing(PRIMARY_DOWN), timeout=after_s):
            d.mark("page resolved")
        caught_up = wait_until(lambda: all(replicating(f.part(n)) for n in ("replica-1", "replica-2")), timeout=30)
        if caught_up:
            d.mark("replicas replicating")
    finally:
        probe.stop()
        day_load.terminate()
        day_load.wait(timeout=30)
    injected, back = d.marks["injected"], d.marks["primary back"]
    recovered = d.marks.get("writes recover")
    outage_writes = probe.between(injected + 2, restart_begun)  # after two heartbeats: the primary is known down
    clear = [w for w in outage_writes if w["status"] == 503 and w["error"] == "unavailable"]
    slowest = max((w["end"] - w["start"] for w in outage_writes), default=None)
    d.figures.update({
        "alerts": alerts,
        "time_to_detect_s": round(d.marks["alert fired"] - injected, 1) if alerts else None,
        "outage_s": round(back - injected, 1),
        "writes_in_outage": {"count": len(outage_writes), "503_unavailable": len(clear),
                             "other": sorted({f"{w['op']} {w['status']} {w['error']}" for w in outage_writes if w not in clear}),
                             "slowest_s": round(slowest, 3) if slowest is not None else None},
        "time_to_recover_writes_s": round(recovered - back, 1) if recovered else None,
        "time_to_mitigate_s": round(recovered - d.marks["alert fired"], 1) if recovered and alerts else None,
        "users_hurt": events.users_hurt(events.logs(f.dir), injected, recovered or time.time(), lambda e: f"day {e.get('region', '?')}"),
    })
    d.limit("SesamePrimaryDown pages within 30 s of the crash", d.figures["time_to_detect_s"],
            "SesamePrimaryDown" in alerts and d.figures["time_to_detect_s"] <= 30, "<= 30 s")
    hurt = sum(g["failed"] + g["slow"] for g in d.figures["users_hurt"].values())
    logins = sum(g["logins"] for g in d.figures["users_hurt"].values())
    d.limit("logins go on from the replicas", f"{hurt} of {logins} failed or slow", logins > 0 and hurt <= 0.01 * logins,
            "<= 1% failed or slower than the budget")
    d.limit("every write in the outage answers 503 unavailable", d.figures["writes_in_outage"],
            outage_writes and len(clear) == len(outage_writes), "all 503 `unavailable`")
    d.limit("writes in the outage answer at once", slowest, slowest is not None and slowest <= 1.0, "<= 1 s each")
    d.limit("writes recover within 15 s of the primary's return", d.figures["time_to_recover_writes_s"],
            recovered is not None and recovered - back <= 15, "<= 15 s")
    d.limit("the page resolves and the replicas replicate again", [m for m in ("page resolved", "replicas replicating") if m in d.marks],
            "page resolved" in d.marks and "replicas replicating" in d.marks, "both")


def replicating(replica):
    """Whether a replica's both threads run and it has caught up."""
    fields = parts.sql_row(replica, "SHOW SLAVE STATUS")
    return fields.get("Slave_IO_Running") == "Yes" and fields.get("Slave_SQL_Running") == "Yes" \
        and fields.get("Seconds_Behind_Master") == "0"


# --- replica-lag --------------------------------------------------------------


REPLICA_LAG = ("SesameReplicaLagHigh",)
# How far before the injection the drill's triage looks.
LOOK_BACK_S = 15
# The backup's CPU on the replica: its pod's limit, which the dump's reads
# take, leaving the replica's own reads to wait for the next period.
BACKUP_CPU = 0.05


class Backup:
    """A backup job on a replica, as `mariadb-dump --lock-all-tables` or a
    locking `mariabackup` run there holds it: a global read lock (the SQL
    thread stops applying: lag grows a second a second) while its reads
    take the CPU the replica's pod has."""

    def __init__(self, state, replica):
        self.replica = replica
        sock = os.path.join(replica.extra["dir"], "sock")
        self.group = net.cpu_group(state, f"{replica.name}-cpu", BACKUP_CPU)
        net.join_group(self.group, replica.pid)
        state.save()
        argv = ["mariadb", "-S", sock, "-uroot", "-N", "-B", "-e"]
        self.sessions = [subprocess.Popen(argv + ["FLUSH TABLES WITH READ LOCK; SELECT SLEEP(3600);"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        # The dump's reads: statements of a few seconds each under the
        # replica's CPU limit, one after another, as its slow log shows them.
        script = os.path.join(replica.extra["dir"], "backup-reads.sql")
        with open(script, "w") as f:
            f.write("SELECT BENCHMARK(200000, SHA2('the dump', 512));\n" * 5000)
        for _ in range(2):
            with open(script) as reads:
                self.sessions.append(subprocess.Popen(argv[:-1], stdin=reads, stdout=subprocess.DEVNULL,
                                                      stderr=subprocess.DEVNULL))

    def end(self):
        """The backup ends: its sessions go (and with them the lock and the
        reads), and the replica gets its CPU back."""
        for session in self.sessions:
            session.kill()
            session.wait(timeout=10)
        # Killed clients leave their queries running until the server
        # notices; kill them there.
        for pid in parts.sql(self.replica, "SELECT id FROM information_schema.processlist WHERE info LIKE '%BENCHMARK%' OR info LIKE '%SLEEP(3600)%'").split():
            try:
                parts.sql(self.replica, f"KILL {pid}")
            except FleetError:
                pass
        net.join_group(net.root_group(), self.replica.pid)


def replica_lag(d, short=True):
    """A backup on replica-1 holds a global read lock and its CPU: the
    replica stops applying (its lag grows a second a second) and its reads
    get slow. Runbook: users whose lookups land there must not see seconds
    (each lookup's share of the login budget is bounded, then the next
    server is tried); past `--max-replica-lag` (5 s) every instance stops
    reading it by itself; `SesameReplicaLagHigh` names the replica; triage
    names replica reads and the db stage. The fix: the backup is stopped
    (in production, moved off the serving replicas), the replica catches
    up and comes back into rotation."""
    f = d.f
    baseline_s, incident_s = 30, 45 if short else 120
    raw = f.capacity()
    d.figures["raw_hashes_per_s"] = raw
    # A quieter day than the others' (15% of the raw rate): the incident's
    # slow reads last seconds, and less load means less noise around them.
    day_load = start_day(d, 0.15 * raw, PAGES + REPLICA_LAG)
    alerts, backup = [], None
    victim = f.part("replica-1")
    sesame_name = victim.address  # the `replica` label: host:port
    try:
        time.sleep(baseline_s)
        baseline_p50 = fleet_p50(d)
        d.figures["baseline_p50_ms"] = round(1000 * baseline_p50, 1)
        backup = Backup(State.load(f.dir), victim)
        d.mark("injected")
        if wait_until(lambda: all(not usable(i, sesame_name) for i in f.instances), timeout=30):
            d.mark("out of rotation")
        alerts = d.wait_detected(timeout=60, names=REPLICA_LAG + PAGES)
        if alerts:
            # Over the minutes around the alert, as an operator looks; the
            # slow reads last only until the lag bound takes the replica
            # out, so a long window would mostly add the hash's own noise on
            # shared cores.
            d.diagnose(d.marks["injected"] - LOOK_BACK_S, lambda c: c["kind"] == "replica_lag" and c.get("stage") == "db",
                       timeout=30, threshold_ms=2000 * baseline_p50)
            # Then what holds the replica back: its slow query log, digested.
            digest = d.run_tool([f.binary, "slowlog", os.path.join(victim.extra["dir"], "slow.log"),
                                 "--top", "3", "--json"])
            classes = json.loads(digest.stdout).get("classes", []) if digest.returncode == 0 else []
            d.figures["slowlog"] = [{"fingerprint": c["fingerprint"][:80], "count": c["count"],
                                     "query_time_s": round(c["metrics"]["Query_time"]["sum"], 1)} for c in classes]
        time.sleep(max(0.0, d.marks["injected"] + incident_s - time.time()))
        backup.end()
        backup = None
        d.mark("backup ends")
        if wait_until(lambda: all(usable(i, sesame_name) for i in f.instances), timeout=60):
            d.mark("back in rotation")
    finally:
        if backup is not None:
            backup.end()
        day_load.terminate()
        day_load.wait(timeout=30)
    injected = d.marks["injected"]
    end = d.marks.get("backup ends", time.time())
    d.figures.update({
        "replica": f"{victim.name} ({sesame_name})",
        "alerts": alerts,
        "alert_names_the_replica": any(l.get("replica") == sesame_name for l in d.figures.get("alert_labels", {}).get("SesameReplicaLagHigh", [])),
        "time_to_detect_s": round(d.marks["alert fired"] - injected, 1) if alerts else None,
        "time_to_diagnose_s": round(d.marks["diagnosed"] - d.marks["alert fired"], 1) if "diagnosed" in d.marks and alerts else None,
        "time_out_of_rotation_s": round(d.marks["out of rotation"] - injected, 1) if "out of rotation" in d.marks else None,
        "time_back_in_rotation_s": round(d.marks["back in rotation"] - end, 1) if "back in rotation" in d.marks else None,
        "users_hurt": events.users_hurt(events.logs(f.dir), injected, end, lambda e: f"read {e.get('db_role') or 'none'}"),
    })
    d.limit("SesameReplicaLagHigh fires within 30 s, naming the replica", d.figures["time_to_detect_s"],
            "SesameReplicaLagHigh" in alerts and d.figures["time_to_detect_s"] <= 30 and d.figures["alert_names_the_replica"], "<= 30 s")
    d.limit("every instance stops reading the replica within 15 s", d.figures["time_out_of_rotation_s"],
            "out of rotation" in d.marks and d.figures["time_out_of_rotation_s"] <= 15, "<= 15 s")
    first = (d.figures.get("triage", {}).get("causes") or [{}])[0]
    d.limit("triage names replica reads and the db stage first within 30 s", first, "diagnosed" in d.marks, "replica_lag, stage db")
    top = (d.figures.get("slowlog") or [{}])[0].get("fingerprint", "")
    d.limit("the replica's slow log names what holds it back first: the backup's reads", top,
            "benchmark" in top, "the backup's statement")
    slow = sum(g["slow"] + g["failed"] for g in d.figures["users_hurt"].values())
    logins = sum(g["logins"] for g in d.figures["users_hurt"].values())
    d.limit("no user sees seconds: logins over the budget in the incident", f"{slow} of {logins}",
            logins > 0 and slow <= 0.01 * logins, "<= 1% failed or slower than the budget")
    d.limit("the replica is back in rotation within 30 s of the backup's end", d.figures["time_back_in_rotation_s"],
            "back in rotation" in d.marks and d.figures["time_back_in_rotation_s"] <= 30, "<= 30 s")


def usable(instance, replica):
    """Whether `instance` reads `replica` now (from its /metrics): up and
    within the lag bound."""
    status, body = parts.http_get(instance["metrics_url"])
    if status != 200:
        return False
    up = lag = None
    for line in body.decode().splitlines():
        if f'replica="{replica}"' in line:
            if line.startswith("sesame_replica_up{"):
                up = float(line.rsplit(" ", 1)[1])
            elif line.startswith("sesame_replica_lag_seconds{"):
                lag = float(line.rsplit(" ", 1)[1])
    return up == 1 and lag is not None and lag <= MAX_REPLICA_LAG_S


# sesame serve's --max-replica-lag default.
MAX_REPLICA_LAG_S = 5.0



# --- stuffing -----------------------------------------------------------------


STUFFING = ("SesameFailedLoginSurge", "SesameRateLimitedSurge")
# The wave: this many addresses (198.19.0.0/16, `sesame load --attack-ips`),
# together at this many times the fleet's capacity, each one sending less
# than every per-address limit allows.
WAVE_ADDRESSES = 300
WAVE_FACTOR = 1.5
ATTACKER_NETWORK = "198.19."


def stuffing(d, short=True):
    """A credential-stuffing wave from a few hundred addresses on top of
    the day: wrong passwords for real and made-up accounts at 1.5x the
    fleet's capacity, each address under every per-address limit, so the
    limits do not stop it and every attempt costs a hash. Runbook (Fix, "An
    attack"): the page fires (logins shed), triage calls it an attack and
    names the source addresses, they are blocked (`sesame triage
    --deny-list FILE`, the file every instance reads with `sesame serve
    --deny-list`), and real users log in again while the wave goes on."""
    f = d.f
    baseline_s, wave_s, after_s = 30, 90 if short else 180, 45
    raw = f.capacity()
    capacity = f.saturation(raw, seconds=5)
    background = 0.3 * capacity
    attack = WAVE_FACTOR * capacity
    per_address_per_min = 60 * attack / WAVE_ADDRESSES
    d.figures.update({"raw_hashes_per_s": raw, "capacity_logins_per_s": round(capacity, 1),
                      "wave_rate": round(attack, 1),
                      "wave_addresses": WAVE_ADDRESSES,
                      "attempts_per_address_per_min": round(per_address_per_min, 1)})
    deny_list = parts.deny_list(State.load(f.dir))
    day_load = start_day(d, background, PAGES + STUFFING)
    alerts, wave = [], None
    try:
        time.sleep(baseline_s)
        wave = d.start_load(
            # A trickle of users of its own: the attacker needs a schedule.
            ["--rate", "0.2", "--duration", f"{wave_s}s", "--mix", "login=100",
             "--attack-rate", f"{attack:.1f}", "--attack-ips", str(WAVE_ADDRESSES),
             "--users", str(USERS), "--password", PASSWORD, "--connections", "1024", "--timeout", "5s"],
            "drill-wave.json",
        )
        d.mark("injected")
        alerts = d.wait_detected(timeout=60, names=PAGES + STUFFING)
        if alerts:
            block_the_wave(d, d.marks["injected"] - baseline_s, deny_list, timeout=75)
            if "blocked" in d.marks and "SLO holds again" not in d.marks:
                d.wait_slo_holds(timeout=after_s)
        wave.communicate(timeout=wave_s + 120)
        d.mark("wave ends")
    finally:
        if wave is not None and wave.poll() is None:
            wave.terminate()
            wave.wait(timeout=30)
        day_load.terminate()
        day_load.wait(timeout=30)
        # The block list is the drill's own: empty again for what runs next.
        parts.deny_list_clear(State.load(f.dir))
    injected, ended = d.marks["injected"], d.marks["wave ends"]
    in_force = d.marks.get("block in force")
    whole = d.marks.get("whole wave blocked") if in_force else None
    logs = events.logs(f.dir)

    def who(e):
        return "attacker" if e["ip"].startswith(ATTACKER_NETWORK) else "real users"

    d.figures.update({
        "alerts": alerts,
        "time_to_detect_s": round(d.marks["alert fired"] - injected, 1) if alerts else None,
        "time_to_diagnose_s": round(d.marks["diagnosed"] - d.marks["alert fired"], 1) if "diagnosed" in d.marks else None,
        "time_to_block_s": round(in_force - d.marks["alert fired"], 1) if in_force and alerts else None,
        "time_to_mitigate_s": round(d.marks["SLO holds again"] - d.marks["alert fired"], 1) if "SLO holds again" in d.marks and alerts else None,
        "users_hurt": events.users_hurt(logs, injected, ended, who),
        "users_hurt_before_the_block": events.users_hurt(logs, injected, in_force or ended, who),
        # Two seconds for the instances' last admitted attempts to drain.
        "users_hurt_after_the_block": events.users_hurt(logs, whole + 2, ended, who) if whole else None,
        "attacker_outcomes_after_the_block": outcomes(logs, whole + 2, ended, ATTACKER_NETWORK) if whole else None,
    })
    d.limit("an alert fires within 30 s of the wave", d.figures["time_to_detect_s"],
            alerts and d.figures["time_to_detect_s"] <= 30, "<= 30 s")
    blocked = d.figures.get("blocked", {})
    d.limit("triage calls it an attack first, with addresses, within 30 s of the alert", d.figures["time_to_diagnose_s"],
            "diagnosed" in d.marks and d.figures["time_to_diagnose_s"] <= 30, "<= 30 s")
    d.limit("triage's reruns name the whole wave", {k: blocked.get(k) for k in ("addresses", "of_the_wave")},
            blocked.get("of_the_wave", 0) >= 0.95 * WAVE_ADDRESSES, f">= {0.95 * WAVE_ADDRESSES:.0f} of {WAVE_ADDRESSES}")
    d.limit("no real user's address is blocked", blocked.get("not_of_the_wave"),
            blocked and not blocked["not_of_the_wave"], "none")
    d.limit("the first block is in force on every instance within 5 s of triage", 
            round(in_force - d.marks["blocked"], 1) if in_force else None,
            in_force is not None and in_force - d.marks["blocked"] <= 5, "<= 5 s")
    d.limit("the SLO holds again within 45 s of the block", d.figures["time_to_mitigate_s"],
            "SLO holds again" in d.marks, "<= 45 s")
    real = (d.figures["users_hurt_after_the_block"] or {}).get("real users", {"logins": 0, "hurt_share": 1.0})
    d.limit("real users log in while the wave goes on, once it is blocked", real["hurt_share"],
            real["logins"] > 0 and real["hurt_share"] <= 0.01, "<= 1% failed or slower than the budget")
    refused = d.figures["attacker_outcomes_after_the_block"] or {}
    attempts = sum(refused.values())
    d.limit("the wave is refused before any hash once blocked", refused,
            attempts > 0 and refused.get("rate_limited", 0) >= 0.99 * attempts, ">= 99% rate_limited")


def block_the_wave(d, since, deny_list, timeout):
    """The runbook's fix for an attack, as an operator does it: triage
    (with `--deny-list`, so that what it names is written where every
    instance reads its block list), rerun every 5 s while the wave goes on
    and its list grows (an address is named once it has failed on several
    accounts), until the SLO holds again and a rerun names no new address. Marks "diagnosed" and
    "blocked" at the first list, "block in force" when every instance has
    it."""
    deadline = time.monotonic() + timeout
    runs, named, cpu = 0, [], 0.0
    while time.monotonic() < deadline:
        report, took = d.triage(since, extra=["--deny-list", deny_list])
        runs, cpu = runs + 1, cpu + took
        first = report["causes"][0] if report["causes"] else {}
        now = first.get("addresses", []) if first.get("kind") == "attack" else []
        d.figures["triage"] = triage_figures(report, runs, cpu)
        if now and "diagnosed" not in d.marks:
            d.mark("diagnosed")
            d.mark("blocked")
            if wait_until(lambda: all(deny_list_entries(i) == len(now) for i in d.f.instances), timeout=10):
                d.mark("block in force")
        # Done once the SLO holds again and a rerun names no new address.
        if now and len(now) == len(named) and "SLO holds again" in d.marks:
            break
        named = now or named
        for _ in range(10):
            if "blocked" in d.marks and "SLO holds again" not in d.marks and d.slo_holds():
                d.mark("SLO holds again")
            time.sleep(0.5)
    d.figures["blocked"] = {
        "addresses": len(named),
        "of_the_wave": sum(a.startswith(ATTACKER_NETWORK) for a in named),
        "not_of_the_wave": [a for a in named if not a.startswith(ATTACKER_NETWORK)],
    }
    d.mark("whole wave blocked")


def deny_list_entries(instance):
    status, body = parts.http_get(instance["metrics_url"])
    if status != 200:
        return None
    for line in body.decode().splitlines():
        if line.startswith("sesame_deny_list_entries "):
            return int(float(line.rsplit(" ", 1)[1]))
    return None


def outcomes(paths, since, until, network):
    """Outcomes of the logins from addresses in `network`, counted."""
    counts = {}
    for e in events.login_events(paths, since, until):
        if e["ip"].startswith(network):
            counts[e["outcome"]] = counts.get(e["outcome"], 0) + 1
    return counts


def calibrated_params(output):
    """The parameters `sesame calibrate` recommends (its `sesame serve`
    line) and its time per hash."""
    found = {}
    for line in output.splitlines():
        words = line.split()
        if line.strip().startswith("sesame serve --hash-m-cost"):
            found["params"] = [int(words[words.index("--hash-m-cost") + 1]), int(words[words.index("--hash-t-cost") + 1])]
        elif "ms per hash" in line and "ms_per_hash" not in found:
            found["ms_per_hash"] = float(line.split(":")[1].split("ms")[0])
    return found


def fleet_p50(d):
    """The fleet's login p50 now, in seconds, from the shipped recording
    rule (its 5m window compressed to 5 s)."""
    values = [v for _, v in client.prom_query(d.f.d["prometheus"], "job:sesame_login_duration_seconds:p50_rate5m") if v == v]
    return max(values) if values else float("inf")


def judge_until_failed(d, timeout):
    """`sesame canary` against Prometheus every 5 s until it fails the
    canary (exit 1), as the rollout's analysis runs it; its verdict."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = d.run_tool(
            [d.f.binary, "canary", "--prometheus", d.f.d["prometheus"], "--baseline", 'track="stable"',
             "--canary", 'track="canary"', "--window", "40s", "--step", "4s", "--quantile", "0.5", "--json"],
        )
        verdict = json.loads(r.stdout) if r.stdout.strip() else {}
        # Until the canary has served long enough for the window, a side has
        # too few samples, which the judge fails as "no data": the rollout
        # waits (an analysis' initial delay); the drill judges again.
        waiting = any(m.get("result") == "no_data" for m in verdict.get("metrics", []))
        if r.returncode == 1 and not waiting:
            d.mark("canary failed")
            return {
                "verdict": verdict["verdict"],
                "score": verdict["score"],
                "failed": {m["name"]: m["reason"] for m in verdict["metrics"] if m["result"] == "fail"},
            }
        time.sleep(5)
    return None


def wait_until(condition, timeout):
    """Whether `condition` came true within `timeout`: `parts.wait_for`,
    with the timeout an answer rather than an error."""
    try:
        parts.wait_for("", condition, timeout=timeout, interval=0.5)
        return True
    except FleetError:
        return False


# Every alert a drill detects its incident by.
DETECTED = PAGES + PRIMARY_DOWN + REPLICA_LAG + STUFFING

RUN = {"surge": surge, "bad-deploy": bad_deploy, "replica-lag": replica_lag, "primary-crash": primary_crash,
       "stuffing": stuffing}


def run(directory, name, json_path=None, html_path=None, short=True, log=log_to_stderr):
    if name == "all":
        return run_all(directory, json_path, html_path, short, log)
    if name not in RUN:
        raise FleetError(f"no drill {name!r}; drills: {', '.join(DRILLS)}")
    d = Drill(directory, name, log)
    log(f"{name}: rules compressed {FACTOR}x (1h -> 1m, 5m -> 5s, for: 2m -> 2s)")
    d.f.seed()
    d.compress_rules()
    try:
        RUN[name](d, short)
    finally:
        # Under the compressed rules, with the traffic gone, what fired
        # resolves within seconds; put back while firing, an alert would be
        # left active in Alertmanager for minutes (its rule changed, so
        # Prometheus never resolves it) and hold up the next drill.
        wait_until(lambda: not d.firing(DETECTED), timeout=90)
        d.restore_rules()
    result = d.report()
    if html_path:
        start = d.marks.get("day traffic starts", min(d.marks.values()))
        d.timeline_html(html_path, start, max(d.marks.values()) + 5)
        result["html"] = html_path
    if json_path:
        with open(json_path, "w") as out:
            json.dump(result, out, indent=1)
    return result


def run_all(directory, json_path=None, html_dir=None, short=True, log=log_to_stderr):
    """Every drill, one after another on the same fleet, then the runbook
    check: each `sesame` command the runbook pages tell an operator to run
    must be one a drill ran. Passes when every drill and the check do."""
    reports, ran = {}, []
    if html_dir:
        os.makedirs(html_dir, exist_ok=True)
    for name in DRILLS:
        html = os.path.join(html_dir, f"{name}.html") if html_dir else None
        try:
            reports[name] = run(directory, name, None, html, short, log)
        except Exception as e:  # noqa: BLE001 - one drill's failure is its report; the others still run
            log(f"{name}: {type(e).__name__}: {e}")
            reports[name] = {"drill": name, "error": f"{type(e).__name__}: {e}", "passed": False}
        ran += [shlex.split(c) for c in reports[name].get("commands", [])]
    not_run = runbook.not_run(runbook.runbook_commands(parts.ROOT), ran)
    for line in not_run:
        log(f"  MISSED: the runbook's command is run by no drill: {line}")
    result = {
        "drills": reports,
        "runbook": {"pages": list(runbook.RUNBOOK), "not_run": not_run},
        "passed": all(r["passed"] for r in reports.values()) and not not_run,
    }
    if json_path:
        with open(json_path, "w") as out:
            json.dump(result, out, indent=1)
    return result
