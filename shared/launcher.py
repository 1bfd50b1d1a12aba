"""Starts a service's processes the way production does (web under gunicorn, worker as
its own process), for `make up` and the end-to-end tests alike."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from shared import services as registry
from shared.config import ROOT

PORTS = registry.PORTS
PYTHON = str(ROOT / ".venv/bin/python") if (ROOT / ".venv/bin/python").exists() \
    else sys.executable


def available_services() -> list[str]:
    """Every registered service (shared/services.py); raises when one has no package in
    this checkout, so that what iterates it fails rather than shrinking."""
    return list(registry.require_packages())


def has_worker(service: str) -> bool:
    return registry.service(service).worker


@dataclass
class ServiceProcesses:
    """One service's web and worker processes, with their own environment and logs."""

    service: str
    port: int
    env: dict[str, str]
    log_dir: Path
    web_workers: int = 2
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.setdefault("PYTHONPATH", str(ROOT))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def migrate(self) -> None:
        """The migration step, once, as in production: the web and worker processes
        started after it only check the revision (MIGRATE_ON_START=false) instead of
        each gunicorn worker racing for the migration lock. A caller's explicit
        MIGRATE_ON_START in `env` wins."""
        subprocess.run([PYTHON, "-m", "shared.migrations", "upgrade", self.service],
                       env=self._environ(), cwd=ROOT, check=True, capture_output=True)
        self.env.setdefault("MIGRATE_ON_START", "false")

    def start_web(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = self._environ()
        env["BIND"] = f"127.0.0.1:{self.port}"
        env["WEB_CONCURRENCY"] = str(self.web_workers)
        cmd = [PYTHON, "-m", "gunicorn", "-c", str(ROOT / "deploy/gunicorn.conf.py"),
               f"services.{self.service}.app:create_app()"]
        self.processes["web"] = subprocess.Popen(
            cmd, env=env, cwd=ROOT, start_new_session=True,
            stdout=open(self.log_dir / f"{self.service}-web.log", "ab"),
            stderr=subprocess.STDOUT)

    def start_worker(self) -> None:
        if not has_worker(self.service):
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes["worker"] = subprocess.Popen(
            [PYTHON, "-m", f"services.{self.service}.worker"], env=self._environ(), cwd=ROOT,
            start_new_session=True,
            stdout=open(self.log_dir / f"{self.service}-worker.log", "ab"),
            stderr=subprocess.STDOUT)

    def start(self) -> ServiceProcesses:
        self.migrate()
        self.start_web()
        self.start_worker()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for role, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{self.service} {role} exited with {proc.returncode}; "
                                       f"see {self.log_dir}")
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.service} not ready at {self.url} in {timeout}s")

    def kill(self, role: str, sig: int = signal.SIGKILL) -> None:
        proc = self.processes.get(role)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(30)

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc in self.processes.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
