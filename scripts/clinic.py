"""Runs the whole clinic on this machine: Kafka, every service's web and worker, the
receivers of the notifier's email and SMS (the patients' mailbox), demo data, the front
desk that keeps the simulated patients' visits going (simulator.clinic_day), and
Keycloak, the clinic's OpenID Connect provider (scripts/keycloak.sh; KEYCLOAK=auto, the
default, starts it where Java 21+ is installed, KEYCLOAK=1 insists, KEYCLOAK=0 skips).
   python scripts/clinic.py up|down|status

The run is development (PAINCARE_ENV=development): the services accept the provider's
tokens and local ones signed with this checkout's generated secret (.var/dev-jwt-secret).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.auth import mint_token  # noqa: E402
from shared.config import VAR_DIR, Settings  # noqa: E402
from shared.launcher import PORTS, PYTHON, ServiceProcesses, available_services  # noqa: E402

STATE = VAR_DIR / "clinic.json"
LOGS = VAR_DIR / "logs"
RECEIVERS = "receivers"
FRONT_DESK = "front desk"


def mailbox_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('RECEIVER_WEB_PORT', '8025')}"


def _spawn(module: str, log: str) -> subprocess.Popen:
    """A helper process of the clinic in its own process group (`make down` ends it)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(ROOT))
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen([PYTHON, "-m", module], env=env, cwd=ROOT, start_new_session=True,
                            stdout=open(LOGS / log, "ab"), stderr=subprocess.STDOUT)


def start_receivers() -> dict:
    """The SMTP server and SMS gateway the notifier sends to (simulator.receivers), so
    that what it sends is delivered and readable instead of failing and dead-lettering.
    Started before the services: the demo data already makes the notifier send."""
    proc = _spawn("simulator.receivers", "receivers.log")
    url = mailbox_url()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"receivers exited with {proc.returncode}; "
                               f"see {LOGS / 'receivers.log'}")
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return {"url": url, "pids": {"main": proc.pid}}
        except requests.RequestException:
            pass
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    raise TimeoutError(f"receivers not ready at {url} in 30s; see {LOGS / 'receivers.log'}")


def start_front_desk() -> dict:
    """The simulated patients check in, are seen, get their signed notes and miss some
    visits as their times come (simulator.clinic_day), so the clinic lives after start."""
    proc = _spawn("simulator.clinic_day", "front-desk.log")
    time.sleep(0.5)
    if proc.poll() is not None:
        raise RuntimeError(f"the front desk exited with {proc.returncode}; "
                           f"see {LOGS / 'front-desk.log'}")
    return {"log": str(LOGS / "front-desk.log"), "pids": {"main": proc.pid}}


KEYCLOAK_SH = ROOT / "scripts/keycloak.sh"
KEYCLOAK_ISSUER = f"http://127.0.0.1:{os.environ.get('KEYCLOAK_PORT', '8180')}/realms/paincare"
KEYCLOAK_ADMIN = KEYCLOAK_ISSUER.rsplit("/realms/", 1)[0]


def start_keycloak() -> subprocess.Popen | None:
    """Keycloak starting beside the rest (it takes minutes on two cores); the services
    fetch its keys when the first token of it arrives, so nothing waits for it."""
    wanted = os.environ.get("KEYCLOAK", "auto")
    if wanted == "0":
        return None
    if subprocess.run([KEYCLOAK_SH, "java"], capture_output=True).returncode != 0:
        if wanted == "1":
            raise SystemExit("clinic: KEYCLOAK=1 but no Java 21+ is installed")
        print("clinic: no Java 21+, so no Keycloak: the console offers local sign-in only")
        return None
    LOGS.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([KEYCLOAK_SH, "start"], stdout=open(LOGS / "keycloak-start.log", "w"),
                            stderr=subprocess.STDOUT, cwd=ROOT)


