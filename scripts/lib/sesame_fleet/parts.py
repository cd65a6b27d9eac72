"""Starting the fleet's servers, each from its installed package: MariaDB
(primary and binlog replicas), Redis, sesame, HAProxy, Prometheus and
Alertmanager. Each runs in the background with its log in the fleet's
directory; its PID and start time go into fleet.json."""

import glob
import json
import os
import shutil
import subprocess
import time
import urllib.request

from . import net
from .state import Part, alive, start_time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


class FleetError(Exception):
    pass


def spawn(state, part, cgroup=None):
    """Starts `part` (in its namespace, if any) and records its PID."""
    argv = list(part.argv)
    if part.ns:
        # `ip netns exec` execs the command: the PID is the server's.
        argv = ["ip", "netns", "exec", part.ns] + argv
    env = dict(os.environ)
    env.update(part.env)
    with open(part.log, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    net.join_group(cgroup, proc.pid)
    part.pid = proc.pid
    time.sleep(0.01)
    part.start_time = start_time(proc.pid)
    state.parts[part.name] = part
    state.save()
    return part


def namespace_of(state, name, host):
    """The namespace of part `name`: the one it had (a restart keeps its
    address), else a new one at SUBNET.host."""
    old = state.parts.get(name)
    return old.ns if old else net.make_namespace(state, name, host)


def wait_for(what, check, timeout=30.0, part=None, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        if part is not None and not alive(part):
            raise FleetError(f"{what}: {part.name} exited; see {part.log}")
        time.sleep(interval)
    raise FleetError(f"{what}: not within {timeout:.0f} s" + (f"; see {part.log}" if part else ""))


def http_get(url, timeout=2.0):
    """(status, body) of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


# --- MariaDB ----------------------------------------------------------------

MARIADBD = "/usr/sbin/mariadbd"
MARIADB_TUNING = [
    "--innodb-buffer-pool-size=64M",
    "--innodb-log-file-size=16M",
    "--skip-name-resolve",
    "--max-connections=1000",
    "--log-bin=binlog",
    "--binlog-format=ROW",
    "--log-slave-updates",
]


def mariadb_template():
    """A data directory made by mariadb-install-db once per machine and
    server version, copied for every server."""
    version = subprocess.run([MARIADBD, "--version"], capture_output=True, text=True).stdout
    tag = "".join(c for c in version if c.isalnum())[:60]
    cache = f"/var/tmp/sesame-fleet-mariadb-{tag}"
    if os.path.exists(os.path.join(cache, "ready")):
        return os.path.join(cache, "data")
    building = f"{cache}.{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={building}/data",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--user=root",
        ],
        check=True,
        capture_output=True,
    )
    open(os.path.join(building, "ready"), "w").close()
    try:
        os.rename(building, cache)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
    return os.path.join(cache, "data")


def sql(part, statement, timeout=5, names=False):
    """Runs SQL on a MariaDB of the fleet through its socket; rows as text,
    tab-separated (with a first line of column names if `names`)."""
    sock = os.path.join(part.extra["dir"], "sock")
    r = subprocess.run(
        ["mariadb", "-S", sock, "-uroot", *([] if names else ["-N"]), "-B", f"--connect-timeout={timeout}", "-e", statement],
        capture_output=True,
        text=True,
        timeout=timeout + 5,
    )
    if r.returncode != 0:
        raise FleetError(f"{part.name}: {statement[:60]}: {r.stderr.strip()}")
    return r.stdout


def sql_row(part, statement, timeout=5):
    """The first row of a statement's answer, by column name ({} if none)."""
    lines = sql(part, statement, timeout, names=True).splitlines()
    return dict(zip(lines[0].split("\t"), lines[1].split("\t"))) if len(lines) > 1 else {}


# Semi-synchronous replication (MariaDB's built-in): a commit on the
# primary is acknowledged to its client only once a replica has it in its
# relay log, and other clients see it only then (AFTER_SYNC). No fallback to
# asynchronous: the timeout is a day, so a write no replica acknowledges
# waits; sesame gives up on it at its deadline and answers 503
# `unavailable` (the write may still commit later, as after any 503 once
# sent), and its heartbeat finds the primary down, so later writes are
# refused at once. Falling back would acknowledge writes a promoted replica
# lacks: an old password that works again.
SEMI_SYNC_TIMEOUT_MS = 24 * 3600 * 1000


def semi_sync_flags(state, primary):
    if not state.options.get("semi_sync"):
        return []
    flags = ["--rpl-semi-sync-slave-enabled=ON"]
    if primary:
        flags += [
            "--rpl-semi-sync-master-enabled=ON",
            f"--rpl-semi-sync-master-timeout={SEMI_SYNC_TIMEOUT_MS}",
            "--rpl-semi-sync-master-wait-point=AFTER_SYNC",
            "--rpl-semi-sync-master-wait-no-slave=ON",
        ]
    return flags


def start_mariadb(state, name, host, server_id, fresh=True, primary=None):
    """A mariadbd in namespace `name`, listening on SUBNET.host:3306.
    `primary`: whether it starts as the primary (default: whether it holds
    the role now)."""
    if primary is None:
        primary = state.roles.get("primary", "primary") == name
    data = os.path.join(state.dir, name)
    if fresh:
        shutil.rmtree(data, ignore_errors=True)
        os.makedirs(data)
        subprocess.run(["cp", "-a", mariadb_template(), os.path.join(data, "data")], check=True)
    ns = namespace_of(state, name, host)
    part = Part(
        name=name,
        kind="mariadb",
        ns=ns,
        ip=state.ip(host),
        port=3306,
        argv=[
            MARIADBD,
            "--no-defaults",
            f"--datadir={data}/data",
            "--user=root",
            "--port=3306",
            f"--bind-address={state.ip(host)}",
            f"--socket={data}/sock",
            f"--pid-file={data}/pid",
            f"--log-error={data}/error.log",
            f"--server-id={server_id}",
            # What an operator digests with `sesame slowlog`.
            "--slow-query-log=1",
            f"--slow-query-log-file={data}/slow.log",
            "--long-query-time=0.1",
        ]
        + MARIADB_TUNING
        + semi_sync_flags(state, primary),
        log=os.path.join(data, "stdout.log"),
        extra={"dir": data, "server_id": server_id, "host": host},
    )
    spawn(state, part)
    wait_for(f"{name} answering", lambda: sql(part, "SELECT 1", timeout=1), part=part)
    if fresh:
        # Root from the fleet's addresses, on this server only (not
        # replicated: every server makes its own).
        sql(
            part,
            "SET sql_log_bin = 0; CREATE USER 'root'@'10.231.%'; "
            "GRANT ALL ON *.* TO 'root'@'10.231.%' WITH GRANT OPTION;",
        )
    return part


def replicate(replica, primary):
    sql(
        replica,
        f"CHANGE MASTER TO MASTER_HOST='{primary.ip}', MASTER_PORT={primary.port}, "
        "MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, "
        "MASTER_CONNECT_RETRY=1; START SLAVE;",
    )


def mysql_url(part, schema="sesame"):
    return f"mysql://root@{part.address}/{schema}"


# --- the primary's address: a TCP proxy that a promotion moves --------------

PRIMARY_VIP_HOST = 5


def primary_vip_config(state):
    """HAProxy in TCP mode in a namespace of its own: the fleet's primary
    address, as a deployment's VIP or proxy is. One server line per
    MariaDB, only the primary's in service; `move_primary_vip` changes
    which."""
    servers = "".join(
        f"    server {p.name} {p.address}" + ("" if p.name == state.primary.name else " disabled") + "\n"
        for p in state.of_kind("mariadb")
    )
    path = os.path.join(state.dir, "primary-vip.cfg")
    with open(path, "w") as f:
        f.write(
            "global\n"
            f"    stats socket {state.dir}/primary-vip.sock mode 600 level admin\n"
            "defaults\n"
            "    mode tcp\n"
            "    timeout connect 1s\n"
            "    timeout client 1h\n"
            "    timeout server 1h\n"
            "listen primary\n"
            f"    bind {state.ip(PRIMARY_VIP_HOST)}:3306\n" + servers
        )
    return path


def start_primary_vip(state):
    config = primary_vip_config(state)
    ns = namespace_of(state, "primary-vip", PRIMARY_VIP_HOST)
    part = Part(
        name="primary-vip",
        kind="haproxy",
        ns=ns,
        ip=state.ip(PRIMARY_VIP_HOST),
        port=3306,
        argv=["haproxy", "-db", "-f", config],
        log=os.path.join(state.dir, "primary-vip.log"),
        extra={"socket": os.path.join(state.dir, "primary-vip.sock")},
    )
    spawn(state, part)
    wait_for("the primary address answers", lambda: sql_via(state, part, "SELECT 1"), part=part)
    return part


def sql_via(state, part, statement, timeout=5):
    """SQL over TCP to `part`'s address (from the primary's namespace, which
    can reach every address in the fleet)."""
    r = subprocess.run(
        ["ip", "netns", "exec", state.primary.ns, "mariadb", "-h", part.ip, "-P", str(part.port), "-uroot",
         "-N", "-B", f"--connect-timeout={timeout}", "-e", statement],
        capture_output=True, text=True, timeout=timeout + 5,
    )
    if r.returncode != 0:
        raise FleetError(f"{part.name}: {statement[:60]}: {r.stderr.strip()}")
    return r.stdout


def move_primary_vip(state, to):
    """Sends new connections to MariaDB `to` and cuts the ones to every
    other server, so no client keeps writing to a former primary."""
    vip_command(state, f"set server primary/{to} state ready")
    for p in state.of_kind("mariadb"):
        if p.name != to:
            vip_command(state, f"set server primary/{p.name} state maint")
            vip_command(state, f"shutdown sessions server primary/{p.name}")


def vip_command(state, command):
    text = haproxy_command(state, command, sock=state.parts["primary-vip"].extra["socket"]).strip()
    if text:
        raise FleetError(f"primary-vip: {command}: {text}")


# --- Redis ------------------------------------------------------------------


SENTINEL_PORT = 26379
SENTINEL_SERVICE = "sesame"


def start_redis(state, name="redis", host=10, replicaof=None):
    """A Redis server; a replica of `replicaof` (a Part) if given."""
    data = os.path.join(state.dir, name)
    os.makedirs(data, exist_ok=True)
    ns = namespace_of(state, name, host)
    part = Part(
        name=name,
        kind="redis",
        ns=ns,
        ip=state.ip(host),
        port=6379,
        argv=[
            "redis-server",
            "--bind",
            state.ip(host),
            "--port",
            "6379",
            "--dir",
            data,
            "--save",
            "",
            # Durable: an acknowledged revocation survives a restart.
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--protected-mode",
            "no",
        ]
        + (["--replicaof", replicaof.ip, str(replicaof.port)] if replicaof else []),
        log=os.path.join(data, "redis.log"),
        extra={"dir": data, "host": host},
    )
    spawn(state, part)
    wait_for("redis answering", lambda: redis_cli(part, "PING") == "PONG", part=part)
    return part


def redis_cli(part, *command, port=None):
    """One command to a Redis (or Sentinel) of the fleet; its answer's text."""
    r = subprocess.run(
        ["redis-cli", "-h", part.ip, "-p", str(port or part.port), *command],
        capture_output=True, text=True, timeout=5,
    )
    return r.stdout.strip()


def start_sentinel(state, name, host, master):
    """A Redis Sentinel watching `master` (quorum 2 of the fleet's three),
    declaring it down after a second without an answer."""
    data = os.path.join(state.dir, name)
    os.makedirs(data, exist_ok=True)
    config = os.path.join(data, "sentinel.conf")
    if not os.path.exists(config):  # Sentinel rewrites its own file
        with open(config, "w") as f:
            f.write(
                f"bind {state.ip(host)}\nport {SENTINEL_PORT}\ndir {data}\nprotected-mode no\n"
                f"sentinel monitor {SENTINEL_SERVICE} {master.ip} {master.port} 2\n"
                f"sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000\n"
                f"sentinel failover-timeout {SENTINEL_SERVICE} 10000\n"
                f"sentinel parallel-syncs {SENTINEL_SERVICE} 1\n"
            )
    ns = namespace_of(state, name, host)
    part = Part(
        name=name,
        kind="sentinel",
        ns=ns,
        ip=state.ip(host),
        port=SENTINEL_PORT,
        argv=["redis-sentinel", config],
        log=os.path.join(data, "sentinel.log"),
        extra={"dir": data, "host": host},
    )
    spawn(state, part)
    wait_for(f"{name} answering", lambda: redis_cli(part, "PING") == "PONG", part=part)
    return part


def sentinel_master(state):
    """The master's address as the sentinels' majority names it, or None."""
    votes = {}
    for s in state.of_kind("sentinel"):
        if alive(s):
            answer = redis_cli(s, "SENTINEL", "get-master-addr-by-name", SENTINEL_SERVICE).split()
            if len(answer) == 2:
                votes[tuple(answer)] = votes.get(tuple(answer), 0) + 1
    best = max(votes.items(), key=lambda kv: kv[1], default=(None, 0))
    return f"{best[0][0]}:{best[0][1]}" if best[1] >= 2 else None


def cache_url(state):
    """What the instances get as `--cache`: the sentinels when the fleet
    has them (sesame then follows a failover), else the one Redis."""
    sentinels = state.of_kind("sentinel")
    if sentinels:
        hosts = ",".join(s.address for s in sentinels)
        return f"redis+sentinel://{hosts}/{SENTINEL_SERVICE}"
    return f"redis://{state.redis_master.address}"


# --- sesame -----------------------------------------------------------------


def sesame_argv(state, part, binary, args):
    # The primary through its address (which a promotion moves); replicas
    # by their own.
    primary = state.parts.get("primary-vip") or state.primary
    argv = [
        binary,
        "serve",
        "--listen",
        part.address,
        "--database",
        mysql_url(primary),
        "--cache",
        cache_url(state),
        "--instance",
        part.name,
        "--event-log",
        part.extra["event_log"],
        # The balancer connects from the bridge's address; behind it, the
        # load generator on loopback plays the API tier, which puts the
        # user's address in the login body.
        "--trusted-proxies",
        f"{state.gateway}/32,127.0.0.1/32",
        "--cookie-secure",
        "false",
        "--hash-workers",
        str(part.extra["hash_workers"]),
        # The manifests' SESAME_DENY_LIST is the ConfigMap's mount; here,
        # one file of the fleet's.
        "--deny-list",
        deny_list(state),
    ]
    for r in state.replicas:
        argv += ["--replica", mysql_url(r)]
    return argv + list(args)


def deny_list(state):
    """The fleet's block list, one file every instance reads, as a
    ConfigMap mounted in every pod would be; empty until an operator (or
    `sesame triage --deny-list`) fills it."""
    path = os.path.join(state.dir, "deny-list.txt")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write("# the fleet's block list: one address or network per line\n")
    return path


def deny_list_clear(state):
    os.remove(deny_list(state))
    deny_list(state)


def hash_workers(spec, instances):
    """Hash workers per instance: the pod's (the manifest's), unless this
    machine has fewer cores than the pods' CPU limits add up to. Then every
    instance gets its share of the cores instead (at least one worker), so
    that the fleet hashes on as many threads as there are cores, as one
    pod with the whole machine would; more threads than cores only make
    each hash slower and the queue's estimate of it noisier."""
    cores = os.cpu_count() or 1
    if instances * spec.cpus <= cores:
        return spec.hash_workers
    return max(1, min(spec.hash_workers, cores // instances))


def launch_sesame(state, name, host, binary, args, spec, workers, track="stable", cpus=None):
    """Starts instance `name` in a namespace of its own (made now unless it
    has one) and records it; does not wait for it. `cpus`: its CPU limit,
    when not the manifests' (a deploy that changed the pod's resources)."""
    data = os.path.join(state.dir, name)
    os.makedirs(data, exist_ok=True)
    ns = namespace_of(state, name, host)
    part = Part(
        name=name,
        kind="sesame",
        ns=ns,
        ip=state.ip(host),
        port=8080,
        env={k: v for k, v in spec.env.items()},
        log=os.path.join(data, "sesame.log"),
        extra={
            "dir": data,
            "host": host,
            "event_log": os.path.join(data, "events.jsonl"),
            "hash_workers": workers,
            "track": track,
            "cpus": cpus or spec.cpus,
        },
    )
    part.env["SESAME_LOG_FORMAT"] = "json"
    part.argv = sesame_argv(state, part, binary, args)
    spawn(state, part, cgroup=net.cpu_group(state, name, part.extra["cpus"]))
    write_targets(state)
    return part


def wait_ready(part, timeout=60):
    wait_for(
        f"{part.name} ready",
        lambda: http_get(f"http://{part.address}/readyz")[0] == 200,
        timeout=timeout,
        part=part,
    )


# --- HAProxy ----------------------------------------------------------------


def haproxy_config(state):
    """deploy/haproxy/haproxy.cfg as shipped, plus one server line per
    instance."""
    with open(os.path.join(ROOT, "deploy", "haproxy", "haproxy.cfg")) as f:
        text = f.read()
    servers = "".join(f"    server {p.name} {p.address}\n" for p in state.of_kind("sesame"))
    path = os.path.join(state.dir, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\n" + servers)
    return path


def haproxy_env(state, spec):
    return {
        "SESAME_LB_BIND": f"127.0.0.1:{state.ports['lb']}",
        "SESAME_LB_ADMIN": os.path.join(state.dir, "haproxy.sock"),
        "SESAME_CHECK_INTER": f"{spec.ready_period}s",
        "SESAME_CHECK_FALL": str(spec.ready_failures),
        "SESAME_CHECK_TIMEOUT": f"{spec.ready_timeout}s",
    }


def start_haproxy(state, spec):
    config = haproxy_config(state)
    env = haproxy_env(state, spec)
    check = subprocess.run(
        ["haproxy", "-c", "-q", "-f", config], capture_output=True, text=True, env={**os.environ, **env}
    )
    if check.returncode != 0:
        raise FleetError(f"haproxy.cfg does not check: {check.stderr.strip()}")
    part = Part(
        name="haproxy",
        kind="haproxy",
        port=state.ports["lb"],
        argv=["haproxy", "-db", "-f", config],
        env=env,
        log=os.path.join(state.dir, "haproxy.log"),
    )
    spawn(state, part)
    wait_for("haproxy listening", lambda: os.path.exists(env["SESAME_LB_ADMIN"]), part=part)
    return part


def haproxy_command(state, command, sock=None):
    """One command on HAProxy's runtime API (the balancer's, or the one at
    `sock`)."""
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(sock or os.path.join(state.dir, "haproxy.sock"))
        s.sendall(command.encode() + b"\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out.decode()


def haproxy_add(state, part, spec):
    """Puts a new instance behind the balancer, health-checked as the ones
    in the configuration are (dynamic servers do not take default-server)."""
    name = f"sesame/{part.name}"
    for command in (
        f"add server {name} {part.address} check inter {spec.ready_period}s "
        f"fall {spec.ready_failures} rise 1 maxconn 10000",
        f"enable health {name}",
        f"enable server {name}",
    ):
        out = haproxy_command(state, command).strip()
        if out and "registered" not in out:
            raise FleetError(f"haproxy: {command}: {out}")


def haproxy_remove(state, name):
    """Takes a stopped instance out of the balancer."""
    haproxy_command(state, f"disable server sesame/{name}")
    out = haproxy_command(state, f"del server sesame/{name}").strip()
    if out and "deleted" not in out.lower():
        raise FleetError(f"haproxy: del server sesame/{name}: {out}")


def haproxy_servers(state):
    """{server name: {'state': 'UP'|'DOWN'|..., 'admin': 'READY'|'DRAIN'|'MAINT', ...}}."""
    lines = haproxy_command(state, "show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == "sesame" and row.get("svname") not in ("FRONTEND", "BACKEND", None):
            out[row["svname"]] = row
    return out


# --- Prometheus and Alertmanager -------------------------------------------


def write_targets(state):
    """The instances Prometheus scrapes, as a file_sd file that it watches:
    a deploy that replaces instances rewrites it, as Kubernetes service
    discovery would follow the pods. The instance label is the pod's name,
    as the Kubernetes relabelling makes it (deploy/prometheus/prometheus.yml)."""
    path = os.path.join(state.dir, "targets.json")
    targets = [
        {
            "targets": [p.address],
            "labels": {"instance": p.name, "env": "fleet", "track": p.extra.get("track", "stable")},
        }
        for p in state.of_kind("sesame")
    ]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(targets, f)
    os.replace(tmp, path)
    return path


def prometheus_config(state, rule_files, scrape_interval="2s"):
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": rule_files,
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"127.0.0.1:{state.ports['alertmanager']}"]}]}
            ]
        },
        "scrape_configs": [
            {
                "job_name": "sesame",
                "file_sd_configs": [{"files": [write_targets(state)], "refresh_interval": "1s"}],
            }
        ],
    }
    # JSON is YAML.
    path = os.path.join(state.dir, "prometheus.yml")
    with open(path, "w") as f:
        json.dump(config, f, indent=1)
    return path


