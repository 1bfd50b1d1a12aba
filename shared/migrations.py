"""Per-service schema migrations with Alembic.

Each service keeps its revisions in `services/<name>/migrations/`; one shared env.py
runs them on the service's own connection. The messaging tables every service holds
(outbox, inbox, audit log, relay lease) come from one shared revision,
`shared/migrations_messaging/`, that each service's first revision revises. Make a new
revision from the models with `python -m shared.migrations revision SERVICE "what changed"`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

if TYPE_CHECKING:
    from shared.runtime import Runtime

SCRIPT_LOCATION = Path(__file__).resolve().parent / "alembic"
MESSAGING_MIGRATIONS = Path(__file__).resolve().parent / "migrations_messaging"
MESSAGING_REVISION = "messaging_1"  # the base of every service's history


def _config(runtime: Runtime) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("version_locations",
                        os.pathsep.join((str(MESSAGING_MIGRATIONS), str(runtime.migrations))))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["target_metadata"] = runtime.metadata
    return cfg


def _has_revisions(runtime: Runtime) -> bool:
    return runtime.migrations.is_dir() and any(runtime.migrations.glob("*.py"))


MIGRATION_LOCK = 7_270_2024  # one advisory lock id for "a migration runs here"


def upgrade(runtime: Runtime) -> None:
    """Bring the schema to head. Several processes may start at once (gunicorn workers,
    the worker, a migration Job): PostgreSQL serialises them with an advisory lock held
    for the transaction; SQLite's BEGIN IMMEDIATE already does."""
    with runtime.db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
        if not _has_revisions(runtime):
            runtime.metadata.create_all(conn)
            return
        cfg = _config(runtime)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _named(revisions: set[str]) -> str:
    return ",".join(sorted(revisions)) or "none (empty)"


def schema_problem(runtime: Runtime) -> str | None:
    """Why the database is not at the code's head revision, or None when it is. Read-only:
    with MIGRATE_ON_START=false a process only looks, the migration step does the work."""
    with runtime.db.engine.connect() as conn:
        if not _has_revisions(runtime):
            missing = set(runtime.metadata.tables) - set(inspect(conn).get_table_names())
            return (f"database lacks tables {', '.join(sorted(missing))}; run the migration"
                    if missing else None)
        current = set(MigrationContext.configure(conn).get_current_heads())
    heads = set(ScriptDirectory.from_config(_config(runtime)).get_heads())
    if current == heads:
        return None
    return f"database at revision {_named(current)}, code expects {_named(heads)}; " \
           "run the migration"


def revision(runtime: Runtime, message: str) -> None:
    runtime.migrations.mkdir(parents=True, exist_ok=True)
    cfg = _config(runtime)
    with runtime.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        # to head first, the shared messaging revision included: a new service's first
        # revision then revises it and leaves the messaging tables to it
        command.upgrade(cfg, "head")
        command.revision(cfg, message=message, autogenerate=True,
                         version_path=str(runtime.migrations))


def _runtime_for(service: str, database_url: str | None = None) -> Runtime:
    from importlib import import_module

    from shared.config import Settings

    module = import_module(f"services.{service}.wiring")
    settings = Settings.for_service(service)
    if database_url:
        from dataclasses import replace

        settings = replace(settings, database_url=database_url)
    runtime: Runtime = module.build_runtime(settings)
    return runtime


def wait_for_database(runtime: Runtime, seconds: float, *,
                      clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep) -> None:
    """A migration step may start while its database server is still initialising
    (compose's postgres answers on its socket before TCP): retry the connection for a
    bounded time, then fail with the last error so the step shows as failed."""
    deadline = clock() + seconds
    while True:
        try:
            runtime.db.ping()
            return
        except Exception as exc:
            if clock() >= deadline:
                raise TimeoutError(f"database not reachable after {seconds:g} s: "
                                   f"{exc!r}"[:500]) from exc
            print(f"waiting for the database: {type(exc).__name__}", file=sys.stderr)
            sleep(1.0)


def main(argv: list[str]) -> int:
    from shared.topics import SERVICES

    wait = 0.0
    if "--wait" in argv:  # upgrade SERVICE|all --wait SECONDS
        at = argv.index("--wait")
        wait = float(argv[at + 1])
        argv = argv[:at] + argv[at + 2:]
    if len(argv) >= 2 and argv[0] == "upgrade":
        names = SERVICES if argv[1] == "all" else [argv[1]]
        for name in names:
            try:
                runtime = _runtime_for(name)
            except ModuleNotFoundError:
                continue
            if wait:
                wait_for_database(runtime, wait)
            upgrade(runtime)
            print(f"migrated {name}")
        return 0
    if len(argv) == 3 and argv[0] == "revision":
        with tempfile.TemporaryDirectory() as tmp:
            revision(_runtime_for(argv[1], f"sqlite:///{tmp}/autogen.db"), argv[2])
        return 0
    print("usage: python -m shared.migrations upgrade SERVICE|all [--wait SECONDS]"
          " | revision SERVICE MESSAGE")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
