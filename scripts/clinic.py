"""Runs the whole clinic on this machine: Kafka, every service's web and worker, demo
data.   python scripts/clinic.py up|down|status"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.config import VAR_DIR  # noqa: E402
from shared.launcher import PORTS, ServiceProcesses, available_services  # noqa: E402

STATE = VAR_DIR / "clinic.json"
LOGS = VAR_DIR / "logs"


def up() -> int:
    subprocess.run([ROOT / "scripts/kafka.sh", "start"], check=True)
    if os.environ.get("DATABASE_BACKEND") == "postgres":
        subprocess.run([ROOT / "scripts/postgres.sh", "start"], check=True)
    down(quiet=True)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(VAR_DIR / "prometheus")}
    (VAR_DIR / "prometheus").mkdir(exist_ok=True)
    for f in (VAR_DIR / "prometheus").glob("*.db"):
        f.unlink()
    started = []
    for service in available_services():
        senv = dict(env)
        if os.environ.get("DATABASE_BACKEND") == "postgres":
            senv["DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5433/{service}"
        procs = ServiceProcesses(service, PORTS[service], senv, LOGS).start()
        started.append(procs)
    state = {}
    for procs in started:
        procs.wait_ready()
        state[procs.service] = {"url": procs.url,
                                "pids": {r: p.pid for r, p in procs.processes.items()}}
    STATE.write_text(json.dumps(state, indent=2))
    demo = ROOT / "scripts/demo.py"
    if demo.exists() and os.environ.get("DEMO", "1") == "1":
        subprocess.run([sys.executable, str(demo)], check=True)
    print("\nPainCare is running:")
    for service, info in state.items():
        print(f"  {service:<11} {info['url']}   (API docs: {info['url']}/docs)")
    if "dashboard" in state:
        print(f"\n  Ops dashboard: {state['dashboard']['url']}/"
              "  (token: python scripts/mint_token.py admin)")
    if "console" in state:
        print(f"  Clinic console: {state['console']['url']}/")
    print(f"  Kafka: 127.0.0.1:9092   logs: {LOGS}   stop: make down")
    return 0


def down(quiet: bool = False) -> int:
    if STATE.exists():
        for info in json.loads(STATE.read_text()).values():
            for pid in info["pids"].values():
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        STATE.unlink()
        if not quiet:
            print("clinic: services stopped")
    return 0


def status() -> int:
    import requests

    for service in available_services():
        url = f"http://127.0.0.1:{PORTS[service]}/readyz"
        try:
            code = requests.get(url, timeout=2).status_code
        except requests.RequestException:
            code = "down"
        print(f"{service:<11} {code}")
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    sys.exit({"up": up, "down": down, "status": status}[command]())
