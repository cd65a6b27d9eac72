"""The fleet's commands: up, status, deploy, down."""

import os
import shutil
import socket
import subprocess
import sys
import time

from . import manifest, net, parts
from .parts import FleetError, http_get, wait_for
from .state import State, alive, stop

# Host numbers inside the fleet's /24.
PRIMARY_HOST = 2
REPLICA_HOSTS = (3, 4)
REDIS_HOST = 10
REDIS_REPLICA_HOST = 11
SENTINEL_HOSTS = (12, 13, 14)
FIRST_INSTANCE_HOST = 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The programs a fleet runs, and the Debian package of each.
PROGRAMS = {
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "redis-server": "redis-server",
    "redis-sentinel": "redis-sentinel",
    "iptables": "iptables",
    "haproxy": "haproxy",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "ip": "iproute2",
}


def missing_packages(which=shutil.which):
    """The Debian packages whose programs are not on this machine, so that
    `up` stops before it starts anything rather than half-way."""
    return sorted({package for program, package in PROGRAMS.items() if which(program) is None})


def default_binary():
    built = os.environ.get("SESAME_BIN")
    if built:
        return built
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(parts.ROOT, "target"))
    binary = os.path.join(target, "debug", "sesame")
    if not os.path.exists(binary):
        subprocess.run(["cargo", "build", "-q", "-p", "sesame-cli"], cwd=parts.ROOT, check=True)
    return binary


def up(directory, instances=3, binary=None, args=(), log=print, semi_sync=True, sentinel=True):
    """Starts a fleet. `semi_sync`: replication acknowledged by a replica
    (off only for the failover checker's control run); `sentinel`: Redis
    with a replica and three sentinels, which the instances follow."""
    missing = missing_packages()
    if missing:
        raise FleetError(f"missing programs; install them first: apt-get install {' '.join(missing)}")
    existing = State.load(directory)
    if existing and any(alive(p) for p in existing.parts.values()):
        raise FleetError(f"a fleet is already up in {existing.dir}; `scripts/fleet down --dir {existing.dir}` first")
    if existing:
        down(directory, log=log)
    state = State.new(directory)
    namespaces, links = net.leftovers(state.id)
    if namespaces or links:
        raise FleetError(f"namespaces or links of fleet {state.id} exist already: {namespaces + links}")
    spec = manifest.load(parts.ROOT)
    os.makedirs(state.dir, exist_ok=True)
    state.binary = os.path.abspath(binary or default_binary())
    state.args = list(args)
    state.ports = {"lb": free_port(), "prometheus": free_port(), "alertmanager": free_port()}
    state.options = {"semi_sync": semi_sync, "sentinel": sentinel}
    state.roles = {"primary": "primary", "redis": "redis"}
    state.save()

    log(f"fleet {state.id}: network {state.subnet}.0/24 on {state.bridge}")
    net.make_bridge(state)
    log(f"starting MariaDB primary and two replicas ({'semi-synchronous' if semi_sync else 'asynchronous'})")
    primary = parts.start_mariadb(state, "primary", PRIMARY_HOST, server_id=1)
    replicas = [
        parts.start_mariadb(state, f"replica-{n}", host, server_id=1 + n)
        for n, host in enumerate(REPLICA_HOSTS, start=1)
    ]
    # Replicas first: with semi-sync, the primary's first commit waits for one.
    for replica in replicas:
        parts.replicate(replica, primary)
    parts.sql(primary, "CREATE DATABASE sesame")
    vip = parts.start_primary_vip(state)
    migrate = subprocess.run(
        [state.binary, "migrate", "--database", parts.mysql_url(vip)], capture_output=True, text=True
    )
    if migrate.returncode != 0:
        raise FleetError(f"sesame migrate: {migrate.stderr.strip()}")
    for replica in replicas:
        wait_for(
            f"{replica.name} has the schema",
            lambda r=replica: parts.sql(r, "SELECT COUNT(*) FROM sesame.heartbeat").strip() == "1",
        )
    if sentinel:
        log("starting Redis: a master, a replica and three sentinels")
        master = parts.start_redis(state, host=REDIS_HOST)
        parts.start_redis(state, "redis-replica", REDIS_REPLICA_HOST, replicaof=master)
        for n, host in enumerate(SENTINEL_HOSTS, start=1):
            parts.start_sentinel(state, f"sentinel-{n}", host, master)
        wait_for(
            "the sentinels know the replica",
            lambda: parts.redis_cli(master, "INFO", "replication").count("state=online") == 1,
        )
    else:
        log("starting Redis")
        parts.start_redis(state, host=REDIS_HOST)
    workers = parts.hash_workers(spec, instances)
    log(
        f"starting {instances} sesame instances ({spec.cpus:g} CPU limit, {workers} hash workers each; "
        f"the pods have {spec.hash_workers}, this machine {os.cpu_count()} cores)"
    )
    for _ in range(instances):
        name, host = next_instance(state)
        parts.wait_ready(parts.launch_sesame(state, name, host, state.binary, state.args, spec, workers))
    log("starting the supervisor, HAProxy, Alertmanager, Prometheus")
    start_supervisor(state)
    parts.start_haproxy(state, spec)
    parts.start_alertmanager(state)
    parts.start_prometheus(state)
    lb = f"http://127.0.0.1:{state.ports['lb']}"
    wait_for("the balancer answers /readyz", lambda: http_get(f"{lb}/readyz")[0] == 200, timeout=30)
    wait_for(
        "the balancer sees every instance up",
        lambda: all(s["status"] == "UP" for s in parts.haproxy_servers(state).values()),
        timeout=30,
    )
    return describe(state)