def link_keycloak_providers() -> int:
    """The realm's demo specialists get their scheduling provider's id (matched by name),
    so the diary and the care team recognise them as they recognise local users."""
    password = (ROOT / ".cache/keycloak/admin-password").read_text().strip()
    admin = requests.post(f"{KEYCLOAK_ADMIN}/realms/master/protocol/openid-connect/token",
                          data={"grant_type": "password", "client_id": "admin-cli",
                                "username": "admin", "password": password}, timeout=30)
    admin.raise_for_status()
    kc = {"Authorization": f"Bearer {admin.json()['access_token']}"}
    settings = Settings.for_service("clinic")
    service = mint_token(settings.jwt_secret, subject="clinic-up", role="service",
                         issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    providers = requests.get(f"http://127.0.0.1:{PORTS['scheduling']}/providers", timeout=30,
                             headers={"Authorization": f"Bearer {service}"}).json()
    by_name = {p["name"].removeprefix("Dr ").lower(): p["id"] for p in providers}
    users = f"{KEYCLOAK_ADMIN}/admin/realms/paincare/users"
    linked = 0
    for user in requests.get(users, params={"max": 200}, headers=kc, timeout=30).json():
        attributes = user.get("attributes") or {}
        found = by_name.get(f"{user.get('firstName', '')} {user.get('lastName', '')}".lower())
        if attributes.get("discipline") and found:
            attributes["provider_id"] = [found]
            requests.put(f"{users}/{user['id']}", headers=kc, timeout=30, json={
                "firstName": user.get("firstName"), "lastName": user.get("lastName"),
                "email": user.get("email"), "attributes": attributes}).raise_for_status()
            linked += 1
    return linked


def up() -> int:
    keycloak = start_keycloak()
    subprocess.run([ROOT / "scripts/kafka.sh", "start"], check=True)
    if os.environ.get("DATABASE_BACKEND") == "postgres":
        subprocess.run([ROOT / "scripts/postgres.sh", "start"], check=True)
    down(quiet=True)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(VAR_DIR / "prometheus"),
           "PAINCARE_ENV": "development"}
    if keycloak is not None:
        env["OIDC_ISSUER"] = KEYCLOAK_ISSUER
    (VAR_DIR / "prometheus").mkdir(exist_ok=True)
    for f in (VAR_DIR / "prometheus").glob("*.db"):
        f.unlink()
    state = {RECEIVERS: start_receivers()}
    STATE.write_text(json.dumps(state, indent=2))  # `make down` stops it even if a service fails
    started = []
    for service in available_services():
        senv = dict(env)
        if os.environ.get("DATABASE_BACKEND") == "postgres":
            senv["DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5433/{service}"
        procs = ServiceProcesses(service, PORTS[service], senv, LOGS).start()
        started.append(procs)
    for procs in started:
        procs.wait_ready()
        state[procs.service] = {"url": procs.url,
                                "pids": {r: p.pid for r, p in procs.processes.items()}}
    STATE.write_text(json.dumps(state, indent=2))
    demo = ROOT / "scripts/demo.py"
    if demo.exists() and os.environ.get("DEMO", "1") == "1":
        subprocess.run([sys.executable, str(demo)], check=True)
        state[FRONT_DESK] = start_front_desk()
        STATE.write_text(json.dumps(state, indent=2))
    signin = "local users only"
    if keycloak is not None:
        print("clinic: waiting for Keycloak (log: .cache/keycloak/keycloak.log) ...", flush=True)
        if keycloak.wait(timeout=900) == 0:
            linked = link_keycloak_providers() if FRONT_DESK in state else 0
            signin = (f"Keycloak {KEYCLOAK_ISSUER} (users sam.scheduler, amara.okafor, "
                      f"sam.reid, ingrid.lind, mei.chen, olu.ops; password paincare-demo; "
                      f"{linked} specialists linked to their providers) or a local user")
        else:
            signin = f"local users only: Keycloak did not start ({LOGS / 'keycloak-start.log'})"
    print("\nPainCare is running:")
    for service, info in state.items():
        if service not in (RECEIVERS, FRONT_DESK):
            print(f"  {service:<11} {info['url']}   (API docs: {info['url']}/docs)")
    if "dashboard" in state:
        print(f"\n  Ops dashboard: {state['dashboard']['url']}/"
              "  (token: python scripts/mint_token.py admin)")
    if "console" in state:
        print(f"  Clinic console: {state['console']['url']}/  (sign in: {signin})")
    print(f"  Patients' mailbox: {state[RECEIVERS]['url']}/"
          "  (every email and SMS the notifier sends)")
    if FRONT_DESK in state:
        print(f"  Front desk: the simulated patients' visits go on as their times come"
              f"  (log: {state[FRONT_DESK]['log']})")
    print(f"  Kafka: 127.0.0.1:9092   logs: {LOGS}   stop: make down")
    return 0


def down(quiet: bool = False) -> int:
    if STATE.exists():
        state = json.loads(STATE.read_text())
        for info in state.values():
            for pid in info["pids"].values():
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        if RECEIVERS in state:  # its fixed ports must be free before the next `up`
            _wait_gone(state[RECEIVERS]["pids"]["main"])
        STATE.unlink()
        if not quiet:
            print("clinic: services stopped")
    return 0


def _alive(pid: int) -> bool:
    """Whether the process group `pid` leads still has a process."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)


def status() -> int:
    for service in available_services():
        url = f"http://127.0.0.1:{PORTS[service]}/readyz"
        try:
            code = requests.get(url, timeout=2).status_code
        except requests.RequestException:
            code = "down"
        print(f"{service:<11} {code}")
    try:
        code = requests.get(mailbox_url() + "/healthz", timeout=2).status_code
    except requests.RequestException:
        code = "down"
    print(f"{'mailbox':<11} {code}   {mailbox_url()}/")
    desk = json.loads(STATE.read_text()).get(FRONT_DESK) if STATE.exists() else None
    running = bool(desk) and _alive(desk["pids"]["main"])
    print(f"{'front desk':<11} {'running' if running else 'down'}")
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    sys.exit({"up": up, "down": down, "status": status}[command]())
