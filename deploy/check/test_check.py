#!/usr/bin/env python3
"""The deploy checks must be able to fail: each case breaks one fact in a
copy of the repository and expects check.py to name it.

    python3 deploy/check/test_check.py --sesame target/debug/sesame
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# (file, old text, new text, words the failure must contain)
MUTATIONS = [
    ("deploy/k8s/base/deployment.yaml", "path: /healthz\n              port: http\n            periodSeconds: 10",
     "path: /readyz\n              port: http\n            periodSeconds: 10", "liveness probes /healthz"),
    ("deploy/k8s/base/deployment.yaml", "containerPort: 8080", "containerPort: 9090", "SESAME_LISTEN port"),
    ("deploy/k8s/base/deployment.yaml", "terminationGracePeriodSeconds: 40", "terminationGracePeriodSeconds: 20",
     "terminationGracePeriodSeconds 20"),
    ("deploy/k8s/base/deployment.yaml", "minReadySeconds: 10", "minReadySeconds: 10\n  minReadySecond: 10",
     "Additional properties"),
    ("deploy/k8s/overlays/production/size.yaml", "maxReplicas: 282", "maxReplicas: 200", "maxReplicas 200"),
    ("deploy/k8s/overlays/production/size.yaml", "memory: 256Mi\n            limits", "memory: 512Mi\n            limits",
     "requests = limits"),
    ("deploy/k8s/overlays/production/release.yaml", '"0.1.0-91fab48: ', '"0.0.9: ', "starts with the image tag"),
    ("deploy/k8s/overlays/production-rollouts/rollout.yaml", "setWeight: 25", "setWeight: twenty-five",
     "setWeight must be integer"),
    ("deploy/k8s/overlays/production-rollouts/analysistemplate.yaml", "backoffLimit: 0", "backoffLimit: none",
     "job of metric"),
    ("deploy/k8s/overlays/production-rollouts/kustomization.yaml", "newTag: 0.1.0-91fab48", "newTag: 0.1.0-old",
     "judge job runs the release image"),
    ("deploy/k8s/base/networkpolicy.yaml", "port: 6379", "port: 5432", "egress only to DNS, MySQL, Redis"),
    ("deploy/k8s/base/servicemonitor.yaml", "path: /metrics", "path: /stats", "scrapes /metrics"),
    ("deploy/k8s/base/hpa.yaml", "name: sesame_hash_queue_depth", "name: sesame_queue", "served by prometheus-adapter"),
    ("deploy/docker/Dockerfile", "USER 65532:65532", "USER root", "non-root USER"),
    # The image ships a stripped binary: the Dockerfile's own assertion fires
    # when the strip is gone, and the image must copy the stripped file.
    ("deploy/docker/Dockerfile", "objcopy --strip-debug --add-gnu-debuglink", "objcopy --add-gnu-debuglink",
     "still carries the debug sections"),
    ("deploy/docker/Dockerfile", "COPY --from=builder /sesame /usr/local/bin/sesame",
     "COPY --from=builder /src/target/release/sesame /usr/local/bin/sesame", "the image ships the stripped /sesame"),
    ("deploy/docker/Dockerfile", "FROM scratch AS debuginfo", "FROM scratch AS symbols",
     "a `debuginfo` target exports /sesame.debug"),
    ("deploy/k8s/base/kustomization.yaml", "SESAME_LATENCY_BUDGET_MS=250", "SESAME_LATENCY_BUDGET=250",
     "every SESAME_* variable is one `sesame serve` reads"),
    ("deploy/k8s/overlays/production-rollouts/analysistemplate.yaml", "[2m]))\n            /", "[2m])\n            /",
     "PromQL parses"),
    ("deploy/k8s/base/kustomization.yaml", "    options:\n      disableNameSuffixHash: true\n", "",
     "keeps its name (no hash suffix)"),
    ("deploy/k8s/base/deployment.yaml", "mountPath: /etc/sesame/deny-list", "mountPath: /etc/sesame/blocked",
     "is a file of a mounted ConfigMap"),
]

COPIED = ["deploy", ".dockerignore", "README.md", "docs/src", "crates/sesame-rollout/src", "crates/sesame-server/src", "crates/sesame-cli/src", "crates/sesame-toolkit/src"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sesame", required=True)
    args = parser.parse_args()
    passed, failed = 0, 0
    for file, old, new, expected in MUTATIONS:
        with tempfile.TemporaryDirectory() as tmp:
            for path in COPIED:
                source, target = ROOT / path, Path(tmp) / path
                if source.is_dir():
                    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
                elif source.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(source, target)
            modules = ROOT / "deploy/check/node_modules"
            (Path(tmp) / "deploy/check/node_modules").symlink_to(modules, target_is_directory=True)
            victim = Path(tmp) / file
            text = victim.read_text()
            if old not in text:
                print(f"FAIL {file}: {old!r} not found; update this test")
                failed += 1
                continue
            victim.write_text(text.replace(old, new, 1))
            out = subprocess.run(
                [sys.executable, str(Path(tmp) / "deploy/check/check.py"), "--sesame", args.sesame],
                capture_output=True, text=True,
            )
            caught = out.returncode != 0 and expected in out.stdout
            print(f"{'ok  ' if caught else 'FAIL'} {file}: {(new.splitlines() or ['(removed)'])[0].strip()!r} -> {expected!r}")
            if not caught:
                print(out.stdout[-2000:], out.stderr[-2000:])
            passed, failed = passed + caught, failed + (not caught)
    print(f"mutations: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
