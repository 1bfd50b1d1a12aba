"""Steps 7 and 8 of `make proof-deploy`: every service's web and worker from the built
image, run as Kubernetes runs them (read-only root, a small /tmp, no capabilities, no
privilege escalation, uid 10001), against the host's Kafka and PostgreSQL from our
scripts; in production mode, as the k8s base runs them, with Keycloak (scripts/keycloak.sh)
on the host as the identity provider; the walking skeleton through them; then SIGTERM to
each container and a clean exit within its grace period.

    python scripts/deploy_proof/run_image.py IMAGE

Each run has its own databases and topic prefix, on ports that do not clash with
`make up` (web 180NN, worker metrics 191NN); everything is removed afterwards. Prints one
line per check and exits non-zero if any failed."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
import uuid

import requests
from common import ROOT, check, podman, ready, summary, until

from shared.config import Settings
from shared.launcher import PORTS, available_services, has_worker
from tests.support import infra
from tests.support.clinic import bearer

# From the one list of services, so a service added or renamed cannot drop out of the proof
WITH_WORKER = tuple(s for s in available_services() if has_worker(s))
WEB_ONLY = tuple(s for s in available_services() if not has_worker(s))   # the console
GRACE = {"web": 35, "worker": 30}   # terminationGracePeriodSeconds in deploy/k8s
HARDENED = ["--read-only", "--tmpfs", "/tmp:rw,size=64m,mode=1777", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--user", "10001:10001",
            "--network", "host", "--ulimit", "nproc=1000",
            # podman's default open-files limit is above this machine's hard limit
            "--ulimit", "nofile={0}:{0}".format(resource.getrlimit(resource.RLIMIT_NOFILE)[1])]
KEYCLOAK = ROOT / "scripts" / "keycloak.sh"
ISSUER = "http://127.0.0.1:8180/realms/paincare"   # deploy/keycloak/paincare-realm.json
SERVICES_CLIENT = "paincare-services"
SERVICES_SECRET = "paincare-services-development-secret"  # that development realm's

def web_port(service: str) -> int:
    return 10000 + PORTS[service]


def run(image: str, name: str, env: dict[str, str], command: list[str]) -> None:
    envs = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    proc = podman("run", "-d", "--name", name, *HARDENED, *envs, image, *command)
    if proc.returncode != 0:
        raise RuntimeError(f"podman run {name}: {proc.stderr}")


def wait_ready(url: str, seconds: float) -> bool:
    return until(lambda: ready(url), seconds, interval=1)


def start_keycloak() -> tuple[bool, bool, str]:
    """(ready, started here, what happened): the clinic's identity provider on the host,
    by the project's own script, left running if it already was."""
    was_running = subprocess.run([str(KEYCLOAK), "status"], capture_output=True).returncode == 0
    try:
        run = subprocess.run([str(KEYCLOAK), "start"], capture_output=True, text=True,
                             timeout=900)
    except subprocess.TimeoutExpired:
        return False, not was_running, "scripts/keycloak.sh start took over 900 s"
    said = (run.stdout + run.stderr).strip().splitlines()
    return run.returncode == 0, not was_running, said[-1] if said else f"exit {run.returncode}"


def provider_token() -> str:
    """The services' confidential client's token (client credentials; its service account
    holds the `service` role), as the dashboard's probe gets one in production."""
    answer = requests.post(f"{ISSUER}/protocol/openid-connect/token", timeout=30, data={
        "grant_type": "client_credentials", "client_id": SERVICES_CLIENT,
        "client_secret": SERVICES_SECRET})
    answer.raise_for_status()
    return answer.json()["access_token"]


