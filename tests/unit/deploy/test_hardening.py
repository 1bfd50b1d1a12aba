"""Issue 21: the defects the real validators and a real image run found in deploy/,
each pinned by a test that failed before its fix. The validators themselves run in
`make proof-deploy` (scripts/proof_deploy.sh); these read the files."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy import support

OVERLAYS = support.overlays()
# kubectl 1.32, the oldest we support, bundles kustomize v5.5.0; make proof-deploy builds it
OLDEST_KUSTOMIZE = support.ROOT / ".cache" / "deploy-proof" / "bin" / "kustomize-v5.5.0"


def _kustomization(overlay: Path) -> dict[str, Any]:
    return yaml.safe_load((overlay / "kustomization.yaml").read_text())


def _patch_texts(overlay: Path) -> list[tuple[str, str]]:
    out = []
    for i, patch in enumerate(_kustomization(overlay).get("patches", [])):
        if "path" in patch:
            out.append((patch["path"], (overlay / patch["path"]).read_text()))
        else:
            out.append((f"patches[{i}]", patch["patch"]))
    return out


# --- 1. the production overlay renders with the kustomize of kubectl 1.32 -----------------

@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.name for p in OVERLAYS])
def test_no_multi_document_delete_patch(overlay: Path) -> None:
    """A file of several `$patch: delete` documents panics kustomize v5.5 and v5.6 (so
    `kubectl apply -k` on kubectl 1.32 and 1.33): one document per patch."""
    for name, text in _patch_texts(overlay):
        docs = [d for d in yaml.safe_load_all(text) if d]
        deletes = [d for d in docs if isinstance(d, dict) and d.get("$patch") == "delete"]
        assert not (deletes and len(docs) > 1), f"{overlay.name}/{name}: {len(docs)} documents"


@pytest.mark.skipif(not OLDEST_KUSTOMIZE.exists(),
                    reason="kustomize v5.5.0 not built yet: `make proof-deploy` builds it")
@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.name for p in OVERLAYS])
def test_the_oldest_supported_kustomize_renders_what_ours_renders(overlay: Path) -> None:
    proc = subprocess.run([str(OLDEST_KUSTOMIZE), "build", str(overlay)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ours = support.kustomize_build(overlay)
    assert [d for d in yaml.safe_load_all(proc.stdout) if d] == ours


# --- 3. Prometheus reaches the workers' metrics port; 4. the Kafka Exporter exists -------

MONITORING_NS = {"kubernetes.io/metadata.name": "monitoring"}
PROMETHEUS_POD = {"app.kubernetes.io/name": "prometheus"}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.name for p in OVERLAYS])
def test_prometheus_may_scrape_every_worker_and_web(overlay: Path) -> None:
    from tests.unit.deploy.test_k8s import allowed, rendered

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


def test_the_kafka_exporter_that_alerts_and_panels_read_is_deployed() -> None:
    kafka = {d["kind"]: d for d in yaml.safe_load_all(
        (support.K8S / "base" / "kafka.yaml").read_text()) if d}["Kafka"]
    exporter = kafka["spec"].get("kafkaExporter")
    assert exporter is not None, "kafka_consumergroup_lag needs spec.kafkaExporter"
    assert exporter.get("groupRegex", ".*") == ".*" and exporter.get("topicRegex", ".*") == ".*"
    readers = [(support.ROOT / "deploy" / "prometheus" / "paincare-rules.yml").read_text(),
               (support.ROOT / "deploy" / "grafana" / "paincare.json").read_text()]
    assert all("kafka_consumergroup_lag" in text for text in readers), "what it feeds"
    prometheus = yaml.safe_load((support.ROOT / "deploy" / "prometheus" /
                                 "prometheus.yml").read_text())
    assert "kafka-exporter" in [j["job_name"] for j in prometheus["scrape_configs"]]


# --- 7. gunicorn starts without writing under a read-only home ----------------------------

def test_gunicorn_starts_clean_with_a_read_only_home(tmp_path: Path) -> None:
    """gunicorn's control socket wants $HOME/.gunicorn: an error on every start in the
    image (home /app, read-only). The settings turn it off; a real start shows it."""
    import os
    import signal
    import sys
    import time

    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    app = tmp_path / "hello.py"
    app.write_text("def app(environ, start_response):\n"
                   "    start_response('200 OK', [])\n    return [b'ok']\n")
    env = dict(os.environ, HOME=str(home), BIND="127.0.0.1:0", WEB_CONCURRENCY="1",
               PYTHONPATH=f"{support.ROOT}:{tmp_path}")
    gunicorn = Path(sys.executable).parent / "gunicorn"
    proc = subprocess.Popen([str(gunicorn), "-c", str(support.ROOT / "deploy" /
                                                       "gunicorn.conf.py"), "hello:app"],
                            env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stderr is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "Booting worker" in line or not line:
                break
        time.sleep(1)  # the control socket, if any, starts beside the first worker
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        proc.kill()
    log = "".join(lines) + rest
    assert "Booting worker" in log, log
    assert "[ERROR]" not in log and "control" not in log.lower(), log
    assert not (home / ".gunicorn").exists()


# --- 5. every read-only container has somewhere to write ---------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.name for p in OVERLAYS])
def test_read_only_containers_have_a_writable_tmp_and_data_path(overlay: Path) -> None:
    from tests.unit.deploy.test_k8s import rendered, workloads

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


# --- 8. compose: PostgreSQL healthy over TCP; migrate retries for a bounded time ----------

def test_compose_postgres_is_healthy_only_when_it_answers_over_tcp() -> None:
    check = " ".join(support.compose()["services"]["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in check
    assert "-h 127.0.0.1" in check or "-h localhost" in check, \
        "the socket answers during the image's init phase; migrate connects over TCP"


def test_compose_migrate_waits_a_bounded_time_for_its_database() -> None:
    command = support.compose()["services"]["migrate"]["command"]
    assert "--wait" in command
    seconds = float(command[command.index("--wait") + 1])
    assert 0 < seconds <= 300


class _Db:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.pings = 0

    def ping(self) -> None:
        self.pings += 1
        if self.pings <= self.failures:
            raise ConnectionError("connection refused")


class _Clock:
    """A clock the test moves: each sleep advances it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_migration_step_retries_until_the_database_answers() -> None:
    from types import SimpleNamespace

    from shared.migrations import wait_for_database

    runtime = SimpleNamespace(db=_Db(failures=3))
    clock = _Clock()
    wait_for_database(runtime, 60, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert runtime.db.pings == 4


def test_migration_step_gives_up_after_its_bound() -> None:
    from types import SimpleNamespace

    from shared.migrations import wait_for_database

    runtime = SimpleNamespace(db=_Db(failures=10**6))
    clock = _Clock()
    with pytest.raises(TimeoutError, match="database not reachable after 5 s"):
        wait_for_database(runtime, 5, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert runtime.db.pings == 6


# --- 10. the image: dependency layer first, a lock with hashes, all ports ----------------

def _lock(name: str) -> dict[str, str]:
    """name -> version of a pip lock file; asserts every entry carries its hashes."""
    import re

    text = (support.ROOT / name).read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 1)[1] if text.startswith("#")
                       else text)
    pins = {}
    for entry in entries:
        entry = "\n".join(ln for ln in entry.splitlines() if not ln.startswith("#"))
        if not entry.strip():
            continue
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", entry)
        assert m, f"{name}: not a pin: {entry[:80]}"
        assert "--hash=sha256:" in entry, f"{name}: {m.group(1)} has no hash"
        pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


