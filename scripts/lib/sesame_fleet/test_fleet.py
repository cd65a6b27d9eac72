"""Unit tests of the fleet tool's own logic (no servers): the manifest
reader must find the pod's numbers and refuse a manifest that lacks them,
and fleets in two directories never share names or subnets.

  python3 -m unittest discover -s scripts/lib -p 'test_*.py'
"""

import json
import os
import tempfile
import unittest

from sesame_fleet import drills, events, faults, fleet, manifest, parts, rules, runbook, state

DEPLOYMENT = """
spec:
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 25%
  template:
    spec:
      terminationGracePeriodSeconds: 40
      containers:
        - name: sesame
          resources:
            limits:
              cpu: "1500m"
              memory: 192Mi
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
"""
KUSTOMIZATION = """
configMapGenerator:
  - name: sesame-config
    literals:
      - SESAME_LATENCY_BUDGET_MS=250
      - SESAME_DRAIN_DELAY=10
      - SESAME_GRACE_PERIOD=20
      - SESAME_HASH_WORKERS=2
"""


class ManifestTest(unittest.TestCase):
    def test_reads_the_pods_numbers(self):
        spec = manifest.parse(DEPLOYMENT, KUSTOMIZATION)
        self.assertEqual(spec.cpus, 1.5)
        self.assertEqual((spec.ready_period, spec.ready_timeout, spec.ready_failures), (5, 3, 2))
        self.assertEqual(spec.termination_grace, 40)
        self.assertEqual(spec.hash_workers, 2)
        self.assertEqual(spec.env["SESAME_LATENCY_BUDGET_MS"], "250")
        self.assertEqual((spec.surge(3), spec.unavailable(3)), (1, 0), "25% of 3 rounds up to one pod")
        self.assertEqual((spec.surge(8), spec.unavailable(8)), (2, 0))

    def test_the_shipped_manifests_parse(self):
        spec = manifest.load(parts.ROOT)
        self.assertGreater(spec.cpus, 0)
        self.assertGreater(spec.hash_workers, 0)

    def test_refuses_what_it_cannot_read(self):
        broken = {
            "no probe": (DEPLOYMENT.split("readinessProbe")[0], KUSTOMIZATION),
            "probe on another path": (DEPLOYMENT.replace("/readyz", "/healthz"), KUSTOMIZATION),
            "no period": (DEPLOYMENT.replace("periodSeconds: 5", ""), KUSTOMIZATION),
            "no cpu limit": (DEPLOYMENT.replace('cpu: "1500m"', ""), KUSTOMIZATION),
            "no grace": (DEPLOYMENT.replace("terminationGracePeriodSeconds: 40", ""), KUSTOMIZATION),
            "no hash workers": (DEPLOYMENT, KUSTOMIZATION.replace("- SESAME_HASH_WORKERS=2", "")),
            "no surge": (DEPLOYMENT.replace("maxSurge: 25%", ""), KUSTOMIZATION),
            "a rollout that cannot start": (DEPLOYMENT.replace("maxSurge: 25%", "maxSurge: 0"), KUSTOMIZATION),
        }
        for what, (deployment, kustomization) in broken.items():
            with self.subTest(what), self.assertRaises(manifest.ManifestError):
                manifest.parse(deployment, kustomization)


class PrerequisitesTest(unittest.TestCase):
    def test_names_the_package_of_each_missing_program(self):
        self.assertEqual(fleet.missing_packages(lambda program: None), sorted(set(fleet.PROGRAMS.values())))
        only_haproxy_missing = lambda program: None if program == "haproxy" else f"/usr/bin/{program}"  # noqa: E731
        self.assertEqual(fleet.missing_packages(only_haproxy_missing), ["haproxy"])
        self.assertEqual(fleet.missing_packages(lambda program: f"/usr/bin/{program}"), [])


