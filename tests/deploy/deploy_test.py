#!/usr/bin/env python3
"""Checks of the deployment files (Dockerfile, deploy/, docs/deploy.md).

No Docker engine or cluster runs in CI, so this checks what can be checked
without one:

  ConfigTest (ctest: deploy_config_test)
    The Dockerfile's build stages call the scripts CI runs; its runtime stage
    runs unprivileged, exposes the server's default ports, health-checks with
    `headroom health` and lets SIGTERM reach the server. Compose, Prometheus,
    Grafana and Kubernetes YAML parse and reference the right services,
    ports, paths, labels and names; PromQL in the dashboard is well formed.

  LiveMetricsTest (ctest: deploy_live_metrics_test)
    Bundles the built server and client with deploy/docker/bundle.sh (as the
    image's build stage does) and serves a model from the bundle: every flag
    the deployment files pass exists, the image's HEALTHCHECK command reports
    SERVING, every metric name in the dashboard, the autoscaler and the
    adapter rules exists on the live /metrics page with the type its PromQL
    assumes, and SIGTERM drains and exits 0.

usage: deploy_test.py --source DIR --build DIR --shared DIR [unittest args]
($HEADROOM_SHARED_DIR overrides --shared, as for the other tests.)
"""

import argparse
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.request

try:
    import yaml
except ImportError:  # python3-yaml, from scripts/install-deps.sh
    sys.exit("deploy_test.py needs PyYAML (Debian: python3-yaml; scripts/install-deps.sh installs it)")

SOURCE = BUILD = SHARED = ""

