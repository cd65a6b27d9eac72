"""Drill rules: the shipped Prometheus rules with every window divided by
one factor, generated from deploy/prometheus/rules and never edited by
hand. A drill compresses an hour into a minute (factor 60): a `[1h]` range
becomes `[1m]`, `for: 2m` becomes `for: 2s`. Rule names keep their windows
(`job:sesame_login_slow:ratio_rate5m` then holds a 5 s ratio), so the
alerts, which refer to the names, are unchanged."""

import re

UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}
DURATION = re.compile(r"^(?:\d+(?:ms|[smhdwy]))+$")
PART = re.compile(r"(\d+)(ms|[smhdwy])")


class RuleError(Exception):
    pass


def parse_ms(text):
    """A Prometheus duration (`90s`, `1h30m`, `500ms`) in milliseconds."""
    if not DURATION.match(text):
        raise RuleError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * UNITS_MS[u] for n, u in PART.findall(text))


def format_ms(ms):
    """Milliseconds as the shortest exact Prometheus duration."""
    ms = int(round(ms))
    if ms <= 0:
        raise RuleError("a window shrank to nothing")
    out = []
    for unit in ("h", "m", "s", "ms"):
        size = UNITS_MS[unit]
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)


def compress(text, factor):
    """The rules file `text` with every range window, subquery step,
    `offset` and `for:` divided by `factor`. Raises RuleError on a duration
    it cannot read, so that no window is left uncompressed by accident."""
    if factor < 1:
        raise RuleError("the factor must be at least 1")

    def scale(d):
        return format_ms(parse_ms(d) / factor)

    def window(m):
        inner = m.group(1)
        if ":" in inner:  # subquery [range:step]
            rng, step = inner.split(":", 1)
            return f"[{scale(rng)}:{scale(step) if step else ''}]"
        return f"[{scale(inner)}]"

    out = []
    for line in text.splitlines(keepends=True):
        stripped = line.lstrip()
        m = re.match(r"(\s*)(for|keep_firing_for):\s*(\S+)(\s*)$", line)
        if m:
            line = f"{m.group(1)}{m.group(2)}: {scale(m.group(3))}{m.group(4)}"
        elif not stripped.startswith(("#", "- record:", "record:", "- alert:", "alert:", "summary:", "description:", "runbook:")):
            # Range vectors and subqueries in expressions; label values in
            # quotes are left alone.
            line = re.sub(r"\[([0-9a-z:]+)\]", window, line)
            line = re.sub(r"\boffset\s+(\d+(?:ms|[smhdwy])+)", lambda m: f"offset {scale(m.group(1))}", line)
        out.append(line)
    return "".join(out)


def write_compressed(sources, directory, factor):
    """Compressed copies of the rule files `sources` in `directory`; their
    paths."""
    import os

    os.makedirs(directory, exist_ok=True)
    paths = []
    for source in sources:
        with open(source) as f:
            text = f.read()
        path = os.path.join(directory, os.path.basename(source))
        with open(path, "w") as f:
            f.write(f"# GENERATED from {os.path.relpath(source)} with every window divided by {factor}; do not edit.\n")
            f.write(compress(text, factor))
        paths.append(path)
    return paths