def describe(state, health=False):
    """The fleet as one JSON-able object (what `up` and `status` print)."""
    p = state.parts

    def url(part):
        return f"http://{part.address}"

    def mysql(part):
        out = {"name": part.name, "url": parts.mysql_url(part), "pid": part.pid}
        if health:
            out["up"] = alive(part)
        return out

    instances = []
    lb_servers = {}
    if health and "haproxy" in p and alive(p["haproxy"]):
        try:
            lb_servers = parts.haproxy_servers(state)
        except OSError:
            pass
    for part in state.of_kind("sesame"):
        entry = {
            "name": part.name,
            "url": url(part),
            "metrics_url": f"{url(part)}/metrics",
            "event_log": part.extra["event_log"],
            "pid": part.pid,
        }
        if health:
            entry["alive"] = alive(part)
            entry["ready"] = http_get(f"{url(part)}/readyz", timeout=1)[0] == 200
            server = lb_servers.get(part.name, {})
            entry["lb_state"] = server.get("status", "unknown")
        instances.append(entry)
    out = {
        "lb": f"http://127.0.0.1:{state.ports.get('lb')}",
        "prometheus": f"http://127.0.0.1:{state.ports.get('prometheus')}",
        "alertmanager": f"http://127.0.0.1:{state.ports.get('alertmanager')}",
        "instances": instances,
        "primary": mysql(state.primary) if "primary" in p else None,
        "primary_address": parts.mysql_url(p["primary-vip"]) if "primary-vip" in p else None,
        "replicas": [mysql(r) for r in state.replicas] if "primary" in p else [],
        "redis": {"url": f"redis://{state.redis_master.address}", "name": state.redis_master.name,
                  "pid": state.redis_master.pid} if "redis" in p else None,
        "cache_url": parts.cache_url(state) if "redis" in p else None,
        "options": state.options,
        "dir": state.dir,
    }
    if health:
        out["redis"]["up"] = alive(state.redis_master)
        for name in ("haproxy", "prometheus", "alertmanager"):
            out[f"{name}_up"] = name in p and alive(p[name])
        out["lb_ready"] = http_get(f"{out['lb']}/readyz", timeout=1)[0] == 200
    return out


def status(directory):
    state = State.load(directory)
    if state is None:
        raise FleetError(f"no fleet in {os.path.abspath(directory)}")
    return describe(state, health=True)


def deploy(directory, binary, args=None, log=print, only=None, track=None, cpus=None):
    """A rolling update, as the manifests' strategy would run it on
    Kubernetes (maxSurge 25%, maxUnavailable 0: capacity never drops). For
    each old instance: start its replacement (a new name, namespace and
    address, as a new pod gets), wait until it is ready and the balancer
    has it; then drain the old one out of the balancer (as Kubernetes takes
    a terminating pod out of its endpoints), SIGTERM it, and let its drain
    delay and grace period (the manifests' too) finish what it holds.
    `only` names the instances to replace (a canary, or its rollback);
    default: all. `args` become the fleet's flags when every instance is
    replaced, and only the replacements' otherwise. `track` labels the
    replacements' metrics (`canary`, `stable`); default: the replaced
    instance's. `cpus`: the replacements' CPU limit; default: the
    manifests'."""
    spec = manifest.load(parts.ROOT)
    with State.locked(directory) as state:
        if state is None:
            raise FleetError(f"no fleet in {os.path.abspath(directory)}")
        old_names = [p.name for p in state.of_kind("sesame") if only is None or p.name in only]
        unknown = set(only or ()) - {p.name for p in state.of_kind("sesame")}
        if unknown:
            raise FleetError(f"no such instances: {sorted(unknown)}")
        if args is not None and only is None:
            state.args = list(args)
        args = state.args if args is None else list(args)
        count = len(state.of_kind("sesame"))
    if spec.surge(count) < 1:
        raise FleetError("the manifests allow no surge: this fleet replaces with a surge of one")
    binary = os.path.abspath(binary)
    started = time.monotonic()
    replaced = []
    for old_name in old_names:
        t = time.monotonic()
        with State.locked(directory) as state:
            old = state.parts[old_name]
            workers = old.extra["hash_workers"]
            name, host = next_instance(state)
            new = parts.launch_sesame(
                state, name, host, binary, args, spec, workers,
                track=track or old.extra.get("track", "stable"), cpus=cpus,
            )
        parts.wait_ready(new)
        parts.haproxy_add(state, new, spec)
        wait_for(
            f"the balancer sees {name} up",
            lambda: parts.haproxy_servers(state).get(name, {}).get("status") == "UP",
            timeout=spec.ready_period * 3,
        )
        with State.locked(directory) as state:
            old = state.parts[old_name]
            old.extra["held"] = True  # the supervisor leaves it to the deploy
        parts.haproxy_command(state, f"set server sesame/{old_name} state drain")
        stop(old, grace=spec.termination_grace)
        parts.haproxy_remove(state, old_name)
        with State.locked(directory) as state:
            gone = state.parts.pop(old_name)
            net.remove_namespace(state, gone.ns)
            parts.write_targets(state)
        replaced.append((old_name, name))
        log(f"{old_name} replaced by {name} in {time.monotonic() - t:.1f} s")
    with State.locked(directory) as state:
        if only is None:
            state.binary = binary
    return {
        "deployed": binary,
        "replaced": [{"old": o, "new": n} for o, n in replaced],
        "instances": len(replaced),
        "seconds": round(time.monotonic() - started, 1),
    }


