"""The failures a fleet can be put through, each answering once it is in
place (`scripts/fleet fault NAME`):

- `promote`: the primary dies for good (SIGKILL); the most advanced replica
  is promoted and the primary address moves to it;
- `rejoin`: the former primary comes back as a replica of the new one,
  cloned from it (its own data may hold writes no one acknowledged);
- `redis-failover`: the Redis master dies; Sentinel promotes its replica;
  the old master returns as the new one's replica;
- `partition A B [--one-way]` and `heal`: packets between two groups
  vanish (iptables in the fleet's own namespaces), both ways or only from
  A to B;
- `pause NAME` and `resume NAME`: a frozen process (SIGSTOP) that wakes up
  after its peers have moved on.

Names of groups: an instance's name (`sesame-N`), `primary` (the MariaDB
that is primary now, with the primary address), `replicas`, a MariaDB's
name (`replica-1`), `redis` (the Redis servers and sentinels), `redis-master`,
`redis-replicas`, `everything` (every server an instance depends on)."""

import os
import re
import signal
import subprocess
import time

from . import net, parts
from .parts import FleetError, wait_for
from .state import State, alive, signal_part, stop

FAULTS = ("promote", "rejoin", "redis-failover", "partition", "heal", "pause", "resume")


def group(state, name):
    """The parts a fault name stands for."""
    if name == "primary":
        return [state.primary, state.parts["primary-vip"]]
    if name == "replicas":
        return state.replicas
    if name == "redis":
        return state.of_kind("redis") + state.of_kind("sentinel")
    if name == "redis-master":
        return [state.redis_master]
    if name == "redis-replicas":
        return [p for p in state.of_kind("redis") if p.name != state.redis_master.name]
    if name == "everything":
        return [p for p in state.parts.values() if p.ns and p.kind not in ("sesame",) and not p.extra.get("dead")]
    part = state.parts.get(name)
    if part is None or not part.ns:
        known = sorted(n for n, p in state.parts.items() if p.ns)
        raise FleetError(f"no part or group {name!r}; parts: {known}; groups: primary, replicas, redis, redis-master, everything")
    return [part]


def iptables(ns, *rule):
    net.sh("iptables", "-w", *rule, ns=ns)


def partition(directory, a, b, one_way=False):
    """Packets from group `a` to group `b` vanish, and, unless `one_way`,
    from `b` to `a` too. The rules sit in `a`'s namespaces: nothing is
    refused, connections hang, as when a network partitions."""
    with State.locked(directory) as state:
        sides_a, sides_b = group(state, a), group(state, b)
        overlap = {p.name for p in sides_a} & {p.name for p in sides_b}
        if overlap:
            raise FleetError(f"{a} and {b} share {sorted(overlap)}")
        for p in sides_a:
            for q in sides_b:
                iptables(p.ns, "-I", "OUTPUT", "-d", q.ip, "-j", "DROP")
                if not one_way:
                    iptables(p.ns, "-I", "INPUT", "-s", q.ip, "-j", "DROP")
        fault = {"fault": "partition", "a": a, "b": b, "one_way": one_way,
                 "from": sorted(p.name for p in sides_a), "to": sorted(q.name for q in sides_b)}
        state.options.setdefault("faults", []).append(fault)
        return fault


def heal(directory):
    """Removes every partition (the rules in every namespace of the fleet)."""
    with State.locked(directory) as state:
        return {"fault": "heal", "healed": len(remove_partitions(state))}


def remove_partitions(state):
    for ns in state.namespaces:
        net.sh("ip", "netns", "exec", ns, "iptables", "-w", "-F", check=False)
    return state.options.pop("faults", [])


def pause(directory, name):
    with State.locked(directory) as state:
        part = state.parts.get(name)
        if part is None or not alive(part):
            raise FleetError(f"no running part {name!r}")
        signal_part(part, signal.SIGSTOP)
        part.extra["paused"] = True
        return {"fault": "pause", "name": name, "pid": part.pid}


def resume(directory, name):
    with State.locked(directory) as state:
        part = state.parts.get(name)
        if part is None:
            raise FleetError(f"no part {name!r}")
        signal_part(part, signal.SIGCONT)
        part.extra.pop("paused", None)
        return {"fault": "resume", "name": name}


# --- MariaDB: promotion ------------------------------------------------------


def gtid_seq(gtids, domain="0"):
    """The sequence number of `domain` in a GTID list such as `0-1-42,1-2-7`."""
    for gtid in filter(None, (g.strip() for g in (gtids or "").split(","))):
        d, _, seq = gtid.split("-")
        if d == domain:
            return int(seq)
    return 0


