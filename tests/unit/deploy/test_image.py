"""The Dockerfile and what it puts in the image, checked without a Docker engine: its
stages and user, its build context, and the entrypoint, probe and gunicorn settings run
here as the container would run them."""

from __future__ import annotations

import fnmatch
import os
import re
import runpy
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.unit.deploy import support

DOCKERFILE = support.ROOT / "Dockerfile"
ENTRYPOINT = support.ROOT / "deploy" / "docker" / "entrypoint.sh"
PROBE = support.ROOT / "deploy" / "docker" / "probe.py"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for op, arg in _instructions():
        if op == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((op, arg))
    return stages


def _dockerignore() -> list[str]:
    lines = (support.ROOT / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _ignored(path: str) -> bool:
    return any(fnmatch.fnmatch(path, pat) or path.startswith(pat.rstrip("/") + "/")
               for pat in _dockerignore())


def test_slim_python_base_and_a_non_root_runtime_stage() -> None:
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", DOCKERFILE.read_text(), re.M))
    stages = _stages()
    assert len(stages) >= 2, "a build stage and a runtime stage"
    for stage in stages:
        base = stage[0][1].split()[0]
        base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*@sha256:[0-9a-f]{64}", base), \
            f"{base}: a slim Python 3.11, pinned by digest (a tag moves)"
    runtime = stages[-1]
    users = [arg for op, arg in runtime if op == "USER"]
    assert users, "the runtime stage names its user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, "numeric and not root (runAsNonRoot can check it)"
    entry = next(arg for op, arg in runtime if op == "ENTRYPOINT")
    assert entry == f'["{support.ENTRYPOINT}"]', "the path compose and k8s rely on"
    workdir = [arg for op, arg in runtime if op == "WORKDIR"][-1]
    assert support.ENTRYPOINT.startswith(workdir + "/"), "probes run /app/deploy/docker/..."


def test_only_runtime_dependencies_are_installed() -> None:
    text = DOCKERFILE.read_text()
    installs = re.findall(r"pip install[^\n&]*", text)
    assert installs and not any("[dev]" in i or "-e " in i for i in installs)
    assert "PIP_NO_CACHE_DIR=1" in text or all("--no-cache-dir" in i for i in installs)
    runtime_runs = [arg for op, arg in _stages()[-1] if op == "RUN"]
    assert not any(t in arg for arg in runtime_runs for t in ("apt-get install", "pip install")), \
        "the runtime stage installs nothing: it copies the build stage's virtualenv"
    assert any(op == "COPY" and "--from=build /opt/venv" in arg for op, arg in _stages()[-1])


def test_everything_copied_exists_and_reaches_the_build_context() -> None:
    copied: list[str] = []
    for op, arg in _instructions():
        if op == "COPY" and "--from=" not in arg:
            parts = [p for p in arg.split() if not p.startswith("--")]
            copied += parts[:-1]
    assert {"shared", "services", "requirements.lock", "deploy/gunicorn.conf.py"} <= set(copied)
    for source in copied:
        assert (support.ROOT / source).exists(), source
        assert not _ignored(source), f".dockerignore drops {source}"
    # and the commands of compose and k8s find what they name in the image
    assert "deploy/docker/probe.py" in copied and "deploy/docker/entrypoint.sh" in copied
    for heavy in (".git", ".venv", ".cache", ".var", "tests"):
        assert _ignored(heavy), f"{heavy} should stay out of the build context"


def test_entrypoint_empties_the_metrics_dir_and_execs_the_command(tmp_path: Path) -> None:
    metrics = tmp_path / "prometheus"
    metrics.mkdir()
    (metrics / "counter_123.db").write_bytes(b"stale")
    assert os.access(ENTRYPOINT, os.X_OK)
    env = {"PATH": os.environ["PATH"], "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    proc = subprocess.run([str(ENTRYPOINT), "sh", "-c", 'ls -A "$0"; exit 7', str(metrics)],
                          env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 7, "the command's exit status is the container's"
    assert proc.stdout == "" and metrics.is_dir() and not any(metrics.iterdir())
    # without the variable it only runs the command
    proc = subprocess.run([str(ENTRYPOINT), "echo", "ran"], env={"PATH": os.environ["PATH"]},
                          capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout) == (0, "ran\n")
    assert re.search(r'^exec "\$@"$', ENTRYPOINT.read_text(), re.M), "exec: signals reach it"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _probe(url: str) -> int:
    return subprocess.run([sys.executable, str(PROBE), url], capture_output=True,
                          timeout=30).returncode


def test_probe_passes_on_2xx_and_fails_otherwise(http_server: str) -> None:
    assert _probe(f"{http_server}/ok") == 0
    assert _probe(f"{http_server}/not-ready") == 1
    closed = http_server.rsplit(":", 1)[0] + ":9"  # nothing listens on the discard port
    assert _probe(f"{closed}/ok") == 1


def _gunicorn_settings(env: dict[str, str]) -> dict[str, object]:
    saved = dict(os.environ)
    try:
        for key in ("WEB_CONCURRENCY", "WEB_THREADS", "WEB_TIMEOUT", "WEB_GRACEFUL_TIMEOUT",
                    "BIND"):
            os.environ.pop(key, None)
        os.environ.update(env)
        return runpy.run_path(str(support.ROOT / "deploy" / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_gunicorn_workers_follow_the_cpus_unless_told_and_shut_down_gracefully() -> None:
    default = _gunicorn_settings({})
    assert default["workers"] == (os.cpu_count() or 1) * 2 + 1
    assert default["timeout"] > 0 and default["graceful_timeout"] > 0
    told = _gunicorn_settings({"WEB_CONCURRENCY": "3", "WEB_GRACEFUL_TIMEOUT": "20"})
    assert told["workers"] == 3
    # compose waits longer than gunicorn's graceful shutdown before it kills a container
    compose = support.compose()
    for service in support.services():
        c = compose["services"][f"{service}-web"]
        grace = int(str(c["stop_grace_period"]).rstrip("s"))
        assert grace > int(c["environment"]["WEB_GRACEFUL_TIMEOUT"])


@pytest.mark.parametrize("script", ["scripts/kustomize.sh", "deploy/docker/postgres-init.sh",
                                    "deploy/docker/entrypoint.sh"])
def test_shell_scripts_parse_and_are_executable(script: str) -> None:
    path = support.ROOT / script
    assert os.access(path, os.X_OK)
    shell = "sh" if path.read_text().startswith("#!/bin/sh") else "bash"
    assert subprocess.run([shell, "-n", str(path)], timeout=30).returncode == 0
