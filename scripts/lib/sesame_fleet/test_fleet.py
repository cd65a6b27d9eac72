"""Unit tests of the fleet tool's own logic (no servers): the manifest
reader must find the pod's numbers and refuse a manifest that lacks them,
and fleets in two directories never share names or subnets.

  python3 -m unittest discover -s scripts/lib -p 'test_*.py'
"""

import os
import unittest

from sesame_fleet import manifest, parts, state

DEPLOYMENT = """
spec:
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
        }
        for what, (deployment, kustomization) in broken.items():
            with self.subTest(what), self.assertRaises(manifest.ManifestError):
                manifest.parse(deployment, kustomization)


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


if __name__ == "__main__":
    unittest.main()
