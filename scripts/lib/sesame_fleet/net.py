"""The fleet's network: one bridge on the host with the fleet's /24, and a
network namespace per server, joined to the bridge by a veth pair. No
namespace gets a default route: a server in the fleet can reach the fleet
and nothing else."""

import os
import subprocess


def sh(*argv, check=True, ns=None):
    if ns:
        argv = ("ip", "netns", "exec", ns) + argv
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def make_bridge(state):
    sh("ip", "link", "add", state.bridge, "type", "bridge")
    state.links.append(state.bridge)
    state.save()
    sh("ip", "addr", "add", f"{state.gateway}/24", "dev", state.bridge)
    sh("ip", "link", "set", state.bridge, "up")


def make_namespace(state, name, host):
    """A namespace for server `name` with address SUBNET.host on the bridge.
    Returns the namespace's name."""
    ns = f"sf{state.id}-{name}"
    # Link names are never reused: an instance's namespace goes with it.
    n = state.ports.get("next_link", 0)
    state.ports["next_link"] = n + 1
    outside, inside = f"sf{state.id}h{n}", f"sf{state.id}n{n}"
    sh("ip", "netns", "add", ns)
    state.namespaces.append(ns)
    sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
    state.links.append(outside)
    state.save()
    sh("ip", "link", "set", outside, "master", state.bridge)
    sh("ip", "link", "set", outside, "up")
    sh("ip", "link", "set", inside, "netns", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", ns, "addr", "add", f"{state.ip(host)}/24", "dev", inside)
    sh("ip", "-n", ns, "link", "set", inside, "up")
    return ns


def remove_namespace(state, ns):
    """Removes one namespace (its veth pair goes with it)."""
    sh("ip", "netns", "del", ns, check=False)
    if ns in state.namespaces:
        state.namespaces.remove(ns)
    # The host side of the pair is gone with its peer; forget its name.
    state.links = [link for link in state.links if os.path.exists(f"/sys/class/net/{link}")]


def remove(state):
    """Removes every namespace and link of the fleet (what is gone already
    is skipped)."""
    for ns in state.namespaces:
        sh("ip", "netns", "del", ns, check=False)
    for link in state.links:
        sh("ip", "link", "del", link, check=False)
    state.namespaces.clear()
    state.links.clear()


def leftovers(fid):
    """Namespaces and links of fleet `fid` that exist on this machine."""
    prefix = f"sf{fid}"
    namespaces = [
        line.split()[0]
        for line in sh("ip", "netns", "list").stdout.splitlines()
        if line.startswith(prefix)
    ]
    links = [name for name in os.listdir("/sys/class/net") if name.startswith(prefix)]
    return namespaces, links


# --- CPU: what a pod's limit would give -------------------------------------

CPU_ROOT = "/sys/fs/cgroup/cpu"


def cpu_group(state, name, cpus):
    """A cgroup (v1 `cpu` controller, or v2) limited to `cpus` CPUs, as a pod
    with `limits.cpu` gets; None where the machine has no CPU controller."""
    quota = int(cpus * 100_000)
    if os.path.exists(os.path.join(CPU_ROOT, "cpu.cfs_quota_us")):
        path = os.path.join(CPU_ROOT, f"sesame-fleet-{state.id}", name)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "cpu.cfs_period_us"), "w") as f:
            f.write("100000")
        with open(os.path.join(path, "cpu.cfs_quota_us"), "w") as f:
            f.write(str(quota))
    elif os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        path = os.path.join("/sys/fs/cgroup", f"sesame-fleet-{state.id}", name)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "cpu.max"), "w") as f:
            f.write(f"{quota} 100000")
    else:
        return None
    if path not in state.cgroups:
        state.cgroups.append(path)
    return path


def root_group():
    """The CPU hierarchy's root: where a process leaves its limit."""
    if os.path.exists(os.path.join(CPU_ROOT, "cpu.cfs_quota_us")):
        return CPU_ROOT
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "/sys/fs/cgroup"
    return None


def join_group(path, pid):
    if path:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(pid))


def remove_groups(state):
    """Removes the fleet's cgroups, innermost first (they must be empty)."""
    parents = set()
    for path in state.cgroups:
        parents.add(os.path.dirname(path))
        try:
            os.rmdir(path)
        except OSError:
            pass
    for path in parents:
        try:
            os.rmdir(path)
        except OSError:
            pass
    state.cgroups.clear()