class DrillFiguresTest(unittest.TestCase):
    def log(self, lines):
        d = tempfile.mkdtemp()
        path = os.path.join(d, "events.jsonl")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return [path]

    def event(self, second, outcome, status, total_ms, region="eu-west"):
        return json.dumps({"ts": f"2026-11-30T10:00:{second:02d}.000Z", "outcome": outcome, "status": status,
                           "total_ms": total_ms, "region": region, "ip": "10.0.0.1"})

    def test_users_hurt_counts_failures_and_slow_logins_in_the_window_by_group(self):
        t0 = events.epoch_of("2026-11-30T10:00:00.000Z")
        paths = self.log([
            self.event(1, "ok", 200, 30.0),
            self.event(2, "ok", 200, 251.0),                 # slow
            self.event(3, "overloaded", 503, 0.2),           # failed
            self.event(4, "invalid_credentials", 401, 40.0),
            self.event(5, "ok", 200, 20.0, region="us-east"),
            self.event(30, "overloaded", 503, 0.1),          # after the window
            "not json", '{"a": 1}', "",
        ])
        hurt = events.users_hurt(paths, t0, t0 + 10, lambda e: e["region"])
        self.assertEqual(hurt["eu-west"], {"logins": 4, "failed": 1, "slow": 1, "hurt_share": 0.5})
        self.assertEqual(hurt["us-east"]["hurt_share"], 0.0)
        answers = events.by_answer(paths, t0, t0 + 60)
        self.assertEqual(answers["shed"], {"p99_ms": 0.2, "count": 2})
        self.assertEqual(answers["expired"], {"p99_ms": None, "count": 0})
        self.assertEqual(answers["admitted"], {"p99_ms": 251.0, "count": 3})
        expired = self.log([json.dumps({"ts": "2026-11-30T10:00:01.000Z", "outcome": "overloaded", "status": 503,
                                        "total_ms": 300.0, "db_role": "replica"})])
        answers = events.by_answer(expired, t0, t0 + 60)
        self.assertEqual(answers["expired"], {"p99_ms": 300.0, "count": 1})
        self.assertEqual(answers["shed"], {"p99_ms": None, "count": 0})

    def test_a_missed_limit_fails_the_drill(self):
        d = drills.Drill.__new__(drills.Drill)
        d.name, d.marks, d.figures, d.limits, d.commands, d.log = "surge", {}, {}, [], [], lambda m: None
        d.limit("detected", 12.0, True, "<= 30 s")
        self.assertTrue(d.report()["passed"])
        d.limit("triage names the surge first", ["attack"], False, "['surge']")
        self.assertFalse(d.report()["passed"])

    def test_names_the_compressed_page_it_waits_for(self):
        # The drill checks that Prometheus took the compressed rules by the
        # fast-burn page's `for:`; the shipped rule must have it.
        with open(os.path.join(parts.ROOT, "deploy", "prometheus", "rules", "sesame-slo.yml")) as f:
            text = f.read()
        self.assertIn(f"alert: {drills.PAGES[0]}", text)
        compressed = rules.compress(text, drills.FACTOR)
        self.assertIn("for: 2s", compressed)
        for record in drills.SHORT_WINDOWS:
            self.assertIn(f"record: {record}", text)


class StateTest(unittest.TestCase):
    def test_two_directories_two_fleets(self):
        a, b = state.State.new("/tmp/fleet-a"), state.State.new("/tmp/fleet-b")
        self.assertNotEqual(a.id, b.id)
        self.assertNotEqual(a.bridge, b.bridge)
        self.assertLessEqual(len(a.bridge), 15, "interface names are at most 15 bytes")
        self.assertTrue(a.subnet.startswith("10.231."))

    def test_a_reused_pid_is_not_ours(self):
        me = state.Part(name="x", kind="test", pid=os.getpid(), start_time=state.start_time(os.getpid()))
        self.assertTrue(state.alive(me))
        me.start_time += 1
        self.assertFalse(state.alive(me), "same PID, other start time: another process")



class RulesTest(unittest.TestCase):
    def test_every_window_is_divided(self):
        from sesame_fleet import rules

        text = (
            "      - record: job:x:ratio_rate5m\n"
            "        expr: sum(rate(a{le=\"0.25\"}[5m])) / sum(rate(a[1h30m])) + max_over_time(b[30m:1m]) offset 2h\n"
            "        for: 2m\n"
            "        annotations:\n"
            "          summary: \"over [1h]\"\n"
        )
        out = rules.compress(text, 60)
        self.assertIn("rate(a{le=\"0.25\"}[5s])", out)
        self.assertIn("rate(a[1m30s])", out)
        self.assertIn("max_over_time(b[30s:1s])", out)
        self.assertIn("offset 2m", out)
        self.assertIn("for: 2s", out)
        self.assertIn("job:x:ratio_rate5m", out, "names keep their windows")
        self.assertIn("over [1h]", out, "prose is left alone")

    def test_refuses_what_it_cannot_read(self):
        from sesame_fleet import rules

        for bad in ("        for: soon\n", "        expr: rate(a[5q])\n"):
            with self.subTest(bad), self.assertRaises(rules.RuleError):
                rules.compress(bad, 60)
        with self.assertRaises(rules.RuleError):
            rules.compress("        for: 1ms\n", 60)

    def test_the_shipped_rules_compress_completely(self):
        import glob
        import re

        from sesame_fleet import rules

        for path in glob.glob(os.path.join(parts.ROOT, "deploy", "prometheus", "rules", "*.yml")):
            with open(path) as f:
                out = rules.compress(f.read(), 60)
            long_windows = [w for w in re.findall(r"\[([0-9a-z]+)\]", out) if rules.parse_ms(w) > 3 * 3_600_000 / 60 * 24]
            self.assertEqual(long_windows, [], path)


