"""Step 9 of `make proof-deploy`, once podman-compose has started the project: what
`docker compose up` must give a person on one host, checked from outside.

    python scripts/deploy_proof/compose_check.py PROJECT COMPOSE_FILE

- `migrate` ran and exited 0 (it retries PostgreSQL for a bounded time);
- every web answers /readyz 200 on its published port;
- every container's own compose health check passes (`podman healthcheck run`: there is
  no systemd here to run them on their interval, so they are run once each, on demand);
- PainCare's containers run as compose says: read-only root, no capabilities, uid 10001;
- the walking skeleton: a ping to referrals, with a token signed by compose's own
  JWT_SECRET, consumed by every service's worker through compose's Kafka;
- `podman-compose stop` (SIGTERM, compose's stop_grace_period): every PainCare
  container exits 0.

Prints one line per check, and `compose_check: N passed, M failed` last."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml
from common import check, podman, ready, summary, until

from shared.auth import mint_token

THIRD_PARTY = {"kafka", "postgres", "mailpit"}


def containers(project: str) -> dict[str, dict]:
    """The project's containers by compose service name (podman-compose labels them)."""
    listed = podman("ps", "-a", "--format", "json", "--filter",
                    f"label=io.podman.compose.project={project}")
    found = {}
    for c in json.loads(listed.stdout or "[]"):
        service = (c.get("Labels") or {}).get("com.docker.compose.service")
        if service:
            found[service] = c
    return found


def inspect(name: str) -> dict:
    return json.loads(podman("inspect", name).stdout)[0]


def main(project: str, compose_file: str, compose_cmd: list[str]) -> int:
    spec = yaml.safe_load(Path(compose_file).read_text())
    services = spec["services"]
    found = containers(project)
    check(set(found) == set(services),
          f"{len(found)} of {len(services)} compose services have a container"
          + (f" (missing: {sorted(set(services) - set(found))})" if set(found) != set(services)
             else ""))
    name = {s: c["Names"][0] for s, c in found.items()}

    def migrated() -> bool:
        state = inspect(name["migrate"])["State"]
        return state.get("Status") == "exited"
    if "migrate" in name and until(migrated, 300):
        code = inspect(name["migrate"])["State"].get("ExitCode")
        check(code == 0, f"migrate: every database to head, exit {code}")
    else:
        check(False, "migrate did not finish within 300 s")

    webs = {s: int(str(v["ports"][0]).split(":")[-2]) for s, v in services.items()
            if s.endswith("-web") and v.get("ports")}
    deadline = time.monotonic() + 300   # one wait for all of them: they start together
    for service, port in sorted(webs.items()):
        left = max(deadline - time.monotonic(), 5)
        check(until(lambda p=port: ready(f"http://127.0.0.1:{p}/readyz"), left),
              f"{service}: /readyz 200 on its published port 127.0.0.1:{port}")

    for service in sorted(s for s in services if services[s].get("healthcheck")):
        if service not in name:
            continue
        healthy = until(lambda n=name[service]: podman("healthcheck", "run", n,
                                                       timeout=60).returncode == 0, 60, 5)
        check(healthy, f"{service}: its compose health check passes")

    for service in sorted(s for s in name if s not in THIRD_PARTY and s != "migrate"):
        read_only = inspect(name[service])["HostConfig"].get("ReadonlyRootfs") is True
        user = podman("exec", name[service], "id", "-u").stdout.strip()
        caps = inspect_caps(name[service])
        check(read_only and caps == "0000000000000000" and user == "10001",
              f"{service}: read-only root {read_only}, capabilities {caps}, uid {user}")

    skeleton(spec, webs)

    subprocess.run([*compose_cmd, "stop"], capture_output=True, text=True, timeout=300)
    for service in sorted(s for s in name if s not in THIRD_PARTY and s != "migrate"):
        state = inspect(name[service])["State"]
        check(state.get("ExitCode") == 0 and state.get("Status") == "exited",
              f"{service}: stopped by SIGTERM -> exit {state.get('ExitCode')}")

    return summary("compose_check")


def inspect_caps(container: str) -> str:
    out = podman("exec", container, "sh", "-c", "grep CapEff /proc/1/status").stdout.split()
    return out[-1] if out else ""


def skeleton(spec: dict, webs: dict[str, int]) -> None:
    """The walking skeleton through compose's own network, broker and databases."""
    env = spec["x-clinic-env"]
    admin = {"Authorization": "Bearer " + mint_token(
        env["JWT_SECRET"], subject="admin-1", role="admin", issuer=env["JWT_ISSUER"],
        audience=env["JWT_AUDIENCE"])}
    referrals = f"http://127.0.0.1:{webs['referrals-web']}"
    sent = requests.post(referrals + "/ops/pings", json={"message": "hello from compose"},
                         headers=admin, timeout=10)
    if not check(sent.status_code == 202, f"POST /ops/pings to referrals-web -> "
                                          f"{sent.status_code}"):
        return
    event_id = sent.json()["event_id"]
    workers = sorted(s[:-len("-worker")] for s in spec["services"] if s.endswith("-worker"))
    for service in workers:
        url = f"http://127.0.0.1:{webs[service + '-web']}/ops/handled/{event_id}"

        def handled(u: str = url) -> bool:
            r = requests.get(u, headers=admin, timeout=5)
            return r.status_code == 200 and r.json()[0]["event_type"] == "system.ping"
        check(until(handled, 120, 1), f"{service}-worker consumed the ping through compose's "
                                      "Kafka")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
