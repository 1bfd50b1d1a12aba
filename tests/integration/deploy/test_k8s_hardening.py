"""Issue 21's defects in what kustomize renders (deploy/k8s), each pinned by a test that
failed before its fix. They render every overlay with scripts/kustomize.sh, which builds
kustomize from the Go module proxy once: slow on a fresh machine, so here rather than in
tests/unit/deploy (test_hardening.py there reads the files alone)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from shared import services as registry
from tests.unit.deploy import support

# the first test to render pays for building kustomize once (a minute or two, fresh machine)
pytestmark = pytest.mark.timeout(900)

OVERLAYS = support.overlays()
# kubectl 1.32, the oldest we support, bundles kustomize v5.5.0; make proof-deploy builds it
OLDEST_KUSTOMIZE = support.ROOT / ".cache" / "deploy-proof" / "bin" / "kustomize-v5.5.0"
MONITORING_NS = {"kubernetes.io/metadata.name": "monitoring"}
PROMETHEUS_POD = {"app.kubernetes.io/name": "prometheus"}


@pytest.mark.skipif(not OLDEST_KUSTOMIZE.exists(),
                    reason="kustomize v5.5.0 not built yet: `make proof-deploy` builds it")
@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.name for p in OVERLAYS])
def test_the_oldest_supported_kustomize_renders_what_ours_renders(overlay: Path) -> None:
    proc = subprocess.run([str(OLDEST_KUSTOMIZE), "build", str(overlay)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ours = support.kustomize_build(overlay)
    assert [d for d in yaml.safe_load_all(proc.stdout) if d] == ours


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.name for p in OVERLAYS])
def test_prometheus_may_scrape_every_worker_and_web(overlay: Path) -> None:
    from tests.integration.deploy.test_k8s import allowed, rendered

    r = rendered(overlay)
    for service in support.services():
        if "worker" in support.roles(service):
            worker = r.pod_labels("Deployment", f"{service}-worker")
            port = next(p for p in r.container("Deployment", f"{service}-worker")["ports"]
                        if p["name"] == "metrics")["containerPort"]
            assert allowed(r, "Ingress", worker, PROMETHEUS_POD, port, MONITORING_NS), \
                f"{service}-worker: Prometheus cannot scrape port {port}"
        web = r.pod_labels("Deployment", f"{service}-web")
        assert allowed(r, "Ingress", web, PROMETHEUS_POD, support.port(service), MONITORING_NS)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.name for p in OVERLAYS])
def test_read_only_containers_have_a_writable_tmp_and_data_path(overlay: Path) -> None:
    from tests.integration.deploy.test_k8s import rendered, workloads

    for name, pod in workloads(rendered(overlay)):
        for c in pod["containers"]:
            if not c.get("securityContext", {}).get("readOnlyRootFilesystem"):
                continue
            mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
            assert "/tmp" in mounts, f"{name}/{c['name']}: read-only root and no /tmp"
            env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
            if "mailpit" in c["image"]:
                db = env.get("MP_DATABASE", "")
                assert any(db.startswith(m + "/") for m in mounts), \
                    f"{name}: mailpit's database ({db or 'a temp file'}) is not on a volume"


def test_production_kafka_is_tls_with_scram_and_each_service_has_its_user() -> None:
    from tests.integration.deploy.test_k8s import rendered

    r = rendered(support.K8S / "overlays" / "production")
    [kafka] = r.of_kind("Kafka")
    listeners = kafka["spec"]["kafka"]["listeners"]
    assert all(li["tls"] is True and li["authentication"]["type"] == "scram-sha-512"
               for li in listeners), "no plaintext or anonymous listener"
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    users = {u["metadata"]["name"]: u for u in r.of_kind("KafkaUser")}
    own_topic = {s.name: s.topic for s in registry.REGISTRY
                 if s.topic and s.topic != registry.SYSTEM_TOPIC}
    for service in support.services():
        if "worker" not in support.roles(service):
            continue
        user = users[service]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        writes = {a["resource"]["name"] for a in user["spec"]["authorization"]["acls"]
                  if "Write" in a["operations"] and a["resource"]["type"] == "topic"
                  and a.get("type", "allow") == "allow"}
        mine = ({own_topic.get(service), "system.events", f"{service}.dlq"}
                | set(registry.service(service).also_produces)) - {None}
        if service == "dashboard":   # replays dead letters to where they came from
            mine |= set(own_topic.values()) | {registry.PATIENTS_TOPIC}
        assert writes == mine, f"{service} may write {sorted(writes)}"
        for role in support.roles(service):
            c = r.container("Deployment", f"{service}-{role}")
            env = {e["name"]: e for e in c["env"]}
            assert env["KAFKA_SASL_USERNAME"]["value"] == service
            assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == \
                {"name": service, "key": "password"}, "the KafkaUser's own Secret"
            cafile = r.env_value(c, "KAFKA_SSL_CAFILE")
            assert any(cafile.startswith(m["mountPath"] + "/") for m in c["volumeMounts"])
            assert r.env_value(c, "KAFKA_SECURITY_PROTOCOL") == "SASL_SSL"


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_every_deployment_knows_every_role_the_provider_may_carry(overlay: Path) -> None:
    """OIDC_ROLES is the list of roles a provider's token is read for; a role left out is
    dropped from the token. The deploy files pinned the first four, so in production a
    triage lead could not triage and a privacy officer's or referrer's token (no other
    role) was refused as carrying no known role."""
    from shared.auth import ROLES
    from tests.integration.deploy.test_k8s import rendered

    r = rendered(overlay)
    for service in support.services():
        for role in support.roles(service):
            c = r.container("Deployment", f"{service}-{role}")
            known = r.env_value(c, "OIDC_ROLES").split(",")
            assert set(ROLES) <= set(known), \
                f"{service}-{role} drops {sorted(set(ROLES) - set(known))}"


def test_only_the_notifier_and_the_fhir_gateway_read_the_patients_contacts() -> None:
    """patients.contacts carries personal data (names, dates of birth, contacts): in
    production only the consumers that need them may read it, and the dashboard's
    read-everything is explicitly denied it."""
    from tests.integration.deploy.test_k8s import rendered

    r = rendered(support.K8S / "overlays" / "production")
    readers, denied = set(), set()
    for user in r.of_kind("KafkaUser"):
        for acl in user["spec"]["authorization"]["acls"]:
            res = acl["resource"]
            if res["type"] != "topic" or "Read" not in acl["operations"]:
                continue
            if res["name"] == "patients.contacts":
                (denied if acl.get("type") == "deny" else readers).add(
                    user["metadata"]["name"])
            elif res["name"] == "*" and acl.get("type", "allow") == "allow":
                readers.add(user["metadata"]["name"])
    assert readers - denied == {"notifier", "fhir"}