# Labels Prometheus or its Kubernetes discovery add to every scraped series.
TARGET_LABELS = {"instance", "job", "namespace", "pod"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
RATE_FUNCTIONS = {"rate", "irate", "increase"}


# --------------------------------------------------------------- helpers

def src(*parts):
    return os.path.join(SOURCE, *parts)


def read(*parts):
    with open(src(*parts), encoding="utf-8") as f:
        return f.read()


def load_yaml(*parts):
    return yaml.safe_load(read(*parts))


def load_yaml_all(*parts):
    return [d for d in yaml.safe_load_all(read(*parts)) if d is not None]


def server_flag_default(name):
    """The default of an ABSL_FLAG in server/main.cc (as written)."""
    m = re.search(r'ABSL_FLAG\(\s*[\w:]+\s*,\s*%s\s*,\s*("?)([^",)]*)\1' % name, read("server", "main.cc"))
    if not m:
        raise AssertionError("server/main.cc has no flag --%s" % name)
    return m.group(2)


def port_of(address):
    return int(address.rsplit(":", 1)[1])


GRPC_PORT = METRICS_PORT = DRAIN_TIMEOUT_S = None


def load_server_defaults():
    global GRPC_PORT, METRICS_PORT, DRAIN_TIMEOUT_S
    GRPC_PORT = port_of(server_flag_default("grpc_address"))
    METRICS_PORT = port_of(server_flag_default("metrics_address"))
    DRAIN_TIMEOUT_S = int(server_flag_default("drain_timeout_s"))


def flag_values(args):
    """{flag: value} of ["--a=1", "--b", "2", ...] (the server's and client's style)."""
    out, i = {}, 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            if "=" in a:
                k, v = a[2:].split("=", 1)
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                k, v = a[2:], args[i + 1]
                i += 1
            else:
                k, v = a[2:], "true"
            out[k] = v
        i += 1
    return out


def expand_env_defaults(s):
    """Compose interpolation with every variable unset: ${X:-default} -> default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", s)


# -- Dockerfile

class Dockerfile:
    """Instructions of a Dockerfile, grouped by stage, ARG defaults applied to FROM."""

    def __init__(self, text):
        lines, cur = [], ""
        for raw in text.splitlines():
            s = raw.strip()
            if not cur and (not s or s.startswith("#")):
                continue
            if s.startswith("#"):  # a comment inside a continued instruction
                continue
            if s.endswith("\\"):
                cur += s[:-1] + " "
                continue
            cur += s
            lines.append(cur)
            cur = ""
        self.global_args = {}
        self.stages = []  # [{"image", "name", "instructions": [(INSTR, args)]}]
        for line in lines:
            instr, _, rest = line.partition(" ")
            instr, rest = instr.upper(), rest.strip()
            if instr == "FROM":
                parts = rest.split()
                image = re.sub(r"\$\{(\w+)\}", lambda m: self.global_args.get(m.group(1), m.group(0)), parts[0])
                name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
                self.stages.append({"image": image, "raw_image": parts[0], "name": name, "instructions": []})
            elif not self.stages:
                if instr == "ARG":
                    k, _, v = rest.partition("=")
                    self.global_args[k] = v.strip('"')
            else:
                self.stages[-1]["instructions"].append((instr, rest))

    def stage(self, name):
        for s in self.stages:
            if s["name"] == name:
                return s
        raise AssertionError("Dockerfile has no stage %r" % name)

    def ancestry(self, stage):
        """The stage and the stages it is built FROM, nearest first."""
        out = [stage]
        names = {s["name"]: s for s in self.stages if s["name"]}
        while out[-1]["image"] in names:
            out.append(names[out[-1]["image"]])
        return out

    @staticmethod
    def all(stage, instr):
        return [a for i, a in stage["instructions"] if i == instr]

    @staticmethod
    def exec_form(args):
        """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD, else None."""
        try:
            v = json.loads(args)
        except ValueError:
            return None
        return v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None


def dockerfile():
    return Dockerfile(read("Dockerfile"))


def healthcheck_argv(df):
    runtime = df.stages[-1]
    (hc,) = Dockerfile.all(runtime, "HEALTHCHECK")
    m = re.search(r"\bCMD\s+(\[.*\])\s*$", hc)
    if not m:
        raise AssertionError("HEALTHCHECK is not in exec form: %s" % hc)
    return Dockerfile.exec_form(m.group(1))


def runtime_argv(df):
    runtime = df.stages[-1]
    (ep,) = Dockerfile.all(runtime, "ENTRYPOINT")
    (cmd,) = Dockerfile.all(runtime, "CMD")
    return Dockerfile.exec_form(ep), Dockerfile.exec_form(cmd)


# -- PromQL

PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "le", "inf", "nan",
}


def promql_metrics(expr):
    """[(metric name, innermost enclosing function or None)] of a PromQL
    expression: identifiers outside label matchers, strings and ranges that
    are neither functions, keywords nor grouping labels."""
    out, stack, i, n = [], [], 0, len(expr)
    last_word, in_grouping = None, False
    while i < n:
        c = expr[i]
        if c in "\"'`":
            j = expr.index(c, i + 1)
            i = j + 1
            continue
        if c == "{":
            i = expr.index("}", i) + 1
            continue
        if c == "[":
            i = expr.index("]", i) + 1
            continue
        if c == "(":
            stack.append(("grouping" if in_grouping else last_word))
            in_grouping = False
            last_word = None
            i += 1
            continue
        if c == ")":
            stack.pop()
            last_word = None
            i += 1
            continue
        m = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", expr[i:])
        if m:
            word = m.group(0)
            j = i + len(word)
            while j < n and expr[j] == " ":
                j += 1
            is_call = j < n and expr[j] == "("
            inside_grouping = bool(stack) and stack[-1] == "grouping"
            if word in ("by", "without", "on", "ignoring", "group_left", "group_right"):
                in_grouping = True
            elif not is_call and word.lower() not in PROMQL_WORDS and not inside_grouping \
                    and not word.startswith("$"):
                out.append((word, stack[-1] if stack else None))
            last_word = word
            i += len(word)
            continue
        if c.isdigit():
            m = re.match(r"[0-9.eE+-]+[smhdwy]?", expr[i:])
            i += len(m.group(0))
            continue
        if c == "$":  # Grafana variable, e.g. $__rate_interval
            m = re.match(r"\$\w+", expr[i:])
            i += len(m.group(0))
            continue
        i += 1
    return out


def promql_grouping_labels(expr):
    labels = set()
    for m in re.finditer(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels.update(x.strip() for x in m.group(1).split(",") if x.strip())
    return labels


def dashboard_queries():
    """(panel title, expr) of every query in the dashboards, templating included."""
    out = []
    folder = src("deploy", "grafana", "dashboards")
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            dash = json.load(f)
        for p in dash.get("panels", []):
            for t in p.get("targets", []):
                out.append((p.get("title", ""), t["expr"]))
        for v in dash.get("templating", {}).get("list", []):
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.match(r"label_values\((\w+)\s*,\s*\w+\)", q or "")
            if m:
                out.append(("variable " + v["name"], m.group(1)))
    return out


def adapter_rules():
    return load_yaml("deploy", "k8s", "addons", "prometheus-adapter-values.yaml")["rules"]["custom"]


def hpa_metric_names():
    (hpa,) = [d for d in load_yaml_all("deploy", "k8s", "hpa.yaml") if d["kind"] == "HorizontalPodAutoscaler"]
    names = []
    for m in hpa["spec"]["metrics"]:
        kind = m["type"]
        if kind in ("Pods", "Object", "External"):
            names.append(m[kind[0].lower() + kind[1:]]["metric"]["name"])
    return names


def k8s_docs():
    docs = {}
    for name in sorted(os.listdir(src("deploy", "k8s"))):
        if name.endswith(".yaml") and name != "kustomization.yaml":
            for d in load_yaml_all("deploy", "k8s", name):
                docs[(d["kind"], d["metadata"]["name"])] = d
    return docs


# ------------------------------------------------------------ static tests

class ConfigTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        load_server_defaults()

    # -- Dockerfile

    def test_dockerfile_variants_select_base_images(self):
        df = dockerfile()
        self.assertEqual(df.global_args.get("VARIANT"), "cpu", "the default image is the CPU one")
        self.assertRegex(df.stage("build-base-cpu")["image"], r"^debian:12$")
        self.assertRegex(df.stage("runtime-base-cpu")["image"], r"^debian:12-slim$")
        self.assertRegex(df.stage("build-base-cuda")["image"], r"^nvidia/cuda:[\d.]+-devel-(ubuntu|debian)[\d.]+$")
        self.assertRegex(df.stage("runtime-base-cuda")["image"], r"^nvidia/cuda:[\d.]+-runtime-(ubuntu|debian)[\d.]+$")
        # Both variants resolve the same two FROM lines.
        froms = [s["raw_image"] for s in df.stages]
        self.assertIn("build-base-${VARIANT}", froms)
        self.assertIn("runtime-base-${VARIANT}", froms)
        self.assertEqual(df.stages[-1]["raw_image"], "runtime-base-${VARIANT}", "the last stage is the runtime")
        self.assertGreaterEqual(len([s for s in df.stages if s["instructions"]]), 3, "multi-stage")

    def test_dockerfile_builds_with_the_scripts_ci_runs(self):
        # What CI runs: .ci/run -> scripts/test.sh -> install-deps.sh, build.sh.
        self.assertRegex(read(".ci", "run"), r"(?m)^exec \./scripts/test\.sh")
        test_sh = read("scripts", "test.sh")
        ci_scripts = re.findall(r"(?m)^\./(scripts/[\w-]+\.sh)\s*$", test_sh)
        self.assertEqual(ci_scripts, ["scripts/install-deps.sh", "scripts/build.sh"])

        df = dockerfile()
        runtime = df.stages[-1]
        build_runs = []
        for s in df.stages[:-1]:
            build_runs += Dockerfile.all(s, "RUN")
        build_text = "\n".join(build_runs)
        for script in ci_scripts:
            self.assertIn("./" + script, build_text, "a build stage must run %s" % script)
        # The runtime stage builds nothing and installs nothing.
        for run in Dockerfile.all(runtime, "RUN"):
            self.assertNotRegex(run, r"apt-get|install-deps|build\.sh|cmake")

        # The build stage names targets that exist, and bundles their outputs
        # from where CMake puts them.
        m = re.search(r'TARGETS="([^"]+)"', build_text)
        self.assertIsNotNone(m, "the image builds a subset of the targets: TARGETS=...")
        self.assertIn('TARGETS:-', read("scripts", "build.sh"), "build.sh must honour TARGETS")
        targets = m.group(1).split()
        self.assertEqual(sorted(targets), ["headroom", "headroom-server"])
        bundle = re.search(r"\./deploy/docker/bundle\.sh\s+(\S+)\s+([^&\n]+)", build_text)
        self.assertIsNotNone(bundle, "the build stage bundles with deploy/docker/bundle.sh")
        self.assertTrue(os.access(src("deploy", "docker", "bundle.sh"), os.X_OK))
        bundled = bundle.group(2).split()
        for target in targets:
            dirs = [d for d in ("server", "client")
                    if re.search(r"add_executable\(%s\s" % re.escape(target), read(d, "CMakeLists.txt"))]
            self.assertEqual(len(dirs), 1, "no CMake target %s" % target)
            self.assertIn("build/%s/%s" % (dirs[0], target), bundled)
        self.assertIn("--from=build %s %s" % (bundle.group(1), bundle.group(1)), Dockerfile.all(runtime, "COPY"))
        # install-deps.sh is copied on its own before the sources (its layer
        # survives source edits).
        deps = df.stage("deps")
        self.assertEqual(Dockerfile.all(deps, "COPY"), ["scripts/install-deps.sh scripts/install-deps.sh"])

    def test_dockerfile_runtime_stage(self):
        df = dockerfile()
        runtime = df.stages[-1]
        (user,) = Dockerfile.all(runtime, "USER")
        uid = user.split(":")[0]
        uid = df_arg(runtime, uid)
        self.assertTrue(uid.isdigit() and int(uid) > 0, "USER must be a numeric non-root uid, got %s" % user)
        exposed = {int(p.split("/")[0]) for e in Dockerfile.all(runtime, "EXPOSE") for p in e.split()}
        self.assertEqual(exposed, {GRPC_PORT, METRICS_PORT})
        stop = Dockerfile.all(runtime, "STOPSIGNAL")
        self.assertIn(stop, ([], ["SIGTERM"]))

        entry, cmd = runtime_argv(df)
        self.assertEqual(entry, ["headroom-server"], "exec-form ENTRYPOINT: the server is PID 1 and gets SIGTERM")
        flags = flag_values(cmd)
        self.assertEqual(port_of(flags.get("grpc_address", ":%d" % GRPC_PORT)), GRPC_PORT)
        self.assertEqual(port_of(flags.get("metrics_address", ":%d" % METRICS_PORT)), METRICS_PORT)

        # The demo model ships inside; others mount on the VOLUME.
        copies = Dockerfile.all(runtime, "COPY")
        models = [c.split() for c in copies if c.split()[0].rstrip("/") == "models"]
        self.assertEqual(len(models), 1, "the runtime stage copies models/")
        models_dir = models[0][1].rstrip("/")
        self.assertEqual(os.path.dirname(flags["model"]), models_dir)
        self.assertTrue(flags["model"].endswith(".gguf"))
        volumes = [json.loads(v) if v.startswith("[") else v.split() for v in Dockerfile.all(runtime, "VOLUME")]
        self.assertIn("/models", [x for v in volumes for x in v])

        hc = healthcheck_argv(df)
        self.assertEqual(hc[:2], ["headroom", "health"])
        self.assertEqual(port_of(flag_values(hc[2:])["server"]), GRPC_PORT)

    def test_dockerignore_keeps_what_the_build_needs(self):
        import fnmatch
        patterns = [l.strip() for l in read(".dockerignore").splitlines() if l.strip() and not l.startswith("#")]
        for needed in ("CMakeLists.txt", "scripts/build.sh", "scripts/install-deps.sh", "deploy/docker/bundle.sh",
                       "models/demo.gguf", "server/main.cc", "client/headroom_main.cc", "proto", "kernels",
                       "tests/CMakeLists.txt", "bench"):
            for p in patterns:
                self.assertFalse(fnmatch.fnmatch(needed, p.lstrip("/")) or needed.startswith(p.rstrip("/") + "/"),
                                 "%s is excluded by .dockerignore pattern %s" % (needed, p))
        for excluded in ("build", ".git"):
            self.assertIn(excluded, patterns)

    # -- Compose, Prometheus, Grafana

    def compose(self):
        return load_yaml("deploy", "compose.yaml")

    def test_compose_server(self):
        c = self.compose()
        self.assertEqual(set(c["services"]), {"headroom", "prometheus", "grafana"})
        s = c["services"]["headroom"]
        context = os.path.normpath(os.path.join(src("deploy"), s["build"]["context"]))
        self.assertEqual(context, os.path.normpath(SOURCE))
        self.assertTrue(os.path.isfile(os.path.join(context, s["build"].get("dockerfile", "Dockerfile"))))
        self.assertEqual(s["build"]["args"]["VARIANT"], "cpu")
        container_ports = {int(str(p).split(":")[-1].split("/")[0]) for p in s["ports"]}
        self.assertEqual(container_ports, {GRPC_PORT, METRICS_PORT})
        flags = flag_values([expand_env_defaults(a) for a in s["command"]])
        self.assertEqual(port_of(flags["grpc_address"]), GRPC_PORT)
        self.assertEqual(port_of(flags["metrics_address"]), METRICS_PORT)
        _, cmd = runtime_argv(dockerfile())
        self.assertEqual(flags["model"], flag_values(cmd)["model"], "compose serves the image's demo model by default")
        # Models mount where the image declares its VOLUME.
        targets = [expand_env_defaults(v).split(":")[1] for v in s["volumes"]]
        self.assertIn("/models", targets)
        self.assertEqual(s.get("stop_signal", "SIGTERM"), "SIGTERM")
        grace = int(str(s["stop_grace_period"]).rstrip("s"))
        self.assertGreater(grace, DRAIN_TIMEOUT_S + 5, "stop_grace_period must cover the drain")

    def test_compose_bind_mounts_exist(self):
        for name, s in self.compose()["services"].items():
            for v in s.get("volumes", []):
                source = expand_env_defaults(v).split(":")[0]
                if source.startswith("."):
                    self.assertTrue(os.path.exists(os.path.join(src("deploy"), source)),
                                    "%s mounts missing %s" % (name, source))

    def test_compose_gpu_override(self):
        g = load_yaml("deploy", "compose.gpu.yaml")
        s = g["services"]["headroom"]
        self.assertEqual(s["build"]["args"]["VARIANT"], "cuda")
        (dev,) = s["deploy"]["resources"]["reservations"]["devices"]
        self.assertEqual(dev["driver"], "nvidia")
        self.assertIn("gpu", dev["capabilities"])

    def test_prometheus_scrapes_the_server(self):
        c = self.compose()
        p = c["services"]["prometheus"]
        mounts = dict(expand_env_defaults(v).split(":")[:2] for v in p["volumes"])
        config_path = mounts["./prometheus.yml"]
        self.assertIn("--config.file=" + config_path, p["command"])
        prom = load_yaml("deploy", "prometheus.yml")
        (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "headroom"]
        self.assertEqual(job.get("metrics_path", "/metrics"), "/metrics")
        (targets,) = [sc["targets"] for sc in job["static_configs"]]
        self.assertEqual(targets, ["headroom:%d" % METRICS_PORT])

    def test_grafana_provisioning(self):
        c = self.compose()
        g = c["services"]["grafana"]
        mounts = dict(expand_env_defaults(v).split(":")[:2] for v in g["volumes"])
        self.assertEqual(mounts["./grafana/provisioning"], "/etc/grafana/provisioning")
        dashboards_dir = mounts["./grafana/dashboards"]
        (provider,) = load_yaml("deploy", "grafana", "provisioning", "dashboards", "headroom.yaml")["providers"]
        self.assertEqual(provider["options"]["path"], dashboards_dir)
        home = g["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        self.assertEqual(os.path.dirname(home), dashboards_dir)
        self.assertTrue(os.path.isfile(src("deploy", "grafana", "dashboards", os.path.basename(home))))

        (ds,) = load_yaml("deploy", "grafana", "provisioning", "datasources", "prometheus.yaml")["datasources"]
        self.assertEqual(ds["type"], "prometheus")
        m = re.fullmatch(r"http://(\w+):(\d+)", ds["url"])
        self.assertIsNotNone(m)
        self.assertIn(m.group(1), c["services"])
        prom_ports = {int(str(x).split(":")[-1]) for x in c["services"][m.group(1)]["ports"]}
        self.assertIn(int(m.group(2)), prom_ports, "the data source must use Prometheus' container port")

        with open(src("deploy", "grafana", "dashboards", "headroom.json"), encoding="utf-8") as f:
            dash = json.load(f)
        ids = [p["id"] for p in dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")
        for p in dash["panels"]:
            if p["type"] == "row":
                continue
            self.assertEqual(p["datasource"]["uid"], ds["uid"], p["title"])
            self.assertTrue(p["targets"], p["title"])
            for t in p["targets"]:
                self.assertEqual(t["datasource"]["uid"], ds["uid"], p["title"])

    def test_dashboard_covers_the_issue_topics(self):
        referenced = set()
        for _, expr in dashboard_queries():
            referenced.update(name for name, _ in promql_metrics(expr))
        bases = {re.sub(r"_(bucket|sum|count)$", "", n) for n in referenced}
        for family in ("headroom_time_to_first_token_seconds",     # time to first token
                       "headroom_inter_token_latency_seconds",     # inter-token latency
                       "headroom_generation_tokens_total",         # throughput
                       "headroom_requests_waiting",                # queue
                       "headroom_kv_cache_usage_ratio",            # KV usage
                       "headroom_prefix_cache_hits_total",         # prefix-cache hits
                       "headroom_chunks_selected_per_step",        # chunks selected per step
                       "headroom_context_length_tokens"):          # context lengths
            self.assertIn(family, bases)

    def assert_promql_well_formed(self, title, expr):
        """Balanced brackets; every metric in server/metrics/server_metrics.h
        (types as it lists them; the live test checks the page itself);
        rate() around counters and histograms only; quantiles by (le)."""
        types = dict(re.findall(r"^//\s+(headroom_\w+)(?:\{\w+\})?\s+(counter|gauge|histogram)\b",
                                read("server", "metrics", "server_metrics.h"), re.M))
        self.assertGreater(len(types), 20)
        depth = {"(": 0, "[": 0, "{": 0}
        closing = {")": "(", "]": "[", "}": "{"}
        for ch in re.sub(r'"[^"]*"', '""', expr):
            if ch in depth:
                depth[ch] += 1
            elif ch in closing:
                depth[closing[ch]] -= 1
                self.assertGreaterEqual(depth[closing[ch]], 0, "%s: %s" % (title, expr))
        self.assertEqual(set(depth.values()), {0}, "%s: unbalanced %s" % (title, expr))
        names = promql_metrics(expr)
        self.assertTrue(names, "%s: no metric in %s" % (title, expr))
        for name, inner in names:
            self.assertTrue(name.startswith("headroom_"), "%s: unknown identifier %s" % (title, name))
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            kind = types.get(name) or (types.get(base) == "histogram" and "histogram")
            self.assertTrue(kind, "%s: %s is not in server_metrics.h" % (title, name))
            if kind in ("counter", "histogram"):
                self.assertIn(inner, RATE_FUNCTIONS, "%s: %s %s needs rate()" % (title, kind, name))
            else:
                self.assertNotIn(inner, RATE_FUNCTIONS, "%s: rate() of gauge %s" % (title, name))
            if name.endswith("_bucket"):
                self.assertIn("histogram_quantile", expr)
                self.assertIn("le", promql_grouping_labels(expr), "%s: quantile without by (le)" % title)

    def test_dashboard_promql_is_well_formed(self):
        for title, expr in dashboard_queries():
            self.assert_promql_well_formed(title, expr)

    def test_alert_rules(self):
        # The PrometheusRule addon: well-formed PromQL on the server's
        # metrics, a severity and a summary per alert, grouped by pod.
        (rules,) = load_yaml_all("deploy", "k8s", "addons", "prometheus-rules.yaml")
        self.assertEqual(rules["kind"], "PrometheusRule")
        alerts = [r for g in rules["spec"]["groups"] for r in g["rules"]]
        self.assertIn("HeadroomWorkerLost", [a["alert"] for a in alerts])
        for a in alerts:
            self.assert_promql_well_formed(a["alert"], a["expr"])
            self.assertIn("pod", promql_grouping_labels(a["expr"]), a["alert"])
            self.assertIn(a["labels"]["severity"], ("critical", "warning"), a["alert"])
            self.assertIn("{{ $labels.pod }}", a["annotations"]["summary"], a["alert"])

    # -- Kubernetes

    def test_kustomization_lists_every_manifest(self):
        k = load_yaml("deploy", "k8s", "kustomization.yaml")
        files = sorted(n for n in os.listdir(src("deploy", "k8s")) if n.endswith(".yaml") and n != "kustomization.yaml")
        self.assertEqual(sorted(k["resources"]), files)
        kinds = {kind for kind, _ in k8s_docs()}
        self.assertEqual(kinds, {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"})

    def deployment(self):
        docs = k8s_docs()
        dep = docs[("Deployment", "headroom")]
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        return docs, dep, container

    def test_deployment_ports_probes_and_drain(self):
        _, dep, c = self.deployment()
        pod = dep["spec"]["template"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports, {"grpc": GRPC_PORT, "metrics": METRICS_PORT})
        flags = flag_values(c["args"])
        self.assertEqual(port_of(flags["grpc_address"]), GRPC_PORT)
        self.assertEqual(port_of(flags["metrics_address"]), METRICS_PORT)
        _, cmd = runtime_argv(dockerfile())
        self.assertTrue(flags["model"] == flag_values(cmd)["model"] or flags["model"].startswith("/models/"))
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            self.assertEqual(c[probe]["grpc"]["port"], GRPC_PORT, probe)
            self.assertNotIn("service", c[probe]["grpc"], "the server's health status is service \"\"")
        # preStop, then SIGTERM's drain, within the grace period.
        pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre_stop[0], "sleep")
        drain = int(flags.get("drain_timeout_s", DRAIN_TIMEOUT_S))
        self.assertGreater(pod["spec"]["terminationGracePeriodSeconds"], int(pre_stop[1]) + drain + 5)
        sc = pod["spec"]["securityContext"]
        self.assertTrue(sc["runAsNonRoot"])
        df = dockerfile()
        (user,) = Dockerfile.all(df.stages[-1], "USER")
        self.assertEqual(str(sc["runAsUser"]), df_arg(df.stages[-1], user.split(":")[0]))
        ann = pod["metadata"]["annotations"]
        self.assertEqual(ann["prometheus.io/port"], str(METRICS_PORT))
        self.assertEqual(ann["prometheus.io/path"], "/metrics")
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        self.assertIn("/models", mounts)

    def test_service_pdb_and_hpa_reference_the_deployment(self):
        docs, dep, c = self.deployment()
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(dep["spec"]["selector"]["matchLabels"].items() - pod_labels.items(), set())
        svc = docs[("Service", "headroom")]
        self.assertEqual(svc["spec"]["clusterIP"], "None", "headless, for client-side balancing")
        self.assertEqual(svc["spec"]["selector"].items() - pod_labels.items(), set())
        names = {p["name"] for p in c["ports"]}
        svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
        self.assertEqual(svc_ports["grpc"]["port"], GRPC_PORT)
        for p in svc["spec"]["ports"]:
            self.assertIn(p["targetPort"], names)
        pdb = docs[("PodDisruptionBudget", "headroom")]
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"].items() - pod_labels.items(), set())
        hpa = docs[("HorizontalPodAutoscaler", "headroom")]
        ref = hpa["spec"]["scaleTargetRef"]
        self.assertEqual((ref["kind"], ref["name"]), ("Deployment", "headroom"))
        self.assertGreater(hpa["spec"]["minReplicas"], pdb["spec"]["maxUnavailable"])

    def test_hpa_metrics_have_adapter_rules(self):
        served = {}
        for rule in adapter_rules():
            (series,) = re.findall(r"^(\w+)\{", rule["seriesQuery"])
            self.assertRegex(rule["name"]["matches"], "^\\^?%s\\$?$" % series)
            self.assertIn("<<.Series>>", rule["metricsQuery"])
            self.assertEqual(set(rule["resources"]["overrides"]), {"namespace", "pod"})
            served[rule["name"]["as"]] = series
        names = hpa_metric_names()
        self.assertTrue(names)
        for name in names:
            self.assertIn(name, served, "no prometheus-adapter rule serves %s" % name)
        self.assertTrue({"headroom_requests_waiting", "headroom_kv_cache_usage_ratio"} & set(names))

    def test_envoy_addon(self):
        docs = {(d["kind"], d["metadata"]["name"]): d for d in load_yaml_all("deploy", "k8s", "addons", "envoy.yaml")}
        envoy = yaml.safe_load(docs[("ConfigMap", "headroom-envoy")]["data"]["envoy.yaml"])
        (listener,) = envoy["static_resources"]["listeners"]
        (cluster,) = envoy["static_resources"]["clusters"]
        self.assertEqual(cluster["lb_policy"], "RING_HASH")
        self.assertIn("http2_protocol_options",
                      cluster["typed_extension_protocol_options"]
                      ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"])
        (ep,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        addr = ep["endpoint"]["address"]["socket_address"]
        self.assertTrue(addr["address"].startswith("headroom."), "upstream: the headless Service")
        self.assertEqual(addr["port_value"], GRPC_PORT)
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        (route,) = hcm["route_config"]["virtual_hosts"][0]["routes"]
        header = route["route"]["hash_policy"][0]["header"]["header_name"]
        self.assertIn(header, read("deploy", "k8s", "README.md"))
        dep = docs[("Deployment", "headroom-envoy")]
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        self.assertEqual(c["ports"][0]["containerPort"], listener["address"]["socket_address"]["port_value"])
        mount = c["volumeMounts"][0]["mountPath"]
        self.assertEqual(c["args"][c["args"].index("--config-path") + 1], mount + "/envoy.yaml")
        svc = docs[("Service", "headroom-lb")]
        self.assertEqual(svc["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"])

    # -- Docs

    def test_docs_reference_existing_files(self):
        text = read("docs", "deploy.md")
        paths = set(re.findall(r"`((?:deploy|scripts|docs|tests/deploy)/[\w./-]+|Dockerfile|\.dockerignore)`", text))
        self.assertTrue(paths)
        for p in paths:
            self.assertTrue(os.path.exists(src(p)), "docs/deploy.md names missing %s" % p)
        for must in ("deploy/compose.yaml", "deploy/k8s/deployment.yaml", "deploy/k8s/hpa.yaml", "Dockerfile"):
            self.assertIn(must, paths)


def df_arg(stage, value):
    """Resolves ${NAME} against the stage's ARG defaults."""
    args = {}
    for a in Dockerfile.all(stage, "ARG"):
        k, _, v = a.partition("=")
        args[k] = v.strip('"')
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), value)