def _pyproject_pins(*, dev: bool) -> dict[str, str]:
    import re
    import tomllib

    project = tomllib.loads((support.ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    if dev:
        deps += project["optional-dependencies"]["dev"]
    pins = {}
    for dep in deps:
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]+\])?==(\S+)", dep).groups()
        pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


@pytest.mark.parametrize(("lock", "dev"), [("requirements.lock", False),
                                           ("requirements-dev.lock", True)])
def test_lock_files_pin_every_dependency_with_hashes_as_pyproject_says(lock: str,
                                                                       dev: bool) -> None:
    locked = _lock(lock)
    for name, version in _pyproject_pins(dev=dev).items():
        assert locked.get(name) == version, \
            f"{lock}: {name} {locked.get(name)} but pyproject.toml pins {version}: regenerate"
    assert len(locked) > len(_pyproject_pins(dev=dev)), "transitive dependencies too"
    if not dev:
        assert not set(locked) & {"pytest", "ruff", "playwright"}, "no dev tools in the image"


def test_image_installs_from_the_lock_before_copying_the_sources() -> None:
    from tests.unit.deploy.test_image import _stages

    build = _stages()[0]
    ops = [(op, arg) for op, arg in build if op in ("COPY", "RUN")]
    install = next(i for i, (op, arg) in enumerate(ops) if op == "RUN" and "pip install" in arg)
    assert "--require-hashes" in ops[install][1] and "requirements.lock" in ops[install][1]
    copied_before = [arg.split()[0] for op, arg in ops[:install] if op == "COPY"]
    assert copied_before == ["requirements.lock"], \
        "only the lock before the install: a code change must not rebuild the dependencies"


def test_image_exposes_every_web_port_and_the_worker_metrics_port() -> None:
    from tests.unit.deploy.test_image import _stages

    exposed = {int(p) for op, arg in _stages()[-1] if op == "EXPOSE" for p in arg.split()}
    assert exposed == {support.port(s) for s in support.services()} | \
        {support.WORKER_METRICS_PORT}


def test_bootstrap_installs_from_the_lock_with_hashes() -> None:
    text = (support.ROOT / "scripts" / "bootstrap.sh").read_text()
    assert "--require-hashes -r requirements-dev.lock" in text
    assert "--no-deps -e ." in text


# --- 11. compose hardened like k8s; the probe's docs say where the worker listens --------

