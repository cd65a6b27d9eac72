"""Where a fleet lives: its directory, its names and addresses, and the
record of what it started (fleet.json), so that every command finds the
same fleet again and `down` can stop exactly what `up` started."""

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import time
from dataclasses import dataclass, field, asdict

DEFAULT_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), "sesame-fleet")


def fleet_id(directory):
    """Four hex digits naming this fleet's namespaces and links: two fleets
    in two directories never share one."""
    return hashlib.sha1(os.path.abspath(directory).encode()).hexdigest()[:4]


def subnet_of(fid):
    """The fleet's private /24 (10.231.X.0/24): the only addresses besides
    loopback that its traffic ever goes to, all inside its own namespaces."""
    return f"10.231.{20 + int(fid, 16) % 200}"


@dataclass
class Part:
    """One server the fleet started."""

    name: str
    kind: str  # sesame, mariadb, redis, haproxy, prometheus, alertmanager
    pid: int = 0
    start_time: int = 0  # /proc start time: a reused PID is never signalled
    ns: str = ""  # network namespace ("" = the host's)
    ip: str = "127.0.0.1"
    port: int = 0
    argv: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    log: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def address(self):
        return f"{self.ip}:{self.port}"


@dataclass
class State:
    dir: str
    id: str
    subnet: str
    bridge: str
    binary: str = ""
    args: list = field(default_factory=list)
    parts: dict = field(default_factory=dict)  # name -> Part
    namespaces: list = field(default_factory=list)
    links: list = field(default_factory=list)
    cgroups: list = field(default_factory=list)
    ports: dict = field(default_factory=dict)  # lb, prometheus, alertmanager
    # Which server holds a role now: failovers move them ("primary": the
    # MariaDB the primary address leads to, "redis": the Redis master).
    roles: dict = field(default_factory=dict)
    # How the fleet was made: {"semi_sync": bool, "sentinel": bool}.
    options: dict = field(default_factory=dict)

    @classmethod
    def new(cls, directory):
        directory = os.path.abspath(directory)
        fid = fleet_id(directory)
        return cls(dir=directory, id=fid, subnet=subnet_of(fid), bridge=f"sf{fid}br")

    @property
    def path(self):
        return os.path.join(self.dir, "fleet.json")

    def save(self):
        os.makedirs(self.dir, exist_ok=True)
        data = asdict(self)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, directory):
        path = os.path.join(os.path.abspath(directory), "fleet.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            data = json.load(f)
        parts = {n: Part(**p) for n, p in data.pop("parts").items()}
        return cls(parts=parts, **data)

    @classmethod
    @contextlib.contextmanager
    def locked(cls, directory):
        """The fleet's state, read and saved under its lock: `deploy`, the
        supervisor and `fault` change it from different processes."""
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(os.path.abspath(directory), "fleet.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = cls.load(directory)
            yield state
            if state is not None and os.path.exists(state.path):
                state.save()

    def ip(self, host):
        return f"{self.subnet}.{host}"

    @property
    def gateway(self):
        """The bridge's address on the host: where the host-side parts
        (HAProxy, Prometheus) reach the namespaces from."""
        return self.ip(1)

    @property
    def primary(self):
        """The MariaDB that is the primary now."""
        return self.parts[self.roles.get("primary", "primary")]

    @property
    def replicas(self):
        """Every other MariaDB that runs or is meant to (a server killed for
        good is not one)."""
        return [p for p in self.of_kind("mariadb") if p.name != self.primary.name and not p.extra.get("dead")]

    @property
    def redis_master(self):
        return self.parts[self.roles.get("redis", "redis")]

    def of_kind(self, kind):
        return sorted(
            (p for p in self.parts.values() if p.kind == kind),
            key=lambda p: (len(p.name), p.name),
        )


# --- processes --------------------------------------------------------------


def start_time(pid):
    """The kernel's start time of `pid` (clock ticks since boot), or 0."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return 0


def alive(part):
    """Whether the process `part` names still runs (not a zombie, not a
    new process that reused its PID)."""
    if not part.pid:
        return False
    try:
        with open(f"/proc/{part.pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return rest[0] != "Z" and int(rest[19]) == part.start_time


def signal_part(part, sig):
    if alive(part):
        try:
            os.kill(part.pid, sig)
        except ProcessLookupError:
            pass


def stop(part, grace=10.0):
    """SIGTERM, then SIGKILL after `grace` seconds."""
    signal_part(part, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(part) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(part):
        signal_part(part, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while alive(part) and time.monotonic() < deadline:
            time.sleep(0.05)
    part.pid = 0
    part.start_time = 0
