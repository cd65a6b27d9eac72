"""The numbers a pod runs with, read from the Kubernetes manifests
(deploy/k8s/base), so that the local fleet tests what Kubernetes would run
rather than a copy that drifts: the SESAME_* settings of the config map,
the CPU limit, the readiness probe and the termination grace period."""

import os
import re
from dataclasses import dataclass


class ManifestError(Exception):
    pass


@dataclass
class PodSpec:
    env: dict  # SESAME_* from the config map
    cpus: float  # limits.cpu
    ready_period: int  # readinessProbe.periodSeconds
    ready_timeout: int  # readinessProbe.timeoutSeconds
    ready_failures: int  # readinessProbe.failureThreshold
    termination_grace: int  # terminationGracePeriodSeconds
    max_surge: str  # strategy.rollingUpdate.maxSurge: "25%" or "1"
    max_unavailable: str  # strategy.rollingUpdate.maxUnavailable

    def surge(self, replicas):
        """New pods a rolling update may start above `replicas` (Kubernetes
        rounds a percentage of maxSurge up)."""
        return _count(self.max_surge, replicas, round_up=True)

    def unavailable(self, replicas):
        """Old pods it may stop before their replacements are ready (a
        percentage of maxUnavailable rounds down)."""
        return _count(self.max_unavailable, replicas, round_up=False)

    @property
    def hash_workers(self):
        return int(self.env["SESAME_HASH_WORKERS"])


def _block(text, key):
    """The lines indented under `key:` (a YAML mapping key), or ''."""
    m = re.search(rf"^(\s*){re.escape(key)}:\s*\n((?:\1\s+.*\n|\s*\n)+)", text, re.M)
    return m.group(2) if m else ""


def _int(block, key, what):
    m = re.search(rf"^\s*{re.escape(key)}:\s*(\d+)\s*$", block, re.M)
    if not m:
        raise ManifestError(f"{what}: no {key}")
    return int(m.group(1))


def _count(value, replicas, round_up):
    if value.endswith("%"):
        share = int(value[:-1]) * replicas
        return -(-share // 100) if round_up else share // 100
    return int(value)


def _cpus(value):
    value = value.strip().strip('"')
    if value.endswith("m"):
        return int(value[:-1]) / 1000
    return float(value)


def parse(deployment, kustomization):
    """A PodSpec from the text of deployment.yaml and kustomization.yaml;
    ManifestError if any number is missing."""
    env = dict(re.findall(r"^\s*-\s*(SESAME_[A-Z_]+)=(\S*)\s*$", kustomization, re.M))
    for key in ("SESAME_HASH_WORKERS", "SESAME_DRAIN_DELAY", "SESAME_GRACE_PERIOD"):
        if key not in env:
            raise ManifestError(f"kustomization.yaml: config map has no {key}")
    probe = _block(deployment, "readinessProbe")
    if not probe:
        raise ManifestError("deployment.yaml: no readinessProbe")
    if "/readyz" not in probe:
        raise ManifestError("deployment.yaml: the readinessProbe does not ask /readyz")
    limits = _block(deployment, "limits")
    m = re.search(r"^\s*cpu:\s*(\S+)\s*$", limits, re.M)
    if not m:
        raise ManifestError("deployment.yaml: no resources.limits.cpu")
    update = _block(deployment, "rollingUpdate")
    surge = re.search(r"^\s*maxSurge:\s*(\d+%?)\s*$", update, re.M)
    unavailable = re.search(r"^\s*maxUnavailable:\s*(\d+%?)\s*$", update, re.M)
    if not (surge and unavailable):
        raise ManifestError("deployment.yaml: no rollingUpdate maxSurge and maxUnavailable")
    spec = PodSpec(
        env=env,
        cpus=_cpus(m.group(1)),
        ready_period=_int(probe, "periodSeconds", "readinessProbe"),
        ready_timeout=_int(probe, "timeoutSeconds", "readinessProbe"),
        ready_failures=_int(probe, "failureThreshold", "readinessProbe"),
        termination_grace=_int(deployment, "terminationGracePeriodSeconds", "deployment.yaml"),
        max_surge=surge.group(1),
        max_unavailable=unavailable.group(1),
    )
    if spec.surge(1) == 0 and spec.unavailable(1) == 0:
        raise ManifestError("deployment.yaml: maxSurge and maxUnavailable are both 0; a rollout could never start")
    return spec


def load(root):
    base = os.path.join(root, "deploy", "k8s", "base")
    with open(os.path.join(base, "deployment.yaml")) as d, open(
        os.path.join(base, "kustomization.yaml")
    ) as k:
        return parse(d.read(), k.read())