def main(image: str) -> int:
    run_id = uuid.uuid4().hex[:8]
    prefix = f"proofdeploy-{run_id}."
    kafka = infra.ensure_kafka()
    infra.ensure_postgres()
    databases = {s: infra.create_pg_database() for s in WITH_WORKER}
    # production, as the k8s base runs it: only the identity provider's tokens count
    # (Keycloak from scripts/keycloak.sh on the host, the development realm); without a
    # provider here the run falls back to development, and that is a failed check
    keycloak_ready, keycloak_started, said = start_keycloak()
    production = check(keycloak_ready, f"production mode: Keycloak on the host ({said})"
                       + ("" if keycloak_ready else "; ran as development instead"))
    mode = ({"PAINCARE_ENV": "production", "OIDC_ISSUER": ISSUER,
             "OIDC_CLIENT_ID": SERVICES_CLIENT, "OIDC_CLIENT_SECRET": SERVICES_SECRET,
             "JWT_SECRET": ""}
            if production else
            # local tokens the skeleton signs (its own secret, passed in: the containers
            # cannot read the checkout's)
            {"PAINCARE_ENV": "development",
             "JWT_SECRET": Settings.for_service("tests").jwt_secret})
    common = {**mode,
              "KAFKA_BOOTSTRAP_SERVERS": kafka, "KAFKA_TOPIC_PREFIX": prefix,
              "KAFKA_CREATE_TOPICS": "true", "MIGRATE_ON_START": "false",
              "LOG_LEVEL": "INFO", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": "9",
              "SMS_GATEWAY_URL": "http://127.0.0.1:9/sms",
              **{f"{s.upper()}_URL": f"http://127.0.0.1:{web_port(s)}"
                 for s in available_services()}}
    containers: list[tuple[str, str]] = []
    try:
        # the migration step, as compose's `migrate` and the k8s Jobs run it
        env = {**common, **{f"{s.upper()}_DATABASE_URL": infra.pg_url(db)
                            for s, db in databases.items()}}
        proc = podman("run", "--rm", "--name", f"pd-{run_id}-migrate", *HARDENED,
                      *[a for k, v in env.items() for a in ("-e", f"{k}={v}")], image,
                      "python", "-m", "shared.migrations", "upgrade", "all", "--wait", "60",
                      timeout=300)
        check(proc.returncode == 0, "migrate: every database to head, read-only root "
              f"(exit {proc.returncode}) {proc.stderr.strip()[-300:] if proc.returncode else ''}")
        for i, service in enumerate(WITH_WORKER):
            env = {**common, "DATABASE_URL": infra.pg_url(databases[service])}
            web = f"pd-{run_id}-{service}-web"
            run(image, web, {**env, "BIND": f"127.0.0.1:{web_port(service)}",
                             "WEB_CONCURRENCY": "1", "WEB_THREADS": "4",
                             "PROMETHEUS_MULTIPROC_DIR": "/tmp/prometheus"},
                ["gunicorn", "-c", "deploy/gunicorn.conf.py",
                 f"services.{service}.app:create_app()"])
            containers.append((web, "web"))
            worker = f"pd-{run_id}-{service}-worker"
            run(image, worker, {**env, "WORKER_METRICS_ADDR": "127.0.0.1",
                                "WORKER_METRICS_PORT": str(19101 + i)},
                ["python", "-m", f"services.{service}.worker"])
            containers.append((worker, "worker"))
        for service in WEB_ONLY:   # no database, no worker: its web alone
            web = f"pd-{run_id}-{service}-web"
            run(image, web, {**common, "BIND": f"127.0.0.1:{web_port(service)}",
                             "WEB_CONCURRENCY": "1", "WEB_THREADS": "4",
                             "PROMETHEUS_MULTIPROC_DIR": "/tmp/prometheus"},
                ["gunicorn", "-c", "deploy/gunicorn.conf.py",
                 f"services.{service}.app:create_app()"])
            containers.append((web, "web"))
        for service in WEB_ONLY:
            check(wait_ready(f"http://127.0.0.1:{web_port(service)}/readyz", 120),
                  f"{service}-web ready (/readyz 200)")
        for i, service in enumerate(WITH_WORKER):
            check(wait_ready(f"http://127.0.0.1:{web_port(service)}/readyz", 120),
                  f"{service}-web ready (/readyz 200)")
            check(wait_ready(f"http://127.0.0.1:{19101 + i}/metrics", 120),
                  f"{service}-worker serving /metrics")
        for name, _role in containers:
            user = podman("exec", name, "id", "-u").stdout.strip()
            probe = podman("exec", name, "sh", "-c", "touch /app/x 2>&1; echo $?")
            caps = podman("exec", name, "sh", "-c", "grep CapEff /proc/1/status")
            check(user == "10001" and probe.stdout.strip().endswith("1")
                  and caps.stdout.split()[-1:] == ["0000000000000000"],
                  f"{name}: uid {user}, root read-only, no capabilities")
        skeleton(production)
        logs_ok = True
        for name, _role in containers:
            out = podman("logs", name)
            text = out.stdout + out.stderr
            if "[ERROR]" in text or "Traceback" in text:
                logs_ok = False
                print(f"    {name} logged an error:\n{text[-1500:]}")
        check(logs_ok, "no container logged an error or a traceback (gunicorn's control "
              "socket included)")
        for name, role in containers:
            started = time.monotonic()
            podman("stop", "-t", str(GRACE[role]), name, timeout=GRACE[role] + 30)
            took = time.monotonic() - started
            state = json.loads(podman("inspect", name).stdout)[0]["State"]
            code = state.get("ExitCode")
            check(code == 0 and took < GRACE[role],
                  f"{name}: SIGTERM -> exit {code} in {took:.1f} s (grace {GRACE[role]} s)")
    finally:
        for name, _ in containers:
            podman("rm", "-f", name)
        for db in databases.values():
            try:
                infra.drop_pg_database(db)
            except Exception as exc:
                print(f"  (could not drop {db}: {exc})")
        try:
            infra.delete_topics(kafka, prefix)
        except Exception as exc:
            print(f"  (could not delete topics {prefix}*: {exc})")
        if keycloak_started:
            subprocess.run([str(KEYCLOAK), "stop"], capture_output=True, timeout=120)
    return summary("run_image")