def test_compose_runs_every_paincare_container_hardened_and_bounded() -> None:
    compose = support.compose()["services"]
    for service in support.services():
        for role in support.roles(service):
            c = compose[f"{service}-{role}"]
            name = f"{service}-{role}"
            assert c.get("read_only") is True, f"{name}: read-only root"
            assert any(str(t).startswith("/tmp") for t in c.get("tmpfs", [])), f"{name}: /tmp"
            assert c.get("cap_drop") == ["ALL"], name
            assert "no-new-privileges:true" in c.get("security_opt", []), name
            limits = c.get("deploy", {}).get("resources", {}).get("limits", {})
            assert limits.get("cpus") and limits.get("memory"), f"{name}: resource limits"


def test_probe_docs_name_the_workers_real_bind_address() -> None:
    import re

    doc = (support.ROOT / "deploy" / "docker" / "probe.py").read_text().split('"""')[1]
    compose_addr = support.compose()["services"]["referrals-worker"]["environment"][
        "WORKER_METRICS_ADDR"]
    assert compose_addr == "0.0.0.0"
    assert "0.0.0.0" in doc and not re.search(r"127\.0\.0\.1:\$WORKER_METRICS_PORT only", doc)


# --- 11. Kafka over TLS with SCRAM in production: a KafkaUser and ACLs per service ---------

def test_clients_take_tls_and_scram_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.kafka import security_options

    for name in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME",
                 "KAFKA_SASL_PASSWORD", "KAFKA_SSL_CAFILE"):
        monkeypatch.delenv(name, raising=False)
    assert security_options() == {"security_protocol": "PLAINTEXT"}
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "notes")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("KAFKA_SSL_CAFILE", "/etc/kafka-ca/ca.crt")
    assert security_options() == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "notes", "sasl_plain_password": "s3cret",
        "ssl_cafile": "/etc/kafka-ca/ca.crt"}


def test_every_kafka_client_is_made_with_the_security_options() -> None:
    import re

    for path in [support.ROOT / "shared" / "kafka.py",
                 *sorted((support.ROOT / "services").rglob("*.py"))]:
        text = path.read_text()
        for call in re.finditer(r"Kafka(?:AdminClient|Consumer|Producer)\(", text):
            args = text[call.end():call.end() + 400]
            assert "**security_options()" in args.split("\n\n")[0], \
                f"{path.relative_to(support.ROOT)}: a Kafka client without TLS/SCRAM options"


def test_production_kafka_is_tls_with_scram_and_each_service_has_its_user() -> None:
    from tests.unit.deploy.test_k8s import rendered

    r = rendered(support.K8S / "overlays" / "production")
    [kafka] = r.of_kind("Kafka")
    listeners = kafka["spec"]["kafka"]["listeners"]
    assert all(li["tls"] is True and li["authentication"]["type"] == "scram-sha-512"
               for li in listeners), "no plaintext or anonymous listener"
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    users = {u["metadata"]["name"]: u for u in r.of_kind("KafkaUser")}
    own_topic = {"referrals": "referrals.events", "scheduling": "scheduling.events",
                 "notes": "notes.events", "notifier": "notifier.events"}
    for service in support.services():
        if "worker" not in support.roles(service):
            continue
        user = users[service]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        writes = {a["resource"]["name"] for a in user["spec"]["authorization"]["acls"]
                  if "Write" in a["operations"] and a["resource"]["type"] == "topic"
                  and a.get("type", "allow") == "allow"}
        mine = {own_topic.get(service), "system.events", f"{service}.dlq"} - {None}
        if service == "referrals":  # the patient registry's two topics
            mine |= {"patients.events", "patients.contacts"}
        if service == "dashboard":   # replays dead letters to where they came from
            mine |= set(own_topic.values()) | {"patients.events"}
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


# --- found while wiring the image run to the identity provider (production mode) -------

@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_every_deployment_knows_every_role_the_provider_may_carry(overlay: Path) -> None:
    """OIDC_ROLES is the list of roles a provider's token is read for; a role left out is
    dropped from the token. The deploy files pinned the first four, so in production a
    triage lead could not triage and a privacy officer's or referrer's token (no other
    role) was refused as carrying no known role."""
    from shared.auth import ROLES
    from tests.unit.deploy.test_k8s import rendered

    r = rendered(overlay)
    for service in support.services():
        for role in support.roles(service):
            c = r.container("Deployment", f"{service}-{role}")
            known = r.env_value(c, "OIDC_ROLES").split(",")
            assert set(ROLES) <= set(known), \
                f"{service}-{role} drops {sorted(set(ROLES) - set(known))}"


def test_compose_knows_every_role_the_provider_may_carry() -> None:
    from shared.auth import ROLES

    known = support.compose()["x-clinic-env"]["OIDC_ROLES"].split(",")
    assert set(ROLES) <= set(known), f"compose drops {sorted(set(ROLES) - set(known))}"


def test_only_the_notifier_and_the_fhir_gateway_read_the_patients_contacts() -> None:
    """patients.contacts carries personal data (names, dates of birth, contacts): in
    production only the consumers that need them may read it, and the dashboard's
    read-everything is explicitly denied it."""
    from tests.unit.deploy.test_k8s import rendered

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
