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
    return PodSpec(
        env=env,
        cpus=_cpus(m.group(1)),
        ready_period=_int(probe, "periodSeconds", "readinessProbe"),
        ready_timeout=_int(probe, "timeoutSeconds", "readinessProbe"),
        ready_failures=_int(probe, "failureThreshold", "readinessProbe"),
        termination_grace=_int(deployment, "terminationGracePeriodSeconds", "deployment.yaml"),
    )


def load(root):
    base = os.path.join(root, "deploy", "k8s", "base")
    with open(os.path.join(base, "deployment.yaml")) as d, open(
        os.path.join(base, "kustomization.yaml")
    ) as k:
        return parse(d.read(), k.read())
