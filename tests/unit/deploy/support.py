"""What the deployment tests compare the files against: the project's own services, ports,
topics, and the environment variables its code reads (found by envscan)."""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shared import services as registry
from tests.unit.deploy.envscan import EnvReads, scan_files

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
ROLES = ("web", "worker")
WORKER_METRICS_PORT = 9100
ENTRYPOINT = "/app/deploy/docker/entrypoint.sh"

# Variables the code reads that a deployed container must NOT need, each with why:
TEST_OR_DEV_ONLY = {
    "PAINCARE_VAR",            # the SQLite/.var folder of one machine; containers set DATABASE_URL
    "PAINCARE_TEST_BACKENDS",  # which databases the test suite runs on
    "PYTHON",                  # the interpreter scripts/bootstrap.sh uses
    "CI",                      # set by the CI runner
    "DATABASE_BACKEND",        # `make up` on PostgreSQL (scripts/clinic.py)
    "DEMO",                    # `make up` loads demo data
    "BROWSER",                 # bootstrap installs Chromium for the browser tests
}
# Variables read by code that only one role runs, although the file is shared by both:
ROLE_ONLY = {
    "PROMETHEUS_MULTIPROC_DIR": {"web"},  # gunicorn's workers sum their metrics; the worker
                                          # is one process and serves its own registry
    "WORKER_METRICS_PORT": {"worker"},    # shared/worker.py: the worker's metrics port
}
# Files read by one role only (everything else in shared/ and services/<name>/ counts for both)
ROLE_FILES = {
    "deploy/gunicorn.conf.py": {"web"},
    "shared/worker.py": {"worker"},
}
# Files that never run in a deployed container (the one-machine launcher of `make up`)
DEV_FILES = {"shared/launcher.py"}


def services() -> list[str]:
    """Every service the deployment must run: the registry's (shared/services.py), each
    checked to have its package, and no unregistered package beside them."""
    return sorted(registry.require_packages())


def roles(service: str) -> tuple[str, ...]:
    """A service's roles: web and worker, or web alone for a service with no worker
    (the clinic console: pages over the other services' APIs, no consumers, no outbox)."""
    return ROLES if registry.service(service).worker else ("web",)


def has_database(service: str) -> bool:
    """Whether the service owns a database (the registry says; the console has none)."""
    return registry.service(service).database


# Services that read other services' web APIs (and so may reach their web ports), and
# whose: the dashboard probes every service; the console works over the clinic's four
# APIs; the FHIR gateway hands referrals to the referrals API.
API_READS: dict[str, tuple[str, ...]] = {
    "dashboard": tuple(s for s in registry.WITH_WORKER if s != "dashboard"),
    "console": ("referrals", "scheduling", "notes", "notifier"),
    "fhir": ("referrals",),
}
API_CLIENTS = tuple(API_READS)


@dataclass(frozen=True)
class Required:
    names: frozenset[str]      # each must be set
    patterns: frozenset[str]   # each regex must match at least one set name


def _reads_by_role(service: str) -> dict[str, EnvReads]:
    files = sorted((ROOT / "shared").rglob("*.py"))
    files += sorted((ROOT / "services" / service).rglob("*.py"))
    files.append(ROOT / "deploy" / "gunicorn.conf.py")
    by_role = {role: EnvReads() for role in ROLES}
    for path in files:
        rel = str(path.relative_to(ROOT))
        if rel in DEV_FILES:
            continue
        reads = scan_files([path], ROOT)
        for role in ROLE_FILES.get(rel, set(ROLES)):
            by_role[role].merge(reads)
    return by_role


@functools.cache
def required_env(service: str, role: str) -> Required:
    """What a container of this service and role must have in its environment."""
    reads = _reads_by_role(service)[role]
    names = {n for n in reads.names
             if n not in TEST_OR_DEV_ONLY and role in ROLE_ONLY.get(n, {role})}
    if not has_database(service):  # Settings reads them for every service; none is opened
        names.discard("DATABASE_URL")
        names.discard("MIGRATE_ON_START")
        reads.patterns.pop("[A-Z0-9_]+_DATABASE_URL", None)
    patterns = set()
    for regex in reads.patterns:
        # f"{prefix}_DATABASE_URL" falls back to DATABASE_URL, itself required: a
        # pattern whose literal tail is a required name is covered by that name.
        tail = re.sub(r"^(\[A-Z0-9_\]\+)+_", "", regex)
        if tail != regex and tail.replace("\\", "") in names:
            continue
        patterns.add(regex)
    return Required(frozenset(names), frozenset(patterns))


def missing(required: Required, present: set[str]) -> list[str]:
    gaps = sorted(required.names - present)
    gaps += [f"(a name matching {p})" for p in sorted(required.patterns)
             if not any(re.fullmatch(p, name) for name in present)]
    return gaps


# --- files -------------------------------------------------------------------------------

@functools.cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def kustomize_build(overlay: Path) -> list[dict[str, Any]]:
    return [dict(d) for d in _kustomize_build(str(overlay))]


@functools.cache
def _kustomize_build(overlay: str) -> tuple[dict[str, Any], ...]:
    proc = subprocess.run([str(ROOT / "scripts" / "kustomize.sh"), "build", overlay],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"kustomize build {overlay} failed:\n{proc.stderr}")
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def overlays() -> list[Path]:
    return sorted(p for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())


def web_command(service: str) -> list[str]:
    return ["gunicorn", "-c", "deploy/gunicorn.conf.py", f"services.{service}.app:create_app()"]


def worker_command(service: str) -> list[str]:
    return ["python", "-m", f"services.{service}.worker"]


def port(service: str) -> int:
    return registry.service(service).port
