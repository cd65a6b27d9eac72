#!/usr/bin/env python3
"""Offline checks of deploy/: every kustomization rendered and schema-validated,
then the facts that must agree across files checked against each other.

    python3 deploy/check/check.py --sesame target/debug/sesame

Core kinds validate strictly (unknown fields fail) against the Kubernetes JSON
schemas that the kubernetes-validate package ships, for the oldest supported
Kubernetes (1.30) and the newest; Argo Rollouts and
prometheus-operator kinds against their CRD schemas as shipped by the
@kubernetes-models npm packages (validate-crds.mjs), and the Job inside an
AnalysisTemplate strictly as a batch/v1 Job. Ends with "deploy: N passed, M failed".
"""

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CRD_KINDS = {"Rollout", "AnalysisTemplate", "ServiceMonitor"}
# The server exports these; the rollout checks query them.
METRICS_SOURCE = ROOT / "crates" / "sesame-server" / "src" / "metrics.rs"

passed = 0
failures = []


def check(ok, what):
    global passed
    if ok:
        passed += 1
    else:
        failures.append(what)
        print(f"FAIL {what}")


def kustomizations():
    return sorted(p.parent for p in K8S.rglob("kustomization.yaml"))


def render(directory):
    out = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True
    )
    if out.returncode != 0:
        check(False, f"{rel(directory)}: kustomize: {out.stderr.strip()}")
        return []
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def rel(path):
    return str(Path(path).relative_to(ROOT))


def find(docs, kind, name=None):
    return [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]


def one(docs, kind, where):
    found = find(docs, kind)
    check(len(found) == 1, f"{where}: exactly one {kind} (found {len(found)})")
    return found[0] if found else None


# ---- schemas ----------------------------------------------------------------


# The oldest Kubernetes the manifests must still apply to, and the newest.
KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def validate_core(doc, where):
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            check(True, f"{where} ({version})")
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            check(False, f"{where} ({version}): {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            check(False, f"{where} ({version}): {e}")


def job_templates(analysis_template):
    for metric in analysis_template["spec"].get("metrics", []):
        job = metric.get("provider", {}).get("job")
        if job:
            yield metric["name"], {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": metric["name"]},
                "spec": job["spec"],
            }


def validate_all(rendered):
    crds = []
    for directory, docs in rendered.items():
        for doc in docs:
            where = f"{rel(directory)}: {doc['kind']}/{doc['metadata']['name']}"
            if doc["kind"] in CRD_KINDS:
                crds.append({"where": where, "doc": doc})
                for metric, job in job_templates(doc) if doc["kind"] == "AnalysisTemplate" else []:
                    validate_core(job, f"{where}: job of metric {metric}")
            else:
                validate_core(doc, where)
    out = subprocess.run(
        ["node", str(Path(__file__).with_name("validate-crds.mjs"))],
        input=json.dumps(crds),
        capture_output=True,
        text=True,
    )
    if out.returncode != 0 and not out.stdout:
        check(False, f"CRD validation did not run: {out.stderr.strip()}")
    for line in out.stdout.splitlines():
        result = json.loads(line)
        check(result["ok"], f"{result['where']}: {result.get('error', '')}")


# ---- consistency ------------------------------------------------------------


def container(deployment):
    return deployment["spec"]["template"]["spec"]["containers"][0]


def config_of(docs):
    maps = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("sesame-config")]
    return maps[0]["data"] if maps else {}


