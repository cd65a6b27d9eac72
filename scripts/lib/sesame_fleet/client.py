"""Talking to the fleet as its clients do: single HTTP requests to the
balancer or straight to one instance, `sesame load` runs through the
balancer, and Prometheus queries."""

import json
import os
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request


def request(base, method, path, body=None, token=None, timeout=5.0):
    """(status, parsed JSON body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def register(base, user, password):
    return request(base, "POST", "/v1/users", {"user": user, "password": password})[0]


def login(base, user, password, ip=None):
    body = {"user": user, "password": password}
    if ip:
        body["ip"] = ip
    status, answer = request(base, "POST", "/v1/login", body)
    return status, (answer or {}).get("session")


def session(base, token):
    return request(base, "GET", "/v1/session", token=token)[0]


def logout(base, token):
    return request(base, "DELETE", "/v1/session", token=token)[0]


def change_password(base, user, old, new):
    return request(
        base, "PUT", f"/v1/users/{user}/password", {"old_password": old, "new_password": new}
    )[0]


def run_load(binary, target, args, timeout=600):
    """Runs `sesame load` against `target` with `args`; its JSON report."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        report = f.name
    try:
        r = subprocess.run(
            [binary, "load", "--target", target, "--no-progress", "--json", report] + list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if r.returncode not in (0, 1):  # 1: the run had errors; the report says which
            raise RuntimeError(f"sesame load failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
        with open(report) as f:
            return json.load(f)
    finally:
        os.unlink(report)


def json_file(path):
    with open(path) as f:
        return json.load(f)


def start_load(binary, target, args, report):
    """`sesame load` in the background; returns the process."""
    return subprocess.Popen(
        [binary, "load", "--target", target, "--no-progress", "--json", report] + list(args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def prom_query(prometheus, expr, at=None):
    """An instant query's result: [(labels, float value)]."""
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        data = json.load(r)
    if data.get("status") != "success":
        raise RuntimeError(f"prometheus: {expr}: {data}")
    return [(s["metric"], float(s["value"][1])) for s in data["data"]["result"]]


def wait_scraped(prometheus, after, timeout=30):
    """Waits until every target has been scraped after `after` (epoch s)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with urllib.request.urlopen(f"{prometheus}/api/v1/targets", timeout=5) as r:
            targets = json.load(r)["data"]["activeTargets"]
        scraped = [t.get("lastScrape", "") for t in targets]
        if targets and all(s and _epoch(s) > after for s in scraped):
            return
        time.sleep(0.5)
    raise RuntimeError("prometheus did not scrape every instance in time")


def _epoch(rfc3339):
    """Seconds since the epoch of Prometheus' RFC 3339 times (nanoseconds,
    which Python's parser does not take)."""
    from datetime import datetime, timezone

    whole, _, rest = rfc3339.rstrip("Z").partition(".")
    digits = "".join(c for c in rest if c.isdigit())
    t = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp()
    return t + (float("0." + digits) if digits else 0.0)
