"""The messaging tables (outbox, inbox, audit log, relay lease) come from one shared
revision (`shared/migrations_messaging/`) that every service's first revision revises.

A database made before that (each first revision then created its own copy of the
tables) is at a service revision whose history now starts at the shared one, so Alembic
treats the shared revision as applied: the upgrade must keep every messaging row and end
with the same schema as a fresh database. Both on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from importlib import import_module
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, insert, inspect, select, text

from shared import migrations
from shared.config import Settings
from shared.kafka import add_relay_lease_table
from shared.messaging import add_messaging_tables
from shared.migrations import MESSAGING_REVISION, _config
from shared.runtime import Runtime
from shared.services import WITH_DATABASE

MESSAGING_TABLES = ("audit_log", "inbox", "outbox", "outbox_relay_lease")
NOW = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)


def _runtime(service: str, url: str) -> Runtime:
    settings = Settings.for_service(service, database_url=url, kafka_enabled=False,
                                    migrate_on_start=False)
    return import_module(f"services.{service}.wiring").build_runtime(settings)


def _first_revision(runtime: Runtime) -> str:
    script = ScriptDirectory.from_config(_config(runtime))
    [first] = [r.revision for r in script.walk_revisions()
               if r.down_revision == MESSAGING_REVISION]
    return first


def _schema(engine: Engine, tables: tuple[str, ...] | None = None) -> dict[str, Any]:
    """What a database holds, as the inspector reads it (names, types, keys, indexes)."""
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for t in sorted(tables or insp.get_table_names()):
        out[t] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
            "pk": insp.get_pk_constraint(t)["constrained_columns"],
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in insp.get_indexes(t)),
            "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(t)),
            "foreign_keys": sorted((tuple(f["constrained_columns"]), f["referred_table"])
                                   for f in insp.get_foreign_keys(t)),
        }
    return out


def _version(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))}


def _rows(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    with runtime.db.engine.connect() as conn:
        return {name: sorted(tuple(r) for r in conn.execute(select(runtime.metadata.tables[name])))
                for name in MESSAGING_TABLES}


def _write_messages(runtime: Runtime) -> None:
    """What a running service leaves in its messaging tables: an event published and one
    waiting, a handled event, an audit record and the relay's lease."""
    tables = runtime.metadata.tables
    with runtime.db.engine.begin() as conn:
        conn.execute(insert(tables["outbox"]), [
            dict(event_id="0b6e5a38-1c0e-4f4e-9a52-8d1f1e0c0001", event_type="referral.accepted",
                 topic="referrals.events", message_key="ref-1", body=b'{"type":"x"}',
                 created_at=NOW, published_at=NOW, attempts=1),
            dict(event_id="0b6e5a38-1c0e-4f4e-9a52-8d1f1e0c0002", event_type="system.ping",
                 topic="system.events", message_key="ping-1", body=b'{"type":"y"}',
                 created_at=NOW, published_at=None, attempts=0)])
        conn.execute(insert(tables["inbox"]).values(
            consumer="care_team", event_id="5d1c1f0e-3c8e-4a56-b1c0-7e9a7e3f0003",
            event_type="appointment.booked", handled_at=NOW))
        conn.execute(insert(tables["audit_log"]).values(
            at=NOW, actor="dr-pain", actor_role="specialist", action="read",
            resource="note", resource_id="note-1", patient_id="pat-1", outcome="allowed",
            reason=None, correlation_id="corr-1"))
        conn.execute(insert(tables["outbox_relay_lease"]).values(
            name="relay", holder="worker-1", expires_at=NOW))


@pytest.mark.parametrize("service", WITH_DATABASE)
def test_a_database_made_before_the_shared_revision_upgrades_with_its_messages(
        service: str, new_database_url: Callable[[str], str]) -> None:
    old = _runtime(service, new_database_url(f"{service}-old"))
    first = _first_revision(old)
    with old.db.engine.begin() as conn:   # as the first revision alone left it
        cfg = _config(old)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, first)
    assert _version(old.db.engine) == {first}
    assert set(MESSAGING_TABLES) <= set(inspect(old.db.engine).get_table_names())
    _write_messages(old)
    before = _rows(old)

    migrations.upgrade(old)

    heads = set(ScriptDirectory.from_config(_config(old)).get_heads())
    assert _version(old.db.engine) == heads
    assert MESSAGING_REVISION not in heads
    assert migrations.schema_problem(old) is None
    assert _rows(old) == before
    assert len(before["outbox"]) == 2 and len(before["inbox"]) == 1

    fresh = _runtime(service, new_database_url(f"{service}-fresh"))
    migrations.upgrade(fresh)
    assert _version(fresh.db.engine) == heads
    assert _schema(fresh.db.engine) == _schema(old.db.engine)
    for runtime in (old, fresh):
        runtime.db.engine.dispose()


def test_the_shared_revision_makes_the_tables_shared_messaging_declares(
        new_database_url: Callable[[str], str]) -> None:
    """The tables the shared revision creates are those the code writes to."""
    fresh = _runtime("referrals", new_database_url("migrated"))
    migrations.upgrade(fresh)
    declared = _runtime("referrals", new_database_url("declared"))
    metadata = MetaData()
    add_messaging_tables(metadata)
    add_relay_lease_table(metadata)
    metadata.create_all(declared.db.engine)
    assert _schema(fresh.db.engine, MESSAGING_TABLES) == \
        _schema(declared.db.engine, MESSAGING_TABLES)
    for runtime in (fresh, declared):
        runtime.db.engine.dispose()


@pytest.mark.parametrize("service", WITH_DATABASE)
def test_every_history_starts_at_the_shared_revision_and_declares_no_copy(service: str) -> None:
    runtime = _runtime(service, "sqlite://")
    script = ScriptDirectory.from_config(_config(runtime))
    assert script.get_bases() == [MESSAGING_REVISION]
    for path in sorted(runtime.migrations.glob("*.py")):
        source = path.read_text()
        for table in MESSAGING_TABLES:
            for quote in "'\"":
                assert f"create_table({quote}{table}{quote}" not in source, \
                    f"{path.name} creates {table} again"