def shipped_rules():
    return sorted(glob.glob(os.path.join(ROOT, "deploy", "prometheus", "rules", "*.yml")))


def start_prometheus(state, rule_files=None):
    data = os.path.join(state.dir, "prometheus")
    os.makedirs(data, exist_ok=True)
    config = prometheus_config(state, rule_files or shipped_rules())
    part = Part(
        name="prometheus",
        kind="prometheus",
        port=state.ports["prometheus"],
        argv=[
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{state.ports['prometheus']}",
            "--web.enable-lifecycle",
        ],
        log=os.path.join(state.dir, "prometheus.log"),
        extra={"config": config},
    )
    spawn(state, part)
    wait_for(
        "prometheus ready",
        lambda: http_get(f"http://127.0.0.1:{part.port}/-/ready")[0] == 200,
        timeout=60,
        part=part,
    )
    return part


def start_alertmanager(state):
    data = os.path.join(state.dir, "alertmanager")
    os.makedirs(data, exist_ok=True)
    config = os.path.join(state.dir, "alertmanager.yml")
    with open(config, "w") as f:
        # Alerts are read from its API; nothing is sent anywhere.
        json.dump(
            {
                "route": {"receiver": "none", "group_wait": "0s", "group_interval": "5s"},
                "receivers": [{"name": "none"}],
            },
            f,
        )
    part = Part(
        name="alertmanager",
        kind="alertmanager",
        port=state.ports["alertmanager"],
        argv=[
            "prometheus-alertmanager",
            f"--config.file={config}",
            f"--storage.path={data}",
            f"--web.listen-address=127.0.0.1:{state.ports['alertmanager']}",
            # No gossip: a single Alertmanager that listens on loopback only.
            "--cluster.listen-address=",
        ],
        log=os.path.join(state.dir, "alertmanager.log"),
    )
    spawn(state, part)
    wait_for(
        "alertmanager ready",
        lambda: http_get(f"http://127.0.0.1:{part.port}/-/ready")[0] == 200,
        timeout=60,
        part=part,
    )
    return part