def promote(directory, log=print):
    """Kills the primary for good, promotes the replica that received the
    most, points the other replicas and the primary address at it."""
    started = time.monotonic()
    with State.locked(directory) as state:
        old = state.primary
        candidates = state.replicas
        if not candidates:
            raise FleetError("no replica to promote")
        old.extra["dead"] = True
        signal_part(old, signal.SIGKILL)
        wait_for(f"{old.name} gone", lambda: not alive(old), timeout=10)
        received = {}
        for r in candidates:
            row = parts.sql_row(r, "SHOW SLAVE STATUS")
            received[r.name] = row.get("Gtid_IO_Pos", "")
        chosen = max(candidates, key=lambda r: gtid_seq(received[r.name]))
        log(f"promote: received {received}; promoting {chosen.name}")
        # Everything it received, applied, before it takes writes.
        applied = parts.sql(chosen, f"SELECT MASTER_GTID_WAIT('{received[chosen.name]}', 20)", timeout=25).strip()
        if applied != "0":
            raise FleetError(f"{chosen.name} did not apply what it received within 20 s")
        statements = ["STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = 0"]
        if state.options.get("semi_sync"):
            statements += [
                f"SET GLOBAL rpl_semi_sync_master_timeout = {parts.SEMI_SYNC_TIMEOUT_MS}",
                "SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC",
                "SET GLOBAL rpl_semi_sync_master_wait_no_slave = ON",
                "SET GLOBAL rpl_semi_sync_master_enabled = ON",
            ]
        parts.sql(chosen, "; ".join(statements))
        state.roles["primary"] = chosen.name
        for r in candidates:
            if r is not chosen:
                parts.sql(r, "STOP SLAVE")
                parts.replicate(r, chosen)
        parts.move_primary_vip(state, chosen.name)
        return {"fault": "promote", "killed": old.name, "promoted": chosen.name, "received": received,
                "seconds": round(time.monotonic() - started, 2)}


def rejoin(directory, log=print):
    """The former primary (killed by `promote`) returns as a replica of the
    primary, cloned from it: its own data may end in writes that no replica
    acknowledged, which must not come back."""
    with State.locked(directory) as state:
        dead = [p for p in state.of_kind("mariadb") if p.extra.get("dead")]
        if not dead:
            raise FleetError("no former primary to rejoin (`fault promote` first)")
        old, primary = dead[0], state.primary
        stop(old, grace=5)  # what a failed rejoin left running
        try:
            part = parts.start_mariadb(state, old.name, old.extra["host"], old.extra["server_id"], fresh=True, primary=False)
            # Bytes: the dump holds binary columns.
            dump = subprocess.run(
                ["mariadb-dump", "-S", os.path.join(primary.extra["dir"], "sock"), "-uroot", "--single-transaction",
                 "--gtid", "--master-data=2", "--databases", "sesame"],
                capture_output=True, timeout=120,
            )
            if dump.returncode != 0:
                raise FleetError(f"mariadb-dump: {dump.stderr.decode(errors='replace').strip()}")
            position = re.search(rb"gtid_slave_pos='([^']*)'", dump.stdout)
            if not position:
                raise FleetError("mariadb-dump gave no GTID position")
            position = position.group(1).decode()
            load = subprocess.run(
                ["mariadb", "-S", os.path.join(part.extra["dir"], "sock"), "-uroot", "--binary-mode"],
                input=b"SET sql_log_bin = 0;\n" + dump.stdout, capture_output=True, timeout=120,
            )
            if load.returncode != 0:
                raise FleetError(f"loading the clone: {load.stderr.decode(errors='replace').strip()[-500:]}")
            parts.sql(part, f"SET GLOBAL gtid_slave_pos = '{position}'")
            parts.replicate(part, primary)
        except BaseException:
            state.parts[old.name].extra["dead"] = True  # not in use; `rejoin` can be run again
            raise
        return {"fault": "rejoin", "name": part.name, "replica_of": primary.name, "from": position}


# --- Redis: Sentinel failover -------------------------------------------------


def redis_failover(directory, timeout=30, heal_first=False, log=print):
    """Kills the Redis master; answers once a majority of sentinels names
    the replica master, and the old one is back as its replica.
    `heal_first`: remove the partitions once the new master is named,
    before the old one returns (it could not reach the new one)."""
    started = time.monotonic()
    with State.locked(directory) as state:
        if not state.of_kind("sentinel"):
            raise FleetError("this fleet has no sentinels (`up` without --no-sentinel)")
        old = state.redis_master
        signal_part(old, signal.SIGKILL)
        wait_for(f"{old.name} gone", lambda: not alive(old), timeout=10)
        killed_at = time.monotonic()
        wait_for("Sentinel promoting a replica", lambda: parts.sentinel_master(state) not in (None, old.address),
                 timeout=timeout, interval=0.2)
        address = parts.sentinel_master(state)
        promoted = next(p for p in state.of_kind("redis") if p.address == address)
        state.roles["redis"] = promoted.name
        promoted_s = time.monotonic() - killed_at
        if heal_first:
            remove_partitions(state)
        # The old master's pod restarts; it comes back as the new master's
        # replica (as Sentinel would reconfigure it).
        parts.start_redis(state, old.name, old.extra["host"], replicaof=promoted)
        wait_for(f"{old.name} replicating", lambda: "master_link_status:up" in parts.redis_cli(old, "INFO", "replication"),
                 timeout=30)
        return {"fault": "redis-failover", "killed": old.name, "promoted": promoted.name,
                "promoted_after_s": round(promoted_s, 2), "seconds": round(time.monotonic() - started, 2)}


def run(directory, name, args, one_way=False, log=print):
    if name == "partition":
        if len(args) != 2:
            raise FleetError("partition takes two names: A B")
        return partition(directory, args[0], args[1], one_way=one_way)
    if name in ("pause", "resume"):
        if len(args) != 1:
            raise FleetError(f"{name} takes one name")
        return (pause if name == "pause" else resume)(directory, args[0])
    if args:
        raise FleetError(f"{name} takes no names")
    return {"promote": promote, "rejoin": rejoin, "redis-failover": redis_failover,
            "heal": lambda d, log=log: heal(d)}[name](directory, log=log)
