"""deploy/k8s, read statically: every manifest parses, kustomize renders each overlay
(scripts/kustomize.sh builds kustomize once from the Go module proxy), and what it renders
runs every service role safely, reachable only where it must be."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared import topics
from tests.unit.deploy import support

# the first test to render pays for building kustomize once (a minute or two, fresh machine)
pytestmark = pytest.mark.timeout(900)

OVERLAYS = support.overlays()
WORKLOADS = ("Deployment", "StatefulSet", "Job")
KUBE_DNS = ({"k8s-app": "kube-dns"}, {"kubernetes.io/metadata.name": "kube-system"})
PROBE_SCRIPT = "/app/deploy/docker/probe.py"


# --- reading what kustomize renders --------------------------------------------------------

class Rendered:
    def __init__(self, overlay: Path) -> None:
        self.overlay = overlay
        self.objects = support.kustomize_build(overlay)
        self.by_key = {(o["kind"], o["metadata"]["name"]): o for o in self.objects}
        namespaces = [o for o in self.objects if o["kind"] == "Namespace"]
        assert len(namespaces) == 1, "each overlay renders its one namespace"
        self.namespace = namespaces[0]["metadata"]["name"]
        self.ns_labels = {"kubernetes.io/metadata.name": self.namespace,
                          **namespaces[0]["metadata"].get("labels", {})}

    def get(self, kind: str, name: str) -> dict[str, Any]:
        assert (kind, name) in self.by_key, f"{self.overlay.name}: no {kind} {name}"
        return self.by_key[(kind, name)]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def pod_labels(self, kind: str, name: str) -> dict[str, str]:
        return self.get(kind, name)["spec"]["template"]["metadata"]["labels"]

    def container(self, kind: str, name: str) -> dict[str, Any]:
        containers = self.get(kind, name)["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1
        return containers[0]

    def env_names(self, container: dict[str, Any]) -> set[str]:
        names = {e["name"] for e in container.get("env", [])}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                cm = self.get("ConfigMap", source["configMapRef"]["name"])
                names |= set(cm.get("data", {}))
            if "secretRef" in source:
                secret = self.get("Secret", source["secretRef"]["name"])
                names |= set(secret.get("data", {})) | set(secret.get("stringData", {}))
        return names

    def env_value(self, container: dict[str, Any], name: str) -> str:
        for e in container.get("env", []):
            if e["name"] == name and "value" in e:
                return str(e["value"])
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                data = self.get("ConfigMap", source["configMapRef"]["name"]).get("data", {})
                if name in data:
                    return str(data[name])
        raise AssertionError(f"{name} has no plain value in {container['name']}")


_CACHE: dict[Path, Rendered] = {}


def rendered(overlay: Path) -> Rendered:
    if overlay not in _CACHE:
        _CACHE[overlay] = Rendered(overlay)
    return _CACHE[overlay]


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def workloads(r: Rendered) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in r.objects:
        if o["kind"] in WORKLOADS:
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]


# --- network policy semantics (enough of them to ask "may A reach B on port P") ---------

def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {"In": key in labels and labels[key] in values,
              "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def _peer_matches(peer: dict[str, Any], labels: dict[str, str], ns_labels: dict[str, str],
                  same_ns: bool) -> bool:
    if "ipBlock" in peer:
        return True  # an address range: anything may be behind it
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], ns_labels):
            return False
    elif not same_ns:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], labels)


def _policy_types(policy: dict[str, Any]) -> list[str]:
    spec = policy["spec"]
    return spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))


def allowed(r: Rendered, direction: str, pod: dict[str, str], peer: dict[str, str],
            port: int, peer_ns: dict[str, str] | None = None) -> bool:
    """May `pod` send to (Egress) or receive from (Ingress) `peer` on `port`?"""
    same_ns = peer_ns is None
    peer_ns = peer_ns or r.ns_labels
    policies = [p for p in r.of_kind("NetworkPolicy")
                if selects(p["spec"]["podSelector"], pod) and direction in _policy_types(p)]
    if not policies:
        return True  # not isolated
    key = "egress" if direction == "Egress" else "ingress"
    peers_key = "to" if direction == "Egress" else "from"
    for policy in policies:
        for rule in policy["spec"].get(key) or []:
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port for p in ports):
                continue
            peers = rule.get(peers_key)
            if not peers or any(_peer_matches(p, peer, peer_ns, same_ns) for p in peers):
                return True
    return False


# --- quantities ----------------------------------------------------------------------------

_UNITS = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(value: object) -> float:
    match = re.fullmatch(r"([0-9.]+)(m|k|M|G|Ki|Mi|Gi)?", str(value))
    assert match, f"not a quantity: {value}"
    return float(match.group(1)) * _UNITS[match.group(2) or ""]


def test_quantities_and_selectors_are_read_right() -> None:
    assert quantity("500m") == 0.5 and quantity(2) == 2 and quantity("1Gi") == 2**30
    assert selects({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"})
    assert not selects({"matchLabels": {"a": "1"}}, {"a": "2"})
    assert selects({}, {"anything": "x"})
    assert selects({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]},
                   {"a": "1"})
    assert not selects({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {})


# --- the files themselves --------------------------------------------------------------------

def test_every_manifest_parses_and_is_used() -> None:
    files = sorted(support.K8S.rglob("*.yaml"))
    assert files
    referenced: set[Path] = set()
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, f"{path} is empty"
        for doc in docs:
            assert isinstance(doc, dict) and "kind" in doc and "apiVersion" in doc, path
        if path.name == "kustomization.yaml":
            k = docs[0]
            entries = list(k.get("resources", [])) + list(k.get("components", []))
            entries += [p["path"] for p in k.get("patches", []) if "path" in p]
            for entry in entries:
                target = (path.parent / entry).resolve()
                assert target.exists(), f"{path}: {entry} does not exist"
                referenced.add(target / "kustomization.yaml" if target.is_dir() else target)
    orphans = [str(p.relative_to(support.ROOT)) for p in files
               if p.name != "kustomization.yaml" and p.resolve() not in referenced]
    assert not orphans, f"manifests no kustomization uses: {orphans}"
    assert {p.name for p in OVERLAYS} >= {"dev", "production"}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=_ids(OVERLAYS))
def test_overlay_renders_into_its_own_namespace(overlay: Path) -> None:
    r = rendered(overlay)
    for o in r.objects:
        if o["kind"] not in ("Namespace",):
            assert o["metadata"].get("namespace") == r.namespace, (o["kind"], o["metadata"])


# --- every service, every role ---------------------------------------------------------------

def _service_cases(keep: Any = lambda _s: True) -> list[Any]:
    return [pytest.param(o, s, id=f"{o.name}-{s}") for o in OVERLAYS for s in support.services()
            if keep(s)]


def _with_worker(service: str) -> bool:
    return "worker" in support.roles(service)


@pytest.mark.parametrize(("overlay", "service"), _service_cases())
def test_web_deployment_runs_the_service_on_its_port_with_probes(overlay: Path,
                                                                 service: str) -> None:
    r = rendered(overlay)
    port = support.port(service)
    c = r.container("Deployment", f"{service}-web")
    assert c["command"] == [support.ENTRYPOINT]
    assert c["args"] == support.web_command(service)
    ports = {p.get("name"): p["containerPort"] for p in c["ports"]}
    assert list(ports.values()) == [port]
    assert r.env_value(c, "BIND") == f"0.0.0.0:{port}"

    def probe_port(probe: dict[str, Any]) -> int:
        p = probe["httpGet"]["port"]
        return ports[p] if isinstance(p, str) else p

    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert probe_port(c["livenessProbe"]) == probe_port(c["readinessProbe"]) == port
    # gunicorn finishes its requests before the kubelet kills the pod
    pod = r.get("Deployment", f"{service}-web")["spec"]["template"]["spec"]
    graceful = int(r.env_value(c, "WEB_GRACEFUL_TIMEOUT"))
    pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > graceful + pre_stop


@pytest.mark.parametrize(("overlay", "service"), _service_cases(_with_worker))
def test_worker_deployment_runs_the_worker_with_in_container_probes(overlay: Path,
                                                                   service: str) -> None:
    r = rendered(overlay)
    c = r.container("Deployment", f"{service}-worker")
    assert c["command"] == [support.ENTRYPOINT]
    assert c["args"] == support.worker_command(service)
    metrics_port = r.env_value(c, "WORKER_METRICS_PORT")
    # the only port a worker opens is its metrics endpoint, named for Prometheus' pod discovery
    assert c["ports"] == [{"name": "metrics", "containerPort": int(metrics_port)}]
    assert r.env_value(c, "WORKER_METRICS_ADDR") == "0.0.0.0"
    for probe in ("livenessProbe", "readinessProbe"):
        cmd = c[probe]["exec"]["command"]
        assert PROBE_SCRIPT in cmd and f"http://127.0.0.1:{metrics_port}/metrics" in cmd


@pytest.mark.parametrize(("overlay", "service"), _service_cases())
def test_web_role_has_service_autoscaler_and_disruption_budgets(overlay: Path,
                                                                service: str) -> None:
    r = rendered(overlay)
    web = r.pod_labels("Deployment", f"{service}-web")
    worker = r.pod_labels("Deployment", f"{service}-worker") if _with_worker(service) else None
    svc = r.get("Service", f"{service}-web")["spec"]
    assert [p["port"] for p in svc["ports"]] == [support.port(service)]
    assert selects({"matchLabels": svc["selector"]}, web)
    assert worker is None or not selects({"matchLabels": svc["selector"]}, worker)
    assert "replicas" not in r.get("Deployment", f"{service}-web")["spec"], \
        "the HPA owns the web role's replica count; an apply must not reset it"
    hpa = r.get("HorizontalPodAutoscaler", f"{service}-web")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": f"{service}-web"}
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"] and hpa["metrics"]
    pdbs = [p["spec"]["selector"] for p in r.of_kind("PodDisruptionBudget")]
    assert any(selects(s, web) for s in pdbs)
    assert worker is None or any(selects(s, worker) for s in pdbs)


@pytest.mark.parametrize(("overlay", "service"), _service_cases(support.has_database))
def test_migration_job_migrates_the_services_own_database(overlay: Path, service: str) -> None:
    r = rendered(overlay)
    job = r.container("Job", f"{service}-migrate")
    assert job["args"] == ["python", "-m", "shared.migrations", "upgrade", service]
    web = r.container("Deployment", f"{service}-web")

    def db_ref(c: dict[str, Any]) -> dict[str, Any]:
        return next(e["valueFrom"] for e in c["env"] if e["name"] == "DATABASE_URL")

    assert db_ref(job) == db_ref(web)
    assert r.get("Job", f"{service}-migrate")["spec"]["template"]["spec"]["restartPolicy"] \
        in ("OnFailure", "Never")


@pytest.mark.parametrize(("overlay", "service"), _service_cases())
def test_every_variable_the_code_reads_is_set(overlay: Path, service: str) -> None:
    r = rendered(overlay)
    for role in support.roles(service):
        c = r.container("Deployment", f"{service}-{role}")
        gaps = support.missing(support.required_env(service, role), r.env_names(c))
        assert not gaps, f"{overlay.name}: {service}-{role} lacks {gaps}"
    if service in support.API_CLIENTS:  # it reads the other services' APIs (their Services)
        c = r.container("Deployment", f"{service}-web")
        for other in support.API_READS[service]:
            url = r.env_value(c, f"{other.upper()}_URL")
            assert url == f"http://{other}-web:{support.port(other)}"
            r.get("Service", f"{other}-web")


@pytest.mark.parametrize("overlay", OVERLAYS, ids=_ids(OVERLAYS))
def test_secrets_are_rendered_in_dev_and_documented_for_production(overlay: Path) -> None:
    r = rendered(overlay)
    refs = {(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for _, pod in workloads(r) for c in pod["containers"] for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})}
    assert ("paincare-jwt", "JWT_SECRET") in refs
    if overlay.name == "production":
        assert not r.of_kind("Secret"), "production Secrets never come from git"
        readme = (support.ROOT / "deploy" / "README.md").read_text()
        undocumented = sorted(f"{n}/{k}" for n, k in refs if n not in readme or k not in readme)
        assert not undocumented, f"deploy/README.md must list {undocumented}"
    else:
        for name, key in refs:
            secret = r.get("Secret", name)
            assert key in {**secret.get("data", {}), **secret.get("stringData", {})}


# --- every workload ----------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS, ids=_ids(OVERLAYS))
def test_every_workload_is_non_root_with_limits(overlay: Path) -> None:
    r = rendered(overlay)
    seen = 0
    for name, pod in workloads(r):
        seen += 1
        pod_sc = pod.get("securityContext", {})
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = {**pod_sc, **c.get("securityContext", {})}
            where = f"{overlay.name} {name}/{c['name']}"
            assert sc.get("runAsNonRoot") is True, where
            assert sc.get("runAsUser", 1) != 0, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), where
            res = c.get("resources", {})
            for kind in ("cpu", "memory"):
                req, lim = res.get("requests", {}).get(kind), res.get("limits", {}).get(kind)
                assert req is not None and lim is not None, f"{where}: {kind} request/limit"
                assert quantity(req) <= quantity(lim), f"{where}: {kind} request > limit"
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
    assert seen >= sum(len(support.roles(s)) + support.has_database(s) * 2
                       for s in support.services())


@pytest.mark.parametrize("overlay", OVERLAYS, ids=_ids(OVERLAYS))
def test_every_deployment_has_liveness_and_readiness_probes(overlay: Path) -> None:
    r = rendered(overlay)
    for d in r.of_kind("Deployment"):
        for c in d["spec"]["template"]["spec"]["containers"]:
            assert "livenessProbe" in c and "readinessProbe" in c, d["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=_ids(OVERLAYS))
def test_one_image_for_every_paincare_container(overlay: Path) -> None:
    r = rendered(overlay)
    images = {c["image"] for _, pod in workloads(r) for c in pod["containers"]
              if c.get("command") == [support.ENTRYPOINT]}
    assert len(images) == 1
    image = images.pop()
    if overlay.name == "production":
        assert "/" in image and not image.endswith((":latest", ":dev")) and ":" in image


# --- the network ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("overlay", "service"), _service_cases())
def test_each_service_reaches_only_kafka_and_its_own_database(overlay: Path,
                                                              service: str) -> None:
    r = rendered(overlay)
    kafka = r.of_kind("Kafka")[0]["metadata"]["name"]
    broker = {"strimzi.io/cluster": kafka, "strimzi.io/kind": "Kafka",
              "strimzi.io/broker-role": "true"}
    own_db = r.pod_labels("StatefulSet", f"{service}-postgres") \
        if support.has_database(service) else None
    others = [s for s in support.services() if s != service]
    pods = [r.pod_labels("Deployment", f"{service}-{role}") for role in support.roles(service)]
    if own_db is not None:
        pods.append(r.pod_labels("Job", f"{service}-migrate"))
    for pod in pods:
        # a service without a database (the console) needs no broker either
        assert allowed(r, "Egress", pod, broker, 9092) == (own_db is not None)
        if own_db is not None:
            assert allowed(r, "Egress", pod, own_db, 5432)
        assert allowed(r, "Egress", pod, KUBE_DNS[0], 53, KUBE_DNS[1])
        assert not allowed(r, "Egress", pod, {"app": "anything-else"}, 8080)
        assert not allowed(r, "Egress", pod, {}, 5432, {"kubernetes.io/metadata.name": "x"})
        for other in others:
            if support.has_database(other):
                other_db = r.pod_labels("StatefulSet", f"{other}-postgres")
                assert not allowed(r, "Egress", pod, other_db, 5432), f"{service} -> {other} db"
            if _with_worker(other):
                worker = r.pod_labels("Deployment", f"{other}-worker")
                assert not allowed(r, "Egress", pod, worker, support.port(other))
            web_ok = allowed(r, "Egress", pod, r.pod_labels("Deployment", f"{other}-web"),
                             support.port(other))
            expected = other in support.API_READS.get(service, ())
            assert web_ok == expected, f"{service} -> {other}-web"
    if own_db is None:
        return
    # and only the service itself gets into its database
    for other in others:
        for role in support.roles(other):
            intruder = r.pod_labels("Deployment", f"{other}-{role}")
            assert not allowed(r, "Ingress", own_db, intruder, 5432)
    assert allowed(r, "Ingress", own_db, pods[0], 5432)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=_ids(OVERLAYS))
def test_every_paincare_pod_is_isolated_by_default(overlay: Path) -> None:
    r = rendered(overlay)
    for name, _ in workloads(r):
        kind, obj_name = name.split("/")
        labels = r.pod_labels(kind, obj_name)
        assert labels.get("app.kubernetes.io/part-of") == "paincare", name
        for direction in ("Ingress", "Egress"):
            assert any(selects(p["spec"]["podSelector"], labels)
                       and direction in _policy_types(p)
                       and not p["spec"].get(direction.lower())
                       for p in r.of_kind("NetworkPolicy")), f"{name}: no default-deny"


# --- Kafka through Strimzi -----------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS, ids=_ids(OVERLAYS))
def test_kafka_has_three_brokers_and_every_topic(overlay: Path) -> None:
    r = rendered(overlay)
    [kafka] = r.of_kind("Kafka")
    name = kafka["metadata"]["name"]
    config = kafka["spec"]["kafka"]["config"]
    assert int(config["min.insync.replicas"]) == 2
    assert int(config["default.replication.factor"]) == 3
    assert str(config["auto.create.topics.enable"]).lower() == "false"
    pools = [p for p in r.of_kind("KafkaNodePool")
             if p["metadata"]["labels"]["strimzi.io/cluster"] == name]
    assert sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"]) == 3
    assert any("controller" in p["spec"]["roles"] for p in pools), "KRaft controllers"
    listener = next(li for li in kafka["spec"]["kafka"]["listeners"] if li["port"] == 9092)
    assert listener["type"] == "internal"
    # dev: plaintext; production: TLS with SCRAM (test_hardening checks users and ACLs)
    assert listener["tls"] is (overlay.name == "production")

    settings = r.get("ConfigMap", next(
        o["metadata"]["name"] for o in r.of_kind("ConfigMap")
        if o["metadata"]["name"].startswith("paincare-config")))["data"]
    assert settings["KAFKA_BOOTSTRAP_SERVERS"] == f"{name}-kafka-bootstrap:9092"
    assert settings["KAFKA_TOPIC_PREFIX"] == ""
    partitions = int(settings["KAFKA_PARTITIONS"])
    topics_by_name = {t["metadata"]["name"]: t for t in r.of_kind("KafkaTopic")}
    assert set(topics_by_name) == set(topics.ALL_TOPICS)
    for service in filter(_with_worker, support.services()):  # idle past the partitions
        worker = r.get("Deployment", f"{service}-worker")["spec"]
        assert 1 <= worker["replicas"] <= partitions
    for topic in topics_by_name.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == name
        spec = topic["spec"]
        assert spec["replicas"] == 3 and spec["partitions"] == partitions >= 3
        assert int(spec["config"]["min.insync.replicas"]) == 2