# --------------------------------------------------------------- live test

def parse_metrics_page(text):
    """{family: {"type", "samples": {sample name: [labels + "__value__"]}}} of a
    Prometheus text page (strict parsing is serving_test's job)."""
    families, sample_family = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            families[name] = {"type": kind, "samples": {}}
            if kind == "histogram":
                for s in HISTOGRAM_SUFFIXES:
                    sample_family[name + s] = name
            elif kind == "summary":
                for s in ("_sum", "_count"):
                    sample_family[name + s] = name
            sample_family[name] = name
        elif line and not line.startswith("#"):
            m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
            if not m:
                raise AssertionError("bad metrics line: %r" % line)
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            labels["__value__"] = float(m.group(3))
            fam = sample_family.get(m.group(1))
            if fam is None:
                raise AssertionError("sample of an undeclared family: %r" % line)
            families[fam]["samples"].setdefault(m.group(1), []).append(labels)
    return families


class LiveMetricsTest(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        load_server_defaults()
        cls.tmp = tempfile.mkdtemp(prefix="deploy_live_", dir=BUILD)
        cls.bundle = os.path.join(cls.tmp, "headroom")
        # The image's build stage: the same script over the same targets.
        binaries = [os.path.join(BUILD, "server", "headroom-server"), os.path.join(BUILD, "client", "headroom")]
        subprocess.run([src("deploy", "docker", "bundle.sh"), cls.bundle] + binaries, check=True)
        cls.env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(cls.bundle, "lib"))
        model = os.path.join(SHARED, "models", "stories260K.gguf")
        cls.server = subprocess.Popen(
            [cls.bin("headroom-server"), "--model", model, "--grpc_address", "127.0.0.1:0",
             "--metrics_address", "127.0.0.1:0", "--threads_per_worker", "1",
             "--chunk_size", "16", "--atten_length", "64"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=cls.env, text=True)
        lines = queue.Queue()

        def pump():  # reads stdout for the server's whole life (never blocks it)
            for line in cls.server.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        try:
            while True:
                line = lines.get(timeout=120)
                if line is None:
                    raise AssertionError("headroom-server exited with %s before serving" % cls.server.wait())
                m = re.match(r"headroom-server: serving grpc=(\S+) metrics=(\S+)", line)
                if m:
                    cls.grpc, cls.metrics = m.group(1), m.group(2)
                    break
        except BaseException:
            cls.server.kill()
            cls.server.wait()
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            # The image's stop contract: SIGTERM drains and exits 0.
            cls.server.send_signal(signal.SIGTERM)
            try:
                code = cls.server.wait(timeout=DRAIN_TIMEOUT_S + 30)
            except subprocess.TimeoutExpired:
                cls.server.kill()
                cls.server.wait()
                raise AssertionError("headroom-server did not exit after SIGTERM")
            if code != 0:
                raise AssertionError("headroom-server exited %d after SIGTERM" % code)
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def bin(cls, name):
        return os.path.join(cls.bundle, "bin", name)

    def client(self, *args, timeout=120):
        return subprocess.run([self.bin("headroom")] + list(args), env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def test_bundle_is_self_contained(self):
        # Every library outside the runtime base image resolves from the bundle
        # (the CUDA runtime and cuBLAS of a CUDA build come with the nvidia/cuda
        # runtime image, as bundle.sh says).
        for name in ("headroom-server", "headroom"):
            out = subprocess.run(["ldd", self.bin(name)], env=self.env, capture_output=True, text=True,
                                 check=True).stdout
            for lib, path in re.findall(r"^\s*(\S+) => (\S+)", out, re.M):
                if re.match(r"(libc|libm|libstdc\+\+|libgcc_s|libdl|libpthread|librt)\.so", lib):
                    continue
                if re.match(r"(libcudart|libcublas|libcublasLt)\.so", lib):
                    continue
                self.assertTrue(path.startswith(os.path.join(self.bundle, "lib")), "%s: %s from %s" % (name, lib, path))

    def test_deployment_flags_exist(self):
        helpfull = subprocess.run([self.bin("headroom-server"), "--helpfull"], env=self.env,
                                  capture_output=True, text=True).stdout
        known = set(re.findall(r"^\s+--(\w+)", helpfull, re.M))
        self.assertIn("model", known)
        _, cmd = runtime_argv(dockerfile())
        compose = load_yaml("deploy", "compose.yaml")["services"]["headroom"]["command"]
        dep = k8s_docs()[("Deployment", "headroom")]
        k8s_args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        for where, argv in (("Dockerfile CMD", cmd), ("compose", compose), ("k8s", k8s_args)):
            for flag in flag_values(argv):
                self.assertIn(flag, known, "%s passes unknown flag --%s" % (where, flag))

    def test_healthcheck_command_reports_serving(self):
        argv = healthcheck_argv(dockerfile())
        args = argv[2:]
        i = next(i for i, a in enumerate(args) if a == "--server" or a.startswith("--server="))
        args[i:i + (1 if "=" in args[i] else 2)] = ["--server=" + self.grpc]
        r = self.client("health", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "SERVING")

    def test_referenced_metrics_exist_on_the_live_page(self):
        doc = ("Once upon a time, there was a little girl named Lily. She loved to play outside "
               "in the park with her friends. One day, she saw a big red ball under a tree. ")
        for question in ("What did Lily see?", "Who did Lily play with?"):
            r = self.client("generate", "--server", self.grpc, "--text", doc + question, "--max_tokens", "8")
            self.assertEqual(r.returncode, 0, r.stderr)
        with urllib.request.urlopen("http://%s/metrics" % self.metrics, timeout=10) as resp:
            page = parse_metrics_page(resp.read().decode())
        (total,) = page["headroom_generation_tokens_total"]["samples"]["headroom_generation_tokens_total"]
        self.assertGreaterEqual(total["__value__"], 16, "the page shows the two requests' tokens")

        references = [(title, expr, promql_metrics(expr)) for title, expr in dashboard_queries()]
        references += [("hpa", n, [(n, None)]) for n in hpa_metric_names()]
        for rule in adapter_rules():
            references.append(("prometheus-adapter", rule["seriesQuery"], promql_metrics(rule["seriesQuery"])))
        self.assertGreater(len(references), 20)
        for where, expr, names in references:
            for name, inner in names:
                family, kind = lookup(page, name)
                self.assertIsNotNone(family, "%s: %s is not on the live /metrics page (%s)" % (where, name, expr))
                if kind in ("counter", "histogram"):
                    if where not in ("hpa", "prometheus-adapter") and not where.startswith("variable"):
                        self.assertIn(inner, RATE_FUNCTIONS, "%s: %s %s outside rate()" % (where, kind, name))
                elif kind == "gauge":
                    self.assertNotIn(inner, RATE_FUNCTIONS, "%s: rate() of gauge %s" % (where, name))
                labels = set()
                for ls in page[family]["samples"].values():
                    for l in ls:
                        labels.update(k for k in l if k != "__value__")
                for label in promql_grouping_labels(expr) - TARGET_LABELS:
                    self.assertIn(label, labels, "%s: %s has no label %s" % (where, name, label))


def lookup(page, name):
    """(family, type) of a metric or sample name on the page, else (None, None)."""
    if name in page:
        return name, page[name]["type"]
    for s in HISTOGRAM_SUFFIXES:
        base = name[: -len(s)]
        if name.endswith(s) and base in page and page[base]["type"] in ("histogram", "summary"):
            if s == "_bucket" and page[base]["type"] != "histogram":
                return None, None
            return base, page[base]["type"]
    return None, None


def main():
    global SOURCE, BUILD, SHARED
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--source", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--shared", required=True)
    args, rest = ap.parse_known_args()
    SOURCE, BUILD = os.path.abspath(args.source), os.path.abspath(args.build)
    SHARED = os.path.abspath(os.environ.get("HEADROOM_SHARED_DIR") or args.shared)
    unittest.main(argv=[sys.argv[0], "-v"] + rest)


if __name__ == "__main__":
    main()