def skeleton(production: bool) -> None:
    """tests/e2e/test_walking_skeleton.py's journey, against the containers: in production
    with the provider's token for the services' client (its `service` role may ping and
    read what was handled), and a locally signed token must then be refused."""
    local = bearer(Settings.for_service("tests"), "admin")
    admin = {"Authorization": f"Bearer {provider_token()}"} if production else local
    url = {s: f"http://127.0.0.1:{web_port(s)}" for s in available_services()}
    for service in available_services():
        alive = requests.get(url[service] + "/healthz", timeout=5).json()["status"] == "alive"
        metrics = b"paincare_http_requests_total" in requests.get(url[service] + "/metrics",
                                                                   timeout=5).content
        check(alive and metrics, f"{service}-web: /healthz alive, /metrics served")
    sent = requests.post(url["referrals"] + "/ops/pings", json={"message": "hello"},
                         headers=admin, timeout=10)
    if not check(sent.status_code == 202, f"POST /ops/pings -> {sent.status_code}"):
        return
    event_id = sent.json()["event_id"]
    for service in WITH_WORKER:
        deadline = time.monotonic() + 90
        handled = False
        while time.monotonic() < deadline and not handled:
            r = requests.get(f"{url[service]}/ops/handled/{event_id}", headers=admin, timeout=5)
            handled = r.status_code == 200 and r.json()[0]["event_type"] == "system.ping"
            if not handled:
                time.sleep(0.5)
        check(handled, f"{service}-worker consumed the ping through the broker")
    bad = requests.post(url["referrals"] + "/ops/pings", json={"message": 5}, headers=admin,
                        timeout=10)
    check(bad.status_code == 422 and bad.headers["Content-Type"] == "application/problem+json"
          and "message" in bad.json()["errors"], "bad input: 422 problem+json naming the field")
    check(requests.post(url["referrals"] + "/ops/pings", json={}, timeout=10).status_code == 401,
          "no token: 401")
    if production:
        refused = requests.post(url["referrals"] + "/ops/pings", json={"message": "x"},
                                headers=local, timeout=10).status_code
        check(refused == 401, f"production: a locally signed admin token -> {refused} "
              "(only the provider's tokens count)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
