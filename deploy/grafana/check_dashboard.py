#!/usr/bin/env python3
"""Checks deploy/grafana/sesame.json: well-formed, the panels operators rely
on are there, ids and layout are sane, every query names sesame metrics.

With --promtool it also has `promtool check rules` parse every query (each
wrapped in a recording rule), no server needed. With --prometheus URL it runs every panel, variable and annotation query
against that Prometheus (dashboard variables set to match everything) and
fails on any query Prometheus rejects; --require-data TITLE... names panels
whose queries must also return data.

    deploy/grafana/check_dashboard.py deploy/grafana/sesame.json
    deploy/grafana/check_dashboard.py deploy/grafana/sesame.json \
        --prometheus http://127.0.0.1:9090 --require-data "Login latency heatmap"
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

# What the dashboard must show (issue 6): latency heatmap, stage breakdown,
# queue depth, shed and rate-limited rates, split by region, platform, version.
REQUIRED = {
    "Login latency heatmap": "heatmap",
    "Stage breakdown: mean time per login": "timeseries",
    "Stage p99": "timeseries",
    "Hash queue depth": "timeseries",
    "Hash workers busy": "timeseries",
    "Shed logins/s by reason": "timeseries",
    "Rate-limited logins/s by scope": "timeseries",
    "Login p99 by region": "timeseries",
    "Login p99 by platform": "timeseries",
    "Login p99 by version": "timeseries",
    "Slow logins (> 250 ms) by region": "timeseries",
    "Slow logins (> 250 ms) by platform": "timeseries",
    "Slow logins (> 250 ms) by version": "timeseries",
    "Latency SLI (5m)": "stat",
    "Availability SLI (5m)": "stat",
}
REQUIRED_VARS = {"datasource", "job", "instance", "region", "platform", "version"}
# Values substituted for Grafana's variables when running queries for real.
SUBST = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "$job": ".*",
    "$instance": ".*",
    "$region": ".*",
    "$platform": ".*",
    "$version": ".*",
}


def fail(msg):
    print(f"check_dashboard: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def queries(dash):
    """(where, expr) for every PromQL expression in the dashboard."""
    for p in dash["panels"]:
        for t in p.get("targets", []):
            yield f"panel {p['title']!r} {t.get('refId')}", t["expr"]
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            yield f"annotation {a['name']!r}", a["expr"]


def check_structure(dash):
    if not dash.get("title") or not dash.get("uid"):
        fail("title and uid are required")
    panels = dash.get("panels")
    if not isinstance(panels, list) or not panels:
        fail("no panels")
    titles = {}
    ids = set()
    for p in panels:
        for k in ("id", "type", "title", "gridPos"):
            if k not in p:
                fail(f"panel {p.get('title')!r} lacks {k}")
        if p["id"] in ids:
            fail(f"duplicate panel id {p['id']}")
        ids.add(p["id"])
        g = p["gridPos"]
        if not (0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0 and g["y"] >= 0):
            fail(f"panel {p['title']!r} has a bad gridPos {g}")
        if p["type"] != "row":
            if not p.get("targets"):
                fail(f"panel {p['title']!r} has no queries")
            for t in p["targets"]:
                if t.get("datasource", {}).get("uid") != "${datasource}":
                    fail(f"panel {p['title']!r} does not use the $datasource variable")
        titles[p["title"]] = p["type"]
    for title, kind in REQUIRED.items():
        if titles.get(title) != kind:
            fail(f"missing {kind} panel {title!r}")
    heat = next(p for p in panels if p["title"] == "Login latency heatmap")
    if heat["targets"][0].get("format") != "heatmap" or "_bucket" not in heat["targets"][0]["expr"]:
        fail("the latency heatmap must plot histogram buckets in heatmap format")
    names = {v["name"] for v in dash.get("templating", {}).get("list", [])}
    if not REQUIRED_VARS <= names:
        fail(f"missing variables {sorted(REQUIRED_VARS - names)}")
    for where, expr in queries(dash):
        if "sesame" not in expr and not re.match(r"^up\b", expr):
            fail(f"{where}: query names no sesame metric: {expr}")
        if expr.count("(") != expr.count(")"):
            fail(f"{where}: unbalanced parentheses: {expr}")
    for var in ("$region", "$platform", "$version"):
        if not any(var in e for _, e in queries(dash)):
            fail(f"no panel is split by {var}")
    return sum(1 for _ in queries(dash))


def substitute(expr):
    for k in sorted(SUBST, key=len, reverse=True):
        expr = expr.replace(k, SUBST[k])
    return expr


def run_query(base, expr):
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    if body.get("status") != "success":
        return None, body.get("error", body)
    return body["data"]["result"], None


def check_live(dash, base, require_data):
    bad = []
    for where, expr in queries(dash):
        result, err = run_query(base, substitute(expr))
        if err is not None:
            bad.append(f"{where}: Prometheus rejected the query: {err}\n    {substitute(expr)}")
            continue
        title = where.split("'")[1] if "'" in where else where
        if title in require_data and not result:
            bad.append(f"{where}: no data\n    {substitute(expr)}")
    for v in dash["templating"]["list"]:
        q = v.get("query")
        if isinstance(q, dict):
            m = re.match(r"label_values\((.*),\s*(\w+)\)$", q["query"])
            if m:
                sel = substitute(m.group(1))
                result, err = run_query(base, f"count by ({m.group(2)}) ({sel})")
                if err is not None:
                    bad.append(f"variable {v['name']}: {err}")
                elif v["name"] in require_data and not result:
                    bad.append(f"variable {v['name']}: no values")
    if bad:
        fail("\n  " + "\n  ".join(bad))


def check_promtool(dash):
    """Parses every query with promtool: one recording rule per query."""
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, (where, expr) in enumerate(queries(dash)):
        lines += [f"      - record: dashboard:query:{i}", "        expr: " + json.dumps(substitute(expr))]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    try:
        r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        fail("promtool rejects a dashboard query:\n" + r.stdout + r.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dashboard")
    ap.add_argument("--promtool", action="store_true")
    ap.add_argument("--prometheus")
    ap.add_argument("--require-data", nargs="*", default=[])
    a = ap.parse_args()
    try:
        with open(a.dashboard) as f:
            dash = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{a.dashboard}: {e}")
    n = check_structure(dash)
    if a.promtool:
        check_promtool(dash)
    if a.prometheus:
        check_live(dash, a.prometheus, set(a.require_data))
        print(f"check_dashboard: OK: {n} queries accepted by {a.prometheus}")
    else:
        print(f"check_dashboard: OK: {len(dash['panels'])} panels, {n} queries")


if __name__ == "__main__":
    main()