class RunbookTest(unittest.TestCase):
    PAGE = """
Run `sesame triage /var/log/sesame/events.jsonl --since 1h --threshold-ms 250`,
then `sesame plan --peak-logins RATE`; `sesame serve --slo-ms` is a setting.

```sh
sesame slowlog /var/log/mysql/slow.log --top 5   # the replica's
kubectl -n sesame rollout undo deployment/sesame
```
"""

    def test_the_commands_of_a_page_are_found_with_their_flags(self):
        found = runbook.commands_in(self.PAGE)
        self.assertEqual(found, {
            ("triage", frozenset({"--since", "--threshold-ms"})),
            ("plan", frozenset({"--peak-logins"})),
            ("slowlog", frozenset({"--top"})),
        })

    def test_a_documented_command_no_drill_ran_is_reported(self):
        documented = {("fix.md", c) for c in runbook.commands_in(self.PAGE)}
        ran = [
            ["/x/sesame", "triage", "a.jsonl", "b.jsonl", "--since", "2026-12-01T00:00:00Z",
             "--threshold-ms", "250", "--json"],
            ["/x/sesame", "plan", "--peak-logins=120", "--json"],
        ]
        self.assertEqual(runbook.not_run(documented, ran), ["fix.md: sesame slowlog --top"])
        # A drill's command with fewer flags does not cover it either.
        self.assertEqual(runbook.not_run(documented, ran + [["sesame", "slowlog", "slow.log"]]),
                         ["fix.md: sesame slowlog --top"])
        self.assertEqual(runbook.not_run(documented, ran + [["sesame", "slowlog", "slow.log", "--top", "3"]]), [])

    def test_the_shipped_runbook_has_commands(self):
        documented = runbook.runbook_commands(parts.ROOT)
        self.assertIn("triage", {c[0] for _, c in documented})


class FaultsTest(unittest.TestCase):
    def fleet(self):
        s = state.State.new(tempfile.mkdtemp())
        s.roles = {"primary": "replica-1", "redis": "redis-replica"}

        def part(name, kind, host, **extra):
            s.parts[name] = state.Part(name=name, kind=kind, ns=f"ns-{name}", ip=s.ip(host), port=1, extra=extra)

        part("primary", "mariadb", 2, dead=True)
        part("replica-1", "mariadb", 3)
        part("replica-2", "mariadb", 4)
        part("primary-vip", "haproxy", 5)
        part("redis", "redis", 10)
        part("redis-replica", "redis", 11)
        part("sentinel-1", "sentinel", 12)
        part("sesame-4", "sesame", 20)
        s.parts["haproxy"] = state.Part(name="haproxy", kind="haproxy")  # on the host: never partitioned
        return s

    def names(self, s, group):
        return sorted(p.name for p in faults.group(s, group))

    def test_groups_follow_the_roles_after_failovers(self):
        s = self.fleet()
        self.assertEqual(self.names(s, "primary"), ["primary-vip", "replica-1"])
        self.assertEqual(self.names(s, "replicas"), ["replica-2"])  # the killed one is not a replica
        self.assertEqual(self.names(s, "redis-master"), ["redis-replica"])
        self.assertEqual(self.names(s, "redis-replicas"), ["redis"])
        self.assertEqual(self.names(s, "redis"), ["redis", "redis-replica", "sentinel-1"])
        self.assertEqual(self.names(s, "everything"),
                         ["primary-vip", "redis", "redis-replica", "replica-1", "replica-2", "sentinel-1"])
        self.assertEqual(self.names(s, "sesame-4"), ["sesame-4"])

    def test_refuses_what_is_not_a_part_or_group(self):
        s = self.fleet()
        for name in ("haproxy", "sesame-9", ""):
            with self.assertRaises(parts.FleetError):
                faults.group(s, name)

    def test_the_most_advanced_replica_by_its_gtid(self):
        self.assertEqual(faults.gtid_seq("0-1-42"), 42)
        self.assertEqual(faults.gtid_seq("1-2-7,0-2-1337"), 1337)
        self.assertEqual(faults.gtid_seq(""), 0)
        self.assertEqual(faults.gtid_seq("1-2-7"), 0)

    def test_the_cache_url_names_the_sentinels(self):
        s = self.fleet()
        self.assertEqual(parts.cache_url(s), f"redis+sentinel://{s.ip(12)}:1/{parts.SENTINEL_SERVICE}")
        del s.parts["sentinel-1"]
        self.assertEqual(parts.cache_url(s), f"redis://{s.ip(11)}:1")


if __name__ == "__main__":
    unittest.main()