def quantity_cpu(q):
    q = str(q)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def quantity_mib(q):
    q = str(q)
    units = {"Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if q.endswith(suffix):
            return float(q[: -len(suffix)]) * factor
    return float(q) / 2**20


def serve_env_vars():
    """The environment variables `sesame serve` reads, from its clap flags."""
    commands = ROOT / "crates" / "sesame-cli" / "src" / "commands"
    sources = [commands / n for n in ("serve.rs", "shared.rs", "mod.rs") if (commands / n).exists()]
    # The Argon2 flags, shared by every command that hashes.
    flags = ROOT / "crates" / "sesame-toolkit" / "src" / "argon2_flags.rs"
    if flags.exists():
        sources.append(flags)
    return {v for s in sources for v in re.findall(r'env = "(SESAME_[A-Z_]+)"', s.read_text())}


def check_deployment(where, docs, plan):
    d = one(docs, "Deployment", where)
    if d is None:
        return
    spec, pod = d["spec"], d["spec"]["template"]["spec"]
    c = container(d)
    cfg = config_of(docs)
    probes = {k: c.get(k, {}).get("httpGet", {}) for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    check(probes["livenessProbe"].get("path") == "/healthz", f"{where}: liveness probes /healthz (never the database)")
    check(probes["startupProbe"].get("path") == "/healthz", f"{where}: startup probes /healthz")
    check(probes["readinessProbe"].get("path") == "/readyz", f"{where}: readiness probes /readyz")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(all(p.get("port") in ports for p in probes.values()), f"{where}: probes use a named container port")
    listen_port = int(cfg.get("SESAME_LISTEN", ":0").rsplit(":", 1)[1])
    check(ports.get("http") == listen_port, f"{where}: containerPort {ports.get('http')} = SESAME_LISTEN port {listen_port}")
    check(spec.get("revisionHistoryLimit", 0) >= 5, f"{where}: revisionHistoryLimit >= 5 so rollout undo has revisions")
    check("replicas" not in spec, f"{where}: no replicas in the Deployment (the HPA owns them)")
    cause = d["metadata"].get("annotations", {}).get("kubernetes.io/change-cause", "")
    check(bool(cause), f"{where}: kubernetes.io/change-cause is set")
    tag = c["image"].rsplit(":", 1)[1] if ":" in c["image"] else ""
    if where.endswith("base"):
        check(c["image"] == "sesame", f"{where}: base image is the bare name overlays replace")
    else:
        check(bool(tag) and cause.startswith(f"{tag}: "), f"{where}: change-cause {cause!r} starts with the image tag {tag!r}")

    # Shutdown: readiness off for the drain delay, then the grace period.
    drain, grace = int(cfg.get("SESAME_DRAIN_DELAY", 0)), int(cfg.get("SESAME_GRACE_PERIOD", 30))
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    needed = pre_stop + drain + grace + 5
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    check(tgps >= needed, f"{where}: terminationGracePeriodSeconds {tgps} >= preStop {pre_stop} + drain {drain} + grace {grace} + 5")
    check(drain >= 5, f"{where}: SESAME_DRAIN_DELAY {drain} s lets endpoints drop the pod before the listener closes")
    known = serve_env_vars()
    if known:
        given = set(cfg) | {e["name"] for e in c.get("env", [])}
        check(given <= known, f"{where}: every SESAME_* variable is one `sesame serve` reads ({sorted(given - known) or 'ok'})")
    check(bool(cfg.get("SESAME_TRUSTED_PROXIES")), f"{where}: SESAME_TRUSTED_PROXIES set (else users share the API pods' rate limit)")
    deny = cfg.get("SESAME_DENY_LIST")
    if deny:
        # The block list is edited while the pods run: its ConfigMap must be
        # mounted (not copied into env) and keep its name, so that an edit
        # reaches the running pods instead of waiting for a rollout.
        mounts = [m["name"] for m in c.get("volumeMounts", []) if deny.startswith(m["mountPath"].rstrip("/") + "/")]
        volumes = {v["name"]: v.get("configMap", {}).get("name") for v in pod.get("volumes", [])}
        config_map = volumes.get(mounts[0]) if mounts else None
        maps = [doc for doc in docs if doc and doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == config_map]
        check(bool(maps) and deny.rsplit("/", 1)[1] in maps[0].get("data", {}),
              f"{where}: SESAME_DENY_LIST {deny} is a file of a mounted ConfigMap")
        check(config_map == "sesame-deny-list", f"{where}: the deny list's ConfigMap keeps its name (no hash suffix), so edits reach running pods")

    req, lim = c["resources"].get("requests", {}), c["resources"].get("limits", {})
    check(req == lim, f"{where}: requests = limits (Guaranteed QoS)")
    check(int(cfg.get("SESAME_HASH_WORKERS", 0)) == quantity_cpu(lim.get("cpu", 0)), f"{where}: SESAME_HASH_WORKERS = CPU limit")
    if plan:
        check(quantity_cpu(lim.get("cpu", 0)) == plan["pod"]["cpu"], f"{where}: cpu {lim.get('cpu')} = plan's {plan['pod']['cpu']}")
        check(quantity_mib(lim.get("memory", 0)) == plan["pod"]["memory_mib"], f"{where}: memory {lim.get('memory')} = plan's {plan['pod']['memory_mib']}Mi")
    ctx, pod_ctx = c.get("securityContext", {}), pod.get("securityContext", {})
    check(pod_ctx.get("runAsNonRoot") is True, f"{where}: runAsNonRoot")
    check(ctx.get("readOnlyRootFilesystem") is True and ctx.get("allowPrivilegeEscalation") is False, f"{where}: read-only root, no privilege escalation")
    return pod_ctx.get("runAsUser"), ports.get("http")


def check_hpa(where, docs, plan):
    h = one(docs, "HorizontalPodAutoscaler", where)
    if h is None:
        return None
    spec = h["spec"]
    by_type = {m["type"]: m for m in spec["metrics"]}
    cpu = by_type.get("Resource", {}).get("resource", {})
    pods = by_type.get("Pods", {}).get("pods", {})
    check(cpu.get("name") == "cpu", f"{where}: HPA scales on CPU")
    check(bool(pods), f"{where}: HPA scales on a per-pod custom metric")
    target = spec["scaleTargetRef"]
    check(len(find(docs, target["kind"], target["name"])) == 1, f"{where}: HPA target {target['kind']}/{target['name']} exists")
    if plan:
        hpa = plan["hpa"]
        check(spec["minReplicas"] == hpa["min_replicas"], f"{where}: minReplicas {spec['minReplicas']} = plan's {hpa['min_replicas']}")
        check(spec["maxReplicas"] == hpa["max_replicas"], f"{where}: maxReplicas {spec['maxReplicas']} = plan's {hpa['max_replicas']}")
        check(cpu.get("target", {}).get("averageUtilization") == hpa["cpu_utilization_percent"], f"{where}: CPU target = plan's {hpa['cpu_utilization_percent']}%")
        check(str(pods.get("target", {}).get("averageValue")) == str(hpa["queue_depth_target"]), f"{where}: queue depth target = plan's {hpa['queue_depth_target']}")
    return pods.get("metric", {}).get("name")


def check_network(where, docs, http_port):
    n = one(docs, "NetworkPolicy", where)
    if n is None:
        return
    spec = n["spec"]
    check(set(spec.get("policyTypes", [])) == {"Ingress", "Egress"}, f"{where}: NetworkPolicy restricts ingress and egress")
    check(spec["podSelector"].get("matchLabels") == {"app.kubernetes.io/name": "sesame"}, f"{where}: NetworkPolicy selects sesame's pods")
    ingress_ports = {p.get("port") for rule in spec.get("ingress", []) for p in rule.get("ports", [])}
    check(ingress_ports <= {"http", http_port}, f"{where}: ingress only to the http port ({ingress_ports})")
    check(all(rule.get("from") for rule in spec.get("ingress", [])), f"{where}: every ingress rule names its peers")
    egress_ports = {p.get("port") for rule in spec.get("egress", []) for p in rule.get("ports", [])}
    check(egress_ports == {53, 3306, 6379}, f"{where}: egress only to DNS, MySQL, Redis (ports {sorted(egress_ports)})")
    check(all(rule.get("to") for rule in spec.get("egress", [])), f"{where}: every egress rule names its peers")


def check_service(where, docs, http_port):
    s = one(docs, "Service", where)
    if s is None:
        return
    target = s["spec"]["ports"][0]["targetPort"]
    check(target in ("http", http_port), f"{where}: Service targets the container's http port")
    m = one(docs, "ServiceMonitor", where)
    if m:
        ep = m["spec"]["endpoints"][0]
        check(ep.get("path") == "/metrics" and ep.get("port") == s["spec"]["ports"][0]["name"], f"{where}: ServiceMonitor scrapes /metrics on the Service's port")
        check("track" in m["spec"].get("podTargetLabels", []), f"{where}: series carry the pod's track label (canary judge)")
    selectors = [d["spec"]["selector"].get("matchLabels", d["spec"]["selector"]) for d in docs if d["kind"] in ("Service", "PodDisruptionBudget", "Deployment")]
    check(all(s == {"app.kubernetes.io/name": "sesame"} for s in selectors), f"{where}: Service, PDB and Deployment select the same pods")


def check_rollout(where, docs, image):
    rollouts = find(docs, "Rollout")
    if not rollouts:
        return
    r = rollouts[0]["spec"]
    ref = r.get("workloadRef", {})
    check(len(find(docs, ref.get("kind"), ref.get("name"))) == 1, f"{where}: Rollout's workloadRef {ref.get('kind')}/{ref.get('name')} exists")
    check(r.get("revisionHistoryLimit", 0) >= 5, f"{where}: Rollout keeps revisions")
    templates = {t["metadata"]["name"]: t for t in find(docs, "AnalysisTemplate")}
    canary = r["strategy"]["canary"]
    uses = [canary.get("analysis", {})] + [s["analysis"] for s in canary["steps"] if "analysis" in s]
    check(any("analysis" in s for s in canary["steps"]), f"{where}: a canary step runs an analysis")
    check(canary.get("canaryMetadata", {}).get("labels", {}).get("track") == "canary", f"{where}: canary pods are labelled track=canary")
    for use in uses:
        given = {a["name"] for a in use.get("args", [])}
        for t in use.get("templates", []):
            template = templates.get(t["templateName"])
            check(template is not None, f"{where}: AnalysisTemplate {t['templateName']} exists")
            if template is None:
                continue
            declared = {a["name"]: a for a in template["spec"].get("args", [])}
            missing = {n for n, a in declared.items() if "value" not in a and "valueFrom" not in a} - given
            check(not missing, f"{where}: {t['templateName']} gets its args ({missing or 'all'})")
            used = set(re.findall(r"\{\{args\.([\w-]+)\}\}", json.dumps(template)))
            check(used <= set(declared), f"{where}: {t['templateName']} uses only declared args ({used - set(declared) or 'ok'})")
    for t in templates.values():
        for metric in t["spec"]["metrics"]:
            prom = metric.get("provider", {}).get("prometheus")
            if prom:
                check(bool(metric.get("successCondition")), f"{where}: {metric['name']} has a successCondition")
            for _, job in job_templates(t) if metric.get("provider", {}).get("job") else []:
                images = {c["image"] for c in job["spec"]["template"]["spec"]["containers"]}
                check(images == {image}, f"{where}: the judge job runs the release image {image} ({images})")


def metric_names_used(rendered):
    text = "".join(json.dumps(d) for docs in rendered.values() for d in docs)
    text += (K8S / "prometheus-adapter" / "rules.yaml").read_text()
    # The canary's queries: its string literals only (not its `use` paths,
    # which name crates like sesame_domain).
    source = (ROOT / "crates" / "sesame-rollout" / "src" / "canary" / "prometheus.rs").read_text()
    literals = re.findall(r'r#"(.*?)"#|"((?:[^"\\]|\\.)*)"', source, re.S)
    text += " ".join(raw or plain for raw, plain in literals)
    names = set(re.findall(r"\b(sesame_[a-z_]+)", text))
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}


def check_metric_names(rendered, hpa_metrics):
    adapter = yaml.safe_load((K8S / "prometheus-adapter" / "rules.yaml").read_text())
    served = {r["name"]["as"] for r in adapter["rules"]["custom"]}
    for name in hpa_metrics:
        check(name in served, f"HPA metric {name} is served by prometheus-adapter ({sorted(served)})")
    if not METRICS_SOURCE.exists():
        print(f"note: {rel(METRICS_SOURCE)} not found; metric names not cross-checked")
        return
    exported = set(re.findall(r'"(sesame_[a-z_]+)"', METRICS_SOURCE.read_text()))
    for name in sorted(metric_names_used(rendered)):
        check(name in exported, f"metric {name} used by deploy/ and sesame canary is exported by sesame serve")


def queries(rendered):
    """Every PromQL query deploy/ and `sesame canary` run, templates filled in."""
    found = []
    for directory, docs in rendered.items():
        for t in find(docs, "AnalysisTemplate"):
            for metric in t["spec"]["metrics"]:
                query = metric.get("provider", {}).get("prometheus", {}).get("query")
                if query:
                    found.append((f"{rel(directory)}: {t['metadata']['name']}/{metric['name']}",
                                  re.sub(r"\{\{args\.[\w-]+\}\}", "x", query)))
    adapter = yaml.safe_load((K8S / "prometheus-adapter" / "rules.yaml").read_text())
    for rule in adapter["rules"]["custom"]:
        query = rule["metricsQuery"].replace("<<.LabelMatchers>>", 'namespace="x"').replace("<<.GroupBy>>", "pod")
        found.append(("prometheus-adapter rule", query))
    # The canary's tests assert its exact queries; check those strings.
    source = (ROOT / "crates" / "sesame-rollout" / "src" / "canary" / "prometheus.rs").read_text()
    tests = source[source.index("#[cfg(test)]"):]
    for query in re.findall(r'r#"((?:histogram_quantile|sum)\(.*?)"#', tests):
        found.append(("sesame canary", query))
    return found


def check_promql(rendered):
    promtool = shutil.which("promtool")
    check(promtool is not None, "promtool is installed (PromQL syntax)")
    if promtool is None:
        return
    for where, query in queries(rendered):
        rules = {"groups": [{"name": "syntax", "rules": [{"record": "check:syntax", "expr": query}]}]}
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            yaml.safe_dump(rules, f)
            f.flush()
            out = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
        check(out.returncode == 0, f"{where}: PromQL parses ({out.stderr.strip() or out.stdout.strip()})")


def check_docker(runtime_user, http_port, config):
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    final_stage = dockerfile.split("\nFROM ")[-1]
    user = re.search(r"^USER\s+(\S+)", final_stage, re.M)
    check(user is not None and user.group(1).split(":")[0] not in ("0", "root"), "Dockerfile: the runtime stage sets a non-root USER")
    check(user is not None and user.group(1).split(":")[0] == str(runtime_user), f"Dockerfile USER = pod runAsUser {runtime_user}")
    exposed = re.search(r"^EXPOSE\s+(\d+)", final_stage, re.M)
    check(exposed is not None and int(exposed.group(1)) == http_port, f"Dockerfile EXPOSE = containerPort {http_port}")
    listen = re.search(r"SESAME_LISTEN=(\S+)", final_stage)
    check(listen is not None and listen.group(1) == config.get("SESAME_LISTEN"), "Dockerfile SESAME_LISTEN = the ConfigMap's")
    check(dockerfile.count("\nFROM ") >= 2, "Dockerfile is multi-stage")
    check("cargo chef cook" in dockerfile, "Dockerfile caches dependency builds (cargo chef cook)")
    check("--locked" in dockerfile, "Dockerfile builds with --locked")
    # The build context is only what .dockerignore lets through: every file a
    # crate pulls in at compile time must be inside crates/.
    ignore = (ROOT / ".dockerignore").read_text().split()
    check("*" in ignore and "!crates/" in ignore and "!Cargo.lock" in ignore, ".dockerignore allows only the workspace sources")
    for source in (ROOT / "crates").rglob("*.rs"):
        if "target" in source.parts:
            continue
        text = source.read_text(errors="replace")
        for include in re.findall(r'include_(?:str|bytes)!\(\s*"([^"]+)"', text):
            resolved = (source.parent / include).resolve()
            check(str(resolved).startswith(str(ROOT / "crates")), f"{rel(source)}: {include} is inside the Docker build context")


STRIP_PREFIX = "bin=target/release/sesame out=/sesame"


def strip_step(dockerfile):
    """The builder's strip step, as the shell runs it: the commands of the RUN
    that calls objcopy, from `bin=... out=...` on (Docker joins the lines)."""
    joined = dockerfile.replace("\\\n", "")
    for line in joined.splitlines():
        if line.startswith("RUN ") and "objcopy" in line and STRIP_PREFIX in line:
            return line[line.index(STRIP_PREFIX):]
    return None


def debug_sections(path):
    """The .debug_* sections of an ELF file, but .debug_gdb_scripts (loaded
    with the code, so no strip removes it; 34 bytes)."""
    out = subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        return [f"readelf failed: {out.stderr.strip()}"]
    names = re.findall(r"\]\s+(\.z?debug_\w+)", out.stdout)
    return [n for n in names if n != ".debug_gdb_scripts"]


def check_stripped(sesame):
    """The image ships a stripped binary: the Dockerfile's own strip step,
    text taken from the Dockerfile, run on a binary built here (the debug
    build, which carries full debug information: if the step leaves any, it
    is there to see), and the runtime stage copies what that step made."""
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    step = strip_step(dockerfile)
    check(step is not None, f"Dockerfile: the builder strips the binary in a RUN starting `{STRIP_PREFIX}` and calling objcopy")
    final_stage = dockerfile.split("\nFROM ")[-1]
    copied = re.search(r"^COPY\s+--from=builder\s+(\S+)\s+/usr/local/bin/sesame\s*$", final_stage, re.M)
    check(copied is not None and copied.group(1) == "/sesame",
          f"Dockerfile: the image ships the stripped /sesame, not {copied.group(1) if copied else 'nothing'}")
    check(re.search(r"^FROM scratch AS debuginfo\n(?:#.*\n)*COPY --from=builder /sesame\.debug ", dockerfile, re.M) is not None,
          "Dockerfile: a `debuginfo` target exports /sesame.debug for profiling")
    if step is None:
        return
    missing = [tool for tool in ("objcopy", "readelf", "bash") if shutil.which(tool) is None]
    check(not missing, f"binutils installed to run the Dockerfile's strip step here ({missing or 'ok'})")
    if missing:
        return
    with tempfile.TemporaryDirectory() as tmp:
        binary, out = Path(tmp) / "built", Path(tmp) / "sesame"
        shutil.copy(sesame, binary)
        command = step.replace(STRIP_PREFIX, f"bin={shlex.quote(str(binary))} out={shlex.quote(str(out))}", 1)
        ran = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True)
        said = (ran.stdout + ran.stderr).strip()
        check(ran.returncode == 0, f"Dockerfile: the strip step leaves no debug sections in the image's binary (run on {sesame}): exit {ran.returncode} {said}")
        if ran.returncode != 0:
            return
        left = debug_sections(out)
        check(not left, f"Dockerfile: the image's binary has no debug sections after the strip step ({left or 'none'})")
        kept = debug_sections(Path(f"{out}.debug"))
        check(".debug_info" in kept, f"Dockerfile: the debug information is kept in sesame.debug ({kept})")
        version = subprocess.run([str(out), "--version"], capture_output=True, text=True)
        check(version.returncode == 0 and version.stdout.startswith("sesame "), f"the stripped binary runs: {version.stdout.strip()} {version.stderr.strip()}")
        size, full = out.stat().st_size, binary.stat().st_size
        print(f"note: strip step on {sesame}: {full / 2**20:.0f} MiB -> {size / 2**20:.0f} MiB shipped + {Path(f'{out}.debug').stat().st_size / 2**20:.0f} MiB sesame.debug")


