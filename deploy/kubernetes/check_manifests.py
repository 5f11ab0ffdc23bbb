#!/usr/bin/env python3
"""The checks of check.sh on the rendered kustomizations (see README.md, *The check*).

1. Schemas: every object against the Kubernetes JSON schemas (kubernetes-validate, strict:
   unknown fields fail) of the oldest and newest versions in KUBERNETES_VERSIONS; the
   ServiceMonitor with the prometheus-operator models (servicemonitor-check.mjs).
2. Shape: the objects the deployment needs are there and refer to each other (selectors,
   named ports, the ConfigMap, the Secret), and the pods are locked down as the image allows.
3. Settings: `orderly config check`, run on the environment each workload's container gets,
   accepts it, and every setting it lists comes from the ConfigMap, the Secret, or the
   ConfigMap's `orderly/unset-settings` list; a setting it redacts comes from the Secret.
4. Drain: terminationGracePeriodSeconds >= preStop sleep + SHUTDOWN_TIMEOUT + GRACE_MARGIN.

Then it breaks a copy of the production rendering in the ways these checks exist for and
expects each to be caught (the checks' own tests).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

# The oldest Kubernetes the manifests are for, and the newest whose schemas are bundled.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
# Seconds kept, past the preStop sleep and SHUTDOWN_TIMEOUT, for what `serve` does after the
# drain (stopping the /metrics listener and the background jobs, flushing buffered spans).
GRACE_MARGIN = 5
# Variables read outside the settings structure, so `config check` does not list them.
READ_OUTSIDE_SETTINGS = {"RUST_LOG"}  # tracing's filter
READ_OUTSIDE_PREFIXES = ("OTEL_",)  # the OpenTelemetry SDK's own (OTEL_TRACES_SAMPLER, ...)
UNSET_ANNOTATION = "orderly/unset-settings"
NOT_SET = "<not set>"
REQUIRED_KINDS = {
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("batch/v1", "Job"),
    ("v1", "ConfigMap"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("v1", "ServiceAccount"),
}


class Checker:
    def __init__(self, orderly: Path, node_tools: Path, secret: dict, image_uid: int) -> None:
        self.orderly = orderly
        self.node_tools = node_tools
        self.secret = secret
        self.image_uid = image_uid
        self.failures: list[str] = []
        self.counts: dict[str, int] = {}
        self.listed: set[str] = set()
        self.drains: list[str] = []

    def fail(self, where: str, message: str) -> None:
        self.failures.append(f"{where}: {message}")

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    # --- 1. schemas -------------------------------------------------------------------------

    def schemas(self, label: str, docs: list[dict]) -> None:
        monitors = []
        for doc in docs:
            name = f"{label}: {kind_name(doc)}"
            if doc.get("apiVersion", "").startswith("monitoring.coreos.com/"):
                if doc.get("kind") != "ServiceMonitor":
                    self.fail(name, "no schema here for this prometheus-operator kind")
                monitors.append({"name": name, "object": doc})
                continue
            for version in KUBERNETES_VERSIONS:
                for problem in kubernetes_problems(doc, version):
                    self.fail(name, problem)
                self.count("schema validations (object x Kubernetes version)")
        missing = [m["object"] for m in monitors if key_of(m["object"]) not in MONITOR_PROBLEMS]
        if missing:
            check_monitors(self.node_tools, missing)
        for monitor in monitors:
            for problem in MONITOR_PROBLEMS[key_of(monitor["object"])]:
                self.fail(monitor["name"], problem)
            self.count("ServiceMonitor validations (CRD schema + unknown fields)")

    # --- 2. shape ---------------------------------------------------------------------------

    def shape(self, label: str, docs: list[dict]) -> None:
        present = {(d.get("apiVersion"), d.get("kind")) for d in docs}
        for api_version, kind in sorted(REQUIRED_KINDS - present):
            self.fail(label, f"no {kind} ({api_version})")
        deployment = one(docs, "Deployment")
        job = one(docs, "Job")
        if deployment is None or job is None:
            self.fail(label, "needs exactly one Deployment and one migration Job")
            return
        workloads = [deployment, job]
        for workload in workloads:
            self.locked_down(label, workload)
        self.probes(label, deployment)
        args = job["spec"]["template"]["spec"]["containers"][0].get("args", [])
        if args != ["migrate", "up"]:
            self.fail(f"{label}: {kind_name(job)}", f"runs {args}, not `orderly migrate up`")
        self.references(label, docs, deployment, workloads)

    def locked_down(self, label: str, workload: dict) -> None:
        where = f"{label}: {kind_name(workload)}"
        pod = workload["spec"]["template"]["spec"]
        pod_context = pod.get("securityContext", {})
        if pod.get("automountServiceAccountToken") is not False:
            self.fail(where, "mounts a service account token it never uses")
        for container in pod["containers"]:
            context = {**pod_context, **container.get("securityContext", {})}
            here = f"{where} container {container['name']}"
            expected = {
                "runAsNonRoot": True,
                "runAsUser": self.image_uid,
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
            }
            for key, value in expected.items():
                if context.get(key) != value:
                    self.fail(here, f"securityContext.{key} is {context.get(key)!r}, not {value!r}")
            if "ALL" not in context.get("capabilities", {}).get("drop", []):
                self.fail(here, "does not drop ALL capabilities")
            if context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                self.fail(here, "no RuntimeDefault seccomp profile")
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(bound, {}):
                        self.fail(here, f"no {bound}.{resource}")
            mounted = {m["mountPath"] for m in container.get("volumeMounts", [])}
            if "/tmp" not in mounted:
                self.fail(here, "no writable /tmp under the read-only root filesystem")
            self.count("containers locked down (non-root, read-only root, no capabilities)")

    def probes(self, label: str, deployment: dict) -> None:
        where = f"{label}: {kind_name(deployment)}"
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for probe, path in (("startupProbe", "/health"), ("livenessProbe", "/health"), ("readinessProbe", "/ready")):
            got = container.get(probe, {}).get("httpGet", {}).get("path")
            if got != path:
                self.fail(where, f"{probe} asks {got!r}, not {path}")
            else:
                self.count("probes on /health and /ready")

    def references(self, label: str, docs: list[dict], deployment: dict, workloads: list[dict]) -> None:
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        port_names = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        services = [d for d in docs if d["kind"] == "Service"]
        for service in services:
            where = f"{label}: {kind_name(service)}"
            if not selects(service["spec"].get("selector", {}), pod_labels):
                self.fail(where, "selects no API pod")
            for port in service["spec"]["ports"]:
                if isinstance(port["targetPort"], str) and port["targetPort"] not in port_names:
                    self.fail(where, f"targetPort {port['targetPort']} is no container port")
            self.count("references resolved")
        for monitor in [d for d in docs if d["kind"] == "ServiceMonitor"]:
            where = f"{label}: {kind_name(monitor)}"
            chosen = [s for s in services if selects(monitor["spec"]["selector"].get("matchLabels", {}), s["metadata"].get("labels", {}))]
            if not chosen:
                self.fail(where, "selects no Service")
            for endpoint in monitor["spec"]["endpoints"]:
                if not any(endpoint.get("port") in {p.get("name") for p in s["spec"]["ports"]} for s in chosen):
                    self.fail(where, f"port {endpoint.get('port')} is on no selected Service")
            self.count("references resolved")
        for hpa in [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]:
            if hpa["spec"]["scaleTargetRef"]["name"] != deployment["metadata"]["name"]:
                self.fail(f"{label}: {kind_name(hpa)}", "scales no Deployment of this rendering")
            self.count("references resolved")
        for pdb in [d for d in docs if d["kind"] == "PodDisruptionBudget"]:
            if not selects(pdb["spec"]["selector"].get("matchLabels", {}), pod_labels):
                self.fail(f"{label}: {kind_name(pdb)}", "covers no API pod")
            self.count("references resolved")
        workload_pods = [w["spec"]["template"]["metadata"]["labels"] for w in workloads]
        for policy in [d for d in docs if d["kind"] == "NetworkPolicy"]:
            where = f"{label}: {kind_name(policy)}"
            if not any(selects(policy["spec"]["podSelector"].get("matchLabels", {}), p) for p in workload_pods):
                self.fail(where, "selects no pod of this rendering")
            for rule in policy["spec"].get("ingress", []):
                for port in rule.get("ports", []):
                    if isinstance(port.get("port"), str) and port["port"] not in port_names:
                        self.fail(where, f"named port {port['port']} is no container port")
            self.count("references resolved")
        config_maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
        accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
        for workload in workloads:
            where = f"{label}: {kind_name(workload)}"
            pod = workload["spec"]["template"]["spec"]
            if pod.get("serviceAccountName") not in accounts:
                self.fail(where, f"service account {pod.get('serviceAccountName')} is not in the rendering")
            for ref in env_sources(pod["containers"][0])["config_maps"]:
                if ref not in config_maps:
                    self.fail(where, f"ConfigMap {ref} is not in the rendering")
            for name, _key, _optional in env_sources(pod["containers"][0])["secret_keys"]:
                if name != self.secret["metadata"]["name"]:
                    self.fail(where, f"reads Secret {name}, not {self.secret['metadata']['name']}")
            self.count("references resolved")
        referenced = {key for w in workloads for _, key, _ in env_sources(w["spec"]["template"]["spec"]["containers"][0])["secret_keys"]}
        example = set(self.secret.get("stringData", {}))
        for key in sorted(referenced - example):
            self.fail(label, f"secret.example.yaml lacks {key}, which the manifests read")
        for key in sorted(example - referenced):
            self.fail(label, f"secret.example.yaml has {key}, which no manifest reads")
        # The Job must see the settings the API sees, or the two check different configurations.
        names = [sorted(e["name"] for e in w["spec"]["template"]["spec"]["containers"][0].get("env", [])) for w in workloads]
        if names[0] != names[1]:
            self.fail(label, f"the Deployment's env {names[0]} and the Job's {names[1]} differ")

    # --- 3. settings and 4. drain ------------------------------------------------------------

    def settings(self, label: str, docs: list[dict]) -> dict[str, dict[str, str]]:
        """Runs `orderly config check` for each workload; returns what it printed, per workload."""
        config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
        printed_by_workload = {}
        for workload in [d for d in docs if d["kind"] in ("Deployment", "Job")]:
            where = f"{label}: {kind_name(workload)}"
            container = workload["spec"]["template"]["spec"]["containers"][0]
            env, sources, unset = container_env(container, config_maps, self.secret, lambda m, w=where: self.fail(w, m))
            run = subprocess.run(
                [str(self.orderly), "config", "check"],
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
                cwd=tempfile.gettempdir(),  # no orderly.toml or .env of the work tree
                capture_output=True,
                text=True,
                check=False,
            )
            if run.returncode != 0:
                self.fail(where, f"`orderly config check` refuses its environment:\n{run.stderr.strip()}")
                continue
            printed = dict(
                line.split("=", 1) for line in run.stdout.splitlines() if "=" in line and not line.startswith("#")
            )
            if "SHUTDOWN_TIMEOUT" not in printed or "PORT" not in printed:
                self.fail(where, f"`{self.orderly} config check` did not list the settings (printed {run.stdout[:200]!r})")
                continue
            printed_by_workload[kind_name(workload)] = printed
            self.count("`orderly config check` runs on a rendered environment")
            for variable, value in printed.items():
                source = sources.get(variable)
                if source is None and variable in unset:
                    if value != NOT_SET:
                        self.fail(where, f"{variable} is listed in {UNSET_ANNOTATION} but is {value!r}")
                    continue
                if source is None:
                    self.fail(where, f"setting {variable} is in neither the ConfigMap, the Secret nor {UNSET_ANNOTATION}")
                    continue
                redacted = value == "<redacted>" or "***" in value
                if redacted and source != "secret":
                    self.fail(where, f"{variable} is a secret (`config check` redacts it) but comes from the {source}")
            self.count("settings covered (setting x workload x rendering)", len(printed))
            self.listed |= set(printed)
            for variable in sorted(set(sources) | unset):
                if variable in printed:
                    continue
                if variable in READ_OUTSIDE_SETTINGS or variable.startswith(READ_OUTSIDE_PREFIXES):
                    continue
                self.fail(where, f"{variable} is set but `orderly config check` knows no such setting (a typo?)")
            for variable in sorted(unset & set(sources)):
                self.fail(where, f"{variable} is both set and listed in {UNSET_ANNOTATION}")
        return printed_by_workload

    def drain(self, label: str, docs: list[dict], printed: dict[str, dict[str, str]]) -> None:
        deployment = one(docs, "Deployment")
        if deployment is None or kind_name(deployment) not in printed:
            return
        where = f"{label}: {kind_name(deployment)}"
        pod = deployment["spec"]["template"]["spec"]
        grace = pod.get("terminationGracePeriodSeconds", 30)
        pre_stop = pre_stop_seconds(pod["containers"][0])
        shutdown = int(printed[kind_name(deployment)]["SHUTDOWN_TIMEOUT"])
        needed = pre_stop + shutdown + GRACE_MARGIN
        if grace < needed:
            self.fail(where, f"terminationGracePeriodSeconds {grace} < preStop {pre_stop} + SHUTDOWN_TIMEOUT {shutdown} + {GRACE_MARGIN}")
        else:
            self.drains.append(f"{label}: terminationGracePeriodSeconds {grace} >= preStop {pre_stop} + SHUTDOWN_TIMEOUT {shutdown} + margin {GRACE_MARGIN}")
        # The ports the settings bind are the ports the manifests name.
        container = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        settings = printed[kind_name(deployment)]
        if ports.get("http") != int(settings["PORT"]):
            self.fail(where, f"container port http {ports.get('http')} is not PORT {settings['PORT']}")
        metrics_addr = settings.get("METRICS_ADDR", NOT_SET)
        if metrics_addr == NOT_SET or ports.get("metrics") != int(metrics_addr.rsplit(":", 1)[1]):
            self.fail(where, f"container port metrics {ports.get('metrics')} is not METRICS_ADDR {metrics_addr}")

    def check(self, label: str, docs: list[dict]) -> None:
        self.count("renderings")
        self.count("objects", len(docs))
        self.schemas(label, docs)
        self.shape(label, docs)
        printed = self.settings(label, docs)
        self.drain(label, docs, printed)


# --- helpers ---------------------------------------------------------------------------------

# Results by object: the self-tests check many copies of one rendering, mostly unchanged.
SCHEMA_PROBLEMS: dict[tuple[str, str], list[str]] = {}
MONITOR_PROBLEMS: dict[str, list[str]] = {}
# kubernetes-validate reads its schema files on every call; they never change during a run.
if hasattr(kubernetes_validate.utils, "schema_contents"):
    kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(
        kubernetes_validate.utils.schema_contents
    )


def key_of(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True)


def kubernetes_problems(doc: dict, version: str) -> list[str]:
    key = (key_of(doc), version)
    if key not in SCHEMA_PROBLEMS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            SCHEMA_PROBLEMS[key] = []
        except ValidationError as error:
            path = "/".join(str(p) for p in error.path)
            SCHEMA_PROBLEMS[key] = [f"Kubernetes {version} schema: {path}: {error.message}"]
        except SchemaNotFoundError:
            SCHEMA_PROBLEMS[key] = [f"no Kubernetes {version} schema for {doc.get('apiVersion')}"]
    return SCHEMA_PROBLEMS[key]


def check_monitors(node_tools: Path, objects: list[dict]) -> None:
    """Validates ServiceMonitors in one run of servicemonitor-check.mjs (tsc takes seconds)."""
    unique = {key_of(o): o for o in objects}
    items = [{"name": str(i), "object": o} for i, o in enumerate(unique.values())]
    script = Path(__file__).with_name("servicemonitor-check.mjs")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(items, handle)
    try:
        run = subprocess.run(
            ["node", str(script), str(node_tools), handle.name],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.unlink(handle.name)
    if run.returncode != 0:
        problems = {item["name"]: [f"servicemonitor-check.mjs failed: {run.stderr.strip()}"] for item in items}
    else:
        problems = json.loads(run.stdout)
    for item in items:
        MONITOR_PROBLEMS[key_of(item["object"])] = problems.get(item["name"], ["not checked"])


def kind_name(doc: dict) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def one(docs: list[dict], kind: str) -> dict | None:
    found = [d for d in docs if d.get("kind") == kind]
    return found[0] if len(found) == 1 else None


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def env_sources(container: dict) -> dict:
    return {
        "config_maps": [e["configMapRef"]["name"] for e in container.get("envFrom", []) if "configMapRef" in e],
        "secret_keys": [
            (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"], e["valueFrom"]["secretKeyRef"].get("optional", False))
            for e in container.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        ],
    }


def container_env(container: dict, config_maps: dict, secret: dict, fail) -> tuple[dict, dict, set]:
    """The environment the kubelet would give the container (the example Secret's values for
    the secrets), where each variable comes from, and the settings its ConfigMaps leave unset."""
    env: dict[str, str] = {}
    sources: dict[str, str] = {}
    unset: set[str] = set()
    for entry in container.get("envFrom", []):
        ref = entry.get("configMapRef")
        if ref is None:
            fail(f"envFrom {entry} is not a ConfigMap (Secrets are read key by key)")
            continue
        config_map = config_maps.get(ref["name"], {})
        for key, value in config_map.get("data", {}).items():
            env[key], sources[key] = value, "ConfigMap"
        listed = config_map.get("metadata", {}).get("annotations", {}).get(UNSET_ANNOTATION, "")
        unset |= {name.strip() for name in listed.split(",") if name.strip()}
    for entry in container.get("env", []):
        name, source = entry["name"], entry.get("valueFrom", {})
        if "value" in entry:
            env[name], sources[name] = entry["value"], "env"
        elif "secretKeyRef" in source:
            key = source["secretKeyRef"]["key"]
            sources[name] = "secret"
            if key in secret.get("stringData", {}):
                env[name] = secret["stringData"][key]
            elif not source["secretKeyRef"].get("optional", False):
                fail(f"required secret key {key} is not in secret.example.yaml")
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            value = config_maps.get(ref["name"], {}).get("data", {}).get(ref["key"])
            sources[name] = "ConfigMap"
            if value is not None:
                env[name] = value
        else:
            fail(f"env {name} has a source this check does not read")
    return env, sources, unset


def pre_stop_seconds(container: dict) -> int:
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre_stop:
        return int(pre_stop["sleep"]["seconds"])
    command = pre_stop.get("exec", {}).get("command", [])
    if len(command) == 2 and command[0] == "sleep":
        return int(command[1])
    return 0


def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# --- the checks' own tests ---------------------------------------------------------------------


def breakages(docs: list[dict]) -> list[tuple[str, str, list[dict]]]:
    """Copies of a rendering, each broken in one way, with a piece of the failure expected."""

    def broken(change) -> list[dict]:
        copied = copy.deepcopy(docs)
        change(copied)
        return copied

    def config_map(d):
        return next(x for x in d if x["kind"] == "ConfigMap")

    def deployment(d):
        return next(x for x in d if x["kind"] == "Deployment")

    def monitor(d):
        return next(x for x in d if x["kind"] == "ServiceMonitor")

    def drop_setting(d):
        config_map(d)["data"].pop("KEEP_ALIVE", None)

    def secret_in_config_map(d):
        config_map(d)["data"]["JWT_SECRET"] = "a-secret-that-is-long-enough-0123456789"
        for workload in [x for x in d if x["kind"] in ("Deployment", "Job")]:
            container = workload["spec"]["template"]["spec"]["containers"][0]
            container["env"] = [e for e in container["env"] if e["name"] != "JWT_SECRET"]

    def short_grace(d):
        deployment(d)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30

    def typo(d):
        deployment(d)["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}

    def invalid_value(d):
        config_map(d)["data"]["RATE_LIMIT_ORDERS"] = "lots"

    def unknown_variable(d):
        config_map(d)["data"]["KEEP_ALIVE_SECONDS"] = "5"

    def monitor_typo(d):
        monitor(d)["spec"]["endpoints"][0]["intervall"] = "15s"

    def monitor_bad_interval(d):
        monitor(d)["spec"]["endpoints"][0]["interval"] = "15 seconds"

    def root(d):
        deployment(d)["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0

    return [
        ("a setting missing from the ConfigMap", "setting KEEP_ALIVE is in neither", broken(drop_setting)),
        ("a secret in the ConfigMap", "JWT_SECRET is a secret", broken(secret_in_config_map)),
        ("a grace period shorter than the drain", "terminationGracePeriodSeconds 30 <", broken(short_grace)),
        ("a misspelt field", "readinesProbe", broken(typo)),
        ("a value the server refuses", "RATE_LIMIT_ORDERS", broken(invalid_value)),
        ("a variable the server does not read", "KEEP_ALIVE_SECONDS", broken(unknown_variable)),
        ("a misspelt ServiceMonitor field", "intervall", broken(monitor_typo)),
        ("an invalid ServiceMonitor interval", "interval must match pattern", broken(monitor_bad_interval)),
        ("a pod running as root", "runAsUser is 0", broken(root)),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rendered", action="append", required=True, metavar="LABEL=FILE")
    parser.add_argument("--orderly", required=True, type=Path)
    parser.add_argument("--node-tools", required=True, type=Path)
    parser.add_argument("--secret-example", required=True, type=Path)
    parser.add_argument("--dockerfile", required=True, type=Path)
    args = parser.parse_args()

    secret = load(args.secret_example)[0]
    uid = re.search(r"--uid (\d+)", args.dockerfile.read_text())
    if uid is None:
        print("check: the Dockerfile makes no user with --uid: cannot tell the image's user", file=sys.stderr)
        return 1
    checker = Checker(args.orderly, args.node_tools, secret, int(uid.group(1)))
    checker.schemas("secret.example.yaml", [secret])

    renderings = {}
    for item in args.rendered:
        label, path = item.split("=", 1)
        renderings[label] = load(Path(path))
    # The checks' own tests break copies of the last rendering (production).
    broken_label, broken_from = list(renderings.items())[-1]
    cases = breakages(broken_from)
    # Every ServiceMonitor, the broken ones included, in one node run.
    all_docs = [d for ds in renderings.values() for d in ds] + [d for _, _, ds in cases for d in ds]
    check_monitors(args.node_tools, [d for d in all_docs if d.get("kind") == "ServiceMonitor"])

    for label, docs in renderings.items():
        checker.check(label, docs)

    caught = 0
    for description, expected, broken_docs in cases:
        probe = Checker(args.orderly, args.node_tools, secret, int(uid.group(1)))
        probe.check(f"{broken_label} with {description}", broken_docs)
        if any(expected in failure for failure in probe.failures):
            caught += 1
        else:
            checker.fail("self-test", f"{description} was not caught (failures: {probe.failures})")

    for line in checker.drains:
        print(f"drain: {line}")
    print(f"{len(checker.listed):5d}  settings `orderly config check` lists, each found in the manifests")
    for what, n in checker.counts.items():
        print(f"{n:5d}  {what}")
    print(f"{caught:5d}  deliberate breakages caught (of {len(cases)})")
    if checker.failures:
        print(f"\n{len(checker.failures)} problem(s):", file=sys.stderr)
        for failure in checker.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