def next_instance(state):
    """The next instance's name and host number: names are never reused,
    as pod names are not."""
    n = state.ports.get("next_instance", len(state.of_kind("sesame")) + 1)
    state.ports["next_instance"] = n + 1
    host = FIRST_INSTANCE_HOST + (n - 1) % (250 - FIRST_INSTANCE_HOST)
    return f"sesame-{n}", host


# --- the supervisor: what the kubelet's restartPolicy Always does -----------

SUPERVISE_INTERVAL = 0.5
CRASH_LOOP_BACKOFF_MAX = 30.0


def start_supervisor(state):
    part = parts.Part(
        name="supervisor",
        kind="supervisor",
        argv=[sys.executable, os.path.join(parts.ROOT, "scripts", "fleet"), "supervise", "--dir", state.dir],
        log=os.path.join(state.dir, "supervisor.log"),
    )
    parts.spawn(state, part)


def supervise(directory, log=print):
    """Restarts every sesame instance that died (and is not held by a
    deploy or a fault), as the kubelet restarts a crashed container: at
    once the first time, then with a doubling back-off while it keeps
    crashing. Runs until the fleet is taken down."""
    spec = manifest.load(parts.ROOT)
    backoff = {}  # name -> (restarts in a row, not before)
    while True:
        with State.locked(directory) as state:
            if state is None:
                return
            for part in state.of_kind("sesame"):
                if part.extra.get("held") or alive(part):
                    continue
                streak, not_before = backoff.get(part.name, (0, 0.0))
                now = time.monotonic()
                if now < not_before:
                    continue
                parts.spawn(state, part, cgroup=net.cpu_group(state, part.name, part.extra.get("cpus", spec.cpus)))
                part.extra["restarts"] = part.extra.get("restarts", 0) + 1
                delay = min(CRASH_LOOP_BACKOFF_MAX, 2.0**streak) if streak else 0.0
                backoff[part.name] = (streak + 1, now + delay)
                log(f"{part.name} had exited; restarted (pid {part.pid}, restart {part.extra['restarts']})")
            for name, (streak, not_before) in list(backoff.items()):
                part = state.parts.get(name)
                if part and alive(part) and time.monotonic() > not_before + 10:
                    del backoff[name]  # up for 10 s: the streak is over
        time.sleep(SUPERVISE_INTERVAL)


def down(directory, log=print):
    """Stops everything the fleet started, by PID, and removes its
    namespaces, links and cgroups. Safe to run twice, and on a fleet that
    only half came up."""
    state = State.load(directory)
    if state is None:
        log(f"no fleet in {os.path.abspath(directory)}")
        return {"stopped": 0}
    stopped = 0
    # Front to back: nothing sends new work to a server that is going; the
    # supervisor first, so that it restarts nothing.
    order = ["supervisor", "haproxy", "prometheus", "alertmanager", "sesame", "sentinel", "redis", "mariadb"]
    for kind in order + sorted({p.kind for p in state.parts.values()} - set(order)):
        for part in state.of_kind(kind):
            if alive(part):
                stop(part, grace=5)
                stopped += 1
    state.save()
    net.remove(state)
    net.remove_groups(state)
    state.save()
    namespaces, links = net.leftovers(state.id)
    if namespaces or links:
        raise FleetError(f"left behind: {namespaces + links}")
    os.remove(state.path)
    return {"stopped": stopped}
