#!/usr/bin/env python3
"""`sesame canary --prometheus`, and the Argo AnalysisTemplate's Prometheus
metrics, against a real Prometheus: synthetic
`sesame_login_duration_seconds` histograms for five tracks are backfilled
with `promtool tsdb create-blocks-from openmetrics` at a fixed past time, a
Prometheus serves them on 127.0.0.1, and the judge is asked about that window
(`--end`): no waiting for scrapes, the same data every run.

    python3 deploy/check/canary_e2e.py --sesame target/debug/sesame
"""

import argparse
import json
import math
import random
import socket
import subprocess
import sys
import tempfile
import time
import re
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "deploy" / "k8s" / "overlays" / "production-rollouts" / "analysistemplate.yaml"

START = 1767225600  # 2026-01-01T00:00:00Z
SCRAPES = 100  # every 15 s: 25 minutes
END = "2026-01-01T00:25:00Z"
BUCKETS = [0.01, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05, 0.06, 0.075, 0.1, 0.25, 0.5, 1.0]

# track: (median latency s, share answered 5xx)
TRACKS = {
    "stable": (0.030, 0.003),
    "same": (0.030, 0.003),
    "slow": (0.039, 0.003),
    "failing": (0.030, 0.05),
    "sluggish": (0.200, 0.003),
}


def openmetrics(rng):
    lines = ["# TYPE sesame_login_duration_seconds histogram"]
    for track, (median, error_share) in TRACKS.items():
        for outcome in ("ok", "invalid_credentials", "overloaded"):
            counts = [0] * (len(BUCKETS) + 1)
            total, total_sum = 0, 0.0
            for scrape in range(SCRAPES):
                for _ in range(200):  # 200 logins per 15 s per track
                    roll = rng.random()
                    got = "overloaded" if roll < error_share else (
                        "invalid_credentials" if roll < error_share + 0.03 else "ok")
                    if got != outcome:
                        continue
                    seconds = 0.0003 if outcome == "overloaded" else median * math.exp(rng.gauss(0, 0.25))
                    for i, le in enumerate(BUCKETS):
                        if seconds <= le:
                            counts[i] += 1
                    counts[-1] += 1
                    total += 1
                    total_sum += seconds
                ts = START + 15 * scrape
                labels = f'namespace="sesame",track="{track}",outcome="{outcome}",region="eu",platform="web"'
                for le, c in zip([*map(str, BUCKETS), "+Inf"], counts):
                    lines.append(f'sesame_login_duration_seconds_bucket{{{labels},le="{le}"}} {c} {ts}')
                lines.append(f"sesame_login_duration_seconds_count{{{labels}}} {total} {ts}")
                lines.append(f"sesame_login_duration_seconds_sum{{{labels}}} {total_sum:.6f} {ts}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def judge(sesame, url, canary):
    out = subprocess.run(
        [sesame, "canary", "--prometheus", url,
         "--baseline", 'namespace="sesame",track="stable"',
         "--canary", f'namespace="sesame",track="{canary}"',
         "--end", END, "--window", "20m", "--json"],
        capture_output=True, text=True,
    )
    verdict = json.loads(out.stdout) if out.stdout else None
    return out.returncode, verdict, out.stderr


def analysis(url, canary):
    """Each Prometheus metric of the AnalysisTemplates, run as Argo would at
    END with track="canary" standing for `canary`: {metric: succeeded}."""
    results = {}
    for template in yaml.safe_load_all(TEMPLATES.read_text()):
        for metric in template["spec"]["metrics"]:
            prom = metric.get("provider", {}).get("prometheus")
            if not prom:
                continue
            query = prom["query"].replace("{{args.namespace}}", "sesame")
            query = query.replace('track="canary"', f'track="{canary}"')
            params = urllib.parse.urlencode({"query": query, "time": "2026-01-01T00:25:00Z"})
            with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=10) as r:
                data = json.load(r)["data"]["result"]
            value = float(data[0]["value"][1]) if data else math.nan
            # The conditions here are all `result[0] <= LIMIT`.
            limit = re.fullmatch(r"result\[0\] <= ([\d.]+)", metric["successCondition"].strip())
            if limit is None:
                raise SystemExit(f"canary e2e: cannot evaluate {metric['successCondition']!r}")
            results[metric["name"]] = value <= float(limit.group(1))
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sesame", required=True)
    args = parser.parse_args()
    passed, failed = 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "data.om").write_text(openmetrics(random.Random(42)))
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q",
                        str(tmp / "data.om"), str(tmp / "tsdb")], check=True)
        (tmp / "prometheus.yml").write_text("global: {}\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp / 'tsdb'}", "--storage.tsdb.retention.time=100y",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{url}/-/ready", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                raise SystemExit("canary e2e: Prometheus did not become ready")
            for canary, want_code, want in [
                ("same", 0, {}),
                ("slow", 1, {"latency": "fail"}),
                ("failing", 1, {"error_rate": "fail", "latency": "pass"}),
                ("sluggish", 1, {"latency": "fail"}),
            ]:
                code, verdict, stderr = judge(args.sesame, url, canary)
                results = {m["name"]: m["result"] for m in (verdict or {}).get("metrics", [])}
                ok = code == want_code and all(results.get(k) == v for k, v in want.items())
                samples = [m for m in (verdict or {}).get("metrics", []) if m["name"] == "latency"]
                print(f"{'ok  ' if ok else 'FAIL'} stable vs {canary}: exit {code} (want {want_code}), {results}")
                if samples:
                    m = samples[0]
                    print(f"     latency p99 medians {m['baseline']} vs {m['canary']} ms, p={m['p_value']}")
                if not ok:
                    print(stderr)
                passed, failed = passed + ok, failed + (not ok)
            for canary, failing in [
                ("same", set()),
                ("slow", {"canary-p99-vs-stable"}),
                ("failing", {"canary-error-rate"}),
                ("sluggish", {"canary-latency-slo", "canary-p99-vs-stable"}),
            ]:
                results = analysis(url, canary)
                ok = bool(results) and {m for m, good in results.items() if not good} == failing
                print(f"{'ok  ' if ok else 'FAIL'} AnalysisTemplate, stable vs {canary}: {results}")
                passed, failed = passed + ok, failed + (not ok)
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=30)
    print(f"canary e2e: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
