"""docker-compose.yml, read statically (no Docker engine here): every service it runs
exists, with its command, port, environment, health check and start order."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest

from tests.unit.deploy import support

INFRA = {"kafka", "postgres", "mailpit", "migrate"}


def _svc(name: str) -> dict[str, Any]:
    return support.compose()["services"][name]


def _env(name: str) -> dict[str, str]:
    env = _svc(name).get("environment", {})
    if isinstance(env, list):  # the KEY=value form
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _app_containers() -> list[tuple[str, str]]:
    return [(s, r) for s in support.services() for r in support.roles(s)]


def test_compose_runs_every_service_role_and_nothing_unknown() -> None:
    names = set(support.compose()["services"])
    expected = {f"{s}-{r}" for s, r in _app_containers()}
    assert expected <= names, f"not in docker-compose.yml: {sorted(expected - names)}"
    assert names - expected == INFRA, f"unexpected: {sorted(names - expected - INFRA)}"


@pytest.mark.parametrize(("service", "role"), _app_containers())
def test_each_container_runs_its_own_service_and_role(service: str, role: str) -> None:
    c = _svc(f"{service}-{role}")
    expected = support.web_command(service) if role == "web" else support.worker_command(service)
    assert c["command"] == expected
    assert c["build"] == "." and c["image"] == _svc("migrate")["image"], "one image for all"
    package = support.ROOT / "services" / service
    if role == "web":
        assert "def create_app(" in (package / "app.py").read_text()
    else:
        assert "def main(" in (package / "worker.py").read_text()


@pytest.mark.parametrize("service", support.services())
def test_web_listens_publishes_and_is_probed_on_the_services_port(service: str) -> None:
    port = support.port(service)
    c = _svc(f"{service}-web")
    env = _env(f"{service}-web")
    assert env["BIND"] == f"0.0.0.0:{port}"
    published = [str(p).rsplit(":", 2)[-2:] for p in c["ports"]]
    assert [str(port), str(port)] in published
    assert c["healthcheck"]["test"][-1] == f"http://127.0.0.1:{port}/readyz"
    if "worker" not in support.roles(service):
        return
    worker = _svc(f"{service}-worker")
    assert _env(f"{service}-worker")["WORKER_METRICS_PORT"] == str(support.WORKER_METRICS_PORT)
    assert worker["healthcheck"]["test"][-1] == \
        f"http://127.0.0.1:{support.WORKER_METRICS_PORT}/metrics"
    assert "ports" not in worker, "workers serve nothing outside their container"


@pytest.mark.parametrize(("service", "role"), _app_containers())
def test_every_variable_the_code_reads_is_set(service: str, role: str) -> None:
    gaps = support.missing(support.required_env(service, role), set(_env(f"{service}-{role}")))
    assert not gaps, f"{service}-{role} in docker-compose.yml lacks {gaps}"


@pytest.mark.parametrize("service", [s for s in support.services() if support.has_database(s)])
def test_each_service_uses_its_own_database_and_the_broker(service: str) -> None:
    init = _svc("postgres")["environment"]["PAINCARE_DATABASES"].split()
    assert service in init, "postgres-init.sh creates one database per service"
    for role in support.roles(service):
        env = _env(f"{service}-{role}")
        url = urlparse(env["DATABASE_URL"])
        assert (url.scheme, url.hostname, url.path) == \
            ("postgresql+psycopg", "postgres", f"/{service}")
        assert url.username == service, "each service logs in as its own role"
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["KAFKA_TOPIC_PREFIX"] == ""
    # the migration step migrates every service's own database
    migrate = _env("migrate")
    assert _svc("migrate")["command"][3:5] == ["upgrade", "all"]
    assert urlparse(migrate[f"{service.upper()}_DATABASE_URL"]).path == f"/{service}"


def test_start_order_waits_for_health_and_migrations() -> None:
    services = support.compose()["services"]
    for name, c in services.items():
        for dep, cond in c.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no health check"
    for service, role in _app_containers():
        deps = _svc(f"{service}-{role}")["depends_on"]
        if not support.has_database(service):  # no database, no broker: the APIs it calls
            assert deps and all(d.endswith("-web") for d in deps), f"{service}-{role}"
            continue
        assert deps["kafka"]["condition"] == "service_healthy"
        assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert _svc("migrate")["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert _svc("migrate").get("restart") == "no"
    for name in ("kafka", "postgres", "mailpit"):
        assert "healthcheck" in services[name]


def test_kafka_is_the_official_image_in_kraft_mode() -> None:
    kafka = _svc("kafka")
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert kafka["image"] == "apache/kafka:4.3.0"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # as the services expect
    assert "ZOOKEEPER" not in " ".join(env)
    mounts = [v.split(":")[1] for v in kafka["volumes"]]
    assert env["KAFKA_LOG_DIRS"] in mounts, "the log lives on a volume"


def test_mail_goes_to_the_local_catcher() -> None:
    container_ports = {str(p).rsplit(":", 1)[-1] for p in _svc("mailpit")["ports"]}
    for role in support.ROLES:
        env = _env(f"notifier-{role}")
        assert env["SMTP_HOST"] == "mailpit"
        assert env["SMTP_PORT"] in container_ports


@pytest.mark.parametrize("client", [s for s in support.API_CLIENTS
                                    if s in support.services()])
def test_api_clients_reach_every_other_service_by_its_compose_name(client: str) -> None:
    others = support.API_READS[client]
    for role in support.roles(client):
        env = _env(f"{client}-{role}")
        for other in others:
            url = urlparse(env[f"{other.upper()}_URL"])
            assert (url.hostname, url.port) == (f"{other}-web", support.port(other))
    deps = _svc(f"{client}-web")["depends_on"]
    assert all(deps[f"{o}-web"]["condition"] == "service_healthy" for o in others)


def test_mounted_files_exist() -> None:
    for name, c in support.compose()["services"].items():
        for volume in c.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (support.ROOT / source).exists(), f"{name} mounts missing {source}"
