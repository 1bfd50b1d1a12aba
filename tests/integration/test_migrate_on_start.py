"""MIGRATE_ON_START on both databases: true migrates as the app starts (one machine,
tests); false leaves the work to the migration step (compose's `migrate`, the k8s Jobs)
and keeps the web out of readiness, naming the revisions, until the database is at head."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from importlib import import_module

import pytest
from flask import Flask
from sqlalchemy import create_engine, inspect

from shared.config import ROOT, Settings
from shared.launcher import ServiceProcesses
from shared.migrations import _config
from shared.runtime import Runtime
from shared.web import PROBLEM
from shared.worker import await_schema

SERVICES = ["referrals", "scheduling"]  # one revision; two in a chain


def _app(service: str, settings: Settings) -> tuple[Flask, Runtime]:
    runtime = import_module(f"services.{service}.wiring").build_runtime(settings)
    return import_module(f"services.{service}.app").create_app(runtime=runtime), runtime


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _heads(runtime: Runtime) -> str:
    from alembic.script import ScriptDirectory

    return ",".join(sorted(ScriptDirectory.from_config(_config(runtime)).get_heads()))


def _migrate_step(service: str, url: str) -> None:
    """The migration step as compose and the k8s Jobs run it, in its own process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env[f"{service.upper()}_DATABASE_URL"] = url
    subprocess.run([sys.executable, "-m", "shared.migrations", "upgrade", service],
                   env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)


@pytest.mark.parametrize("service", SERVICES)
def test_off_on_an_empty_database_is_unready_until_the_migration_step(
        service: str, settings_for: Callable[..., Settings], database_url: str) -> None:
    app, runtime = _app(service, settings_for(service, migrate_on_start=False))
    client = app.test_client()

    resp = client.get("/readyz")
    assert resp.status_code == 503 and resp.mimetype == PROBLEM
    body = resp.get_json()
    assert body["detail"] == (f"database at revision none (empty), code expects "
                              f"{_heads(runtime)}; run the migration")
    assert body["failures"]["schema"] == body["detail"]  # the dashboard shows failures
    assert resp.headers["Retry-After"]
    assert client.get("/healthz").status_code == 200, "alive: not restarted, only unready"
    assert _tables(database_url) == set(), "the app only looked"

    _migrate_step(service, database_url)
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["status"] == "ready"


@pytest.mark.parametrize("service", ["scheduling"])
def test_off_names_an_older_revision_and_stays_ready_past_a_newer_one(
        service: str, settings_for: Callable[..., Settings], database_url: str) -> None:
    from alembic import command

    app, runtime = _app(service, settings_for(service, migrate_on_start=False))
    with runtime.db.engine.begin() as conn:  # the previous release's schema
        cfg = _config(runtime)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "d503af7b3dea")
    body = app.test_client().get("/readyz").get_json()
    assert body["detail"] == (f"database at revision d503af7b3dea, code expects "
                              f"{_heads(runtime)}; run the migration")
    _migrate_step(service, database_url)
    assert app.test_client().get("/readyz").status_code == 200
    # a later release's Job moves the database past this code's head mid-rollout: the
    # pods already serving stay in their Service
    with runtime.db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'from_the_future'")
    assert app.test_client().get("/readyz").status_code == 200


@pytest.mark.parametrize("service", SERVICES)
def test_on_migrates_as_today(service: str, settings_for: Callable[..., Settings],
                              database_url: str) -> None:
    settings = settings_for(service)
    assert settings.migrate_on_start, "the default: `make up` and tests migrate as before"
    app, runtime = _app(service, settings)
    assert set(runtime.metadata.tables) <= _tables(database_url)
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 200, resp.get_json()
    assert "schema" not in [c.__name__ for c in runtime.ready_checks()]


def test_the_worker_waits_for_the_migration_step(settings_for: Callable[..., Settings],
                                                 database_url: str) -> None:
    runtime = import_module("services.referrals.wiring").build_runtime(
        settings_for("referrals", migrate_on_start=False))
    runtime.create_schema()
    assert _tables(database_url) == set()
    waiter = threading.Thread(target=await_schema, args=(runtime,),
                              kwargs={"poll_seconds": 0.05}, daemon=True)
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive(), "no worker loop starts before the schema is at head"
    _migrate_step("referrals", database_url)
    waiter.join(30)
    assert not waiter.is_alive()


def test_the_launcher_migrates_once_then_its_processes_only_check(
        database_url: str, tmp_path) -> None:
    procs = ServiceProcesses("referrals", 0, {"DATABASE_URL": database_url}, tmp_path)
    procs.migrate()
    assert procs.env["MIGRATE_ON_START"] == "false"
    assert _tables(database_url) >= {"referrals", "alembic_version"}
    explicit = ServiceProcesses("referrals", 0, {"DATABASE_URL": database_url,
                                                 "MIGRATE_ON_START": "true"}, tmp_path)
    explicit.migrate()
    assert explicit.env["MIGRATE_ON_START"] == "true", "a caller's choice wins"