def check_documented_plan(sesame):
    """The book's capacity chapter shows `sesame plan` output: it must be today's output."""
    doc = ROOT / "docs" / "src" / "operators" / "capacity.md"
    found = re.search(r"```sh\n(sesame plan [^\n]*)\n```\s*```\n(.*?)```", doc.read_text(), re.S)
    check(found is not None, "the capacity chapter shows a `sesame plan` example and its output")
    if found is None:
        return
    args = shlex.split(found.group(1))[2:]
    out = subprocess.run([sesame, "plan", *args], capture_output=True, text=True)
    check(out.stdout == found.group(2), "the capacity chapter's `sesame plan` output is what sesame plan prints")
    production = shlex.split((K8S / "overlays" / "production" / "plan.args").read_text())
    check(args == production, "the capacity chapter's example is the production overlay's plan.args")


def plan_for(directory, sesame):
    args_file = directory / "plan.args"
    if not args_file.exists():
        return None
    argv = [sesame, "plan", *shlex.split(args_file.read_text()), "--json"]
    out = subprocess.run(argv, capture_output=True, text=True)
    check(out.returncode == 0, f"{rel(directory)}: {' '.join(argv[1:])}: {out.stderr.strip()}")
    return json.loads(out.stdout) if out.returncode == 0 else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sesame", required=True, help="the sesame binary (for `sesame plan`)")
    args = parser.parse_args()

    rendered = {d: render(d) for d in kustomizations()}
    check(len(rendered) >= 4, f"base and overlays found ({[rel(d) for d in rendered]})")
    validate_all(rendered)
    hpa_metrics, users, ports, configs = set(), set(), set(), []
    for directory, docs in rendered.items():
        where = rel(directory)
        plan = plan_for(directory, args.sesame)
        check(plan is not None, f"{where}: has plan.args, the capacity plan it is sized by")
        user_port = check_deployment(where, docs, plan)
        if user_port:
            users.add(user_port[0])
            ports.add(user_port[1])
            check_network(where, docs, user_port[1])
            check_service(where, docs, user_port[1])
        hpa_metrics.add(check_hpa(where, docs, plan))
        configs.append(config_of(docs))
        check(not find(docs, "Secret"), f"{where}: no Secret in the manifests (secrets by reference)")
        deployment = find(docs, "Deployment")
        if deployment:
            check_rollout(where, docs, container(deployment[0])["image"])
    check(len(users) == 1 and len(ports) == 1, f"one runAsUser and one port everywhere ({users}, {ports})")
    check_metric_names(rendered, hpa_metrics - {None})
    check_promql(rendered)
    check_documented_plan(args.sesame)
    check_stripped(args.sesame)
    if users and ports:
        check_docker(next(iter(users)), next(iter(ports)), configs[0])

    print(f"deploy: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
