"""One service's wiring in one place: its settings, database, messaging tables, outbox,
inbox and audit trail. The app factory and the worker both build on it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.orm import Session

from shared import metrics
from shared.audit import AuditTrail
from shared.config import Settings
from shared.db import Database
from shared.events import Envelope, new_event
from shared.kafka import add_relay_lease_table, kafka_reachable
from shared.messaging import Inbox, MessagingTables, Outbox, add_messaging_tables

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings, metadata: MetaData, *, topic: str,
                 migrations: Path) -> None:
        """`metadata` is the service's own; the shared tables are added to it once.
        `migrations` is the folder of the service's Alembic revisions."""
        self.settings = settings
        self.migrations = migrations
        self.metadata = metadata
        self.topic = topic
        if "outbox" not in metadata.tables:
            add_messaging_tables(metadata)
            add_relay_lease_table(metadata)
        self.tables = MessagingTables(metadata.tables["outbox"], metadata.tables["inbox"],
                                      metadata.tables["audit_log"])
        self.lease = metadata.tables["outbox_relay_lease"]
        self.db = Database(settings.database_url)
        self.outbox = Outbox(self.tables)
        self.inbox = Inbox(self.tables)
        self.audit = AuditTrail(self.tables)
        self._schema_at_head = False

    def emit(self, session: Session, event_type: str, payload: dict[str, Any], *, key: str,
             version: int = 1, topic: str | None = None) -> Envelope:
        """Validate, wrap and stage an event in the caller's transaction. It goes to the
        service's own topic unless another is named (system events)."""
        envelope = new_event(event_type, payload, producer=self.settings.service,
                             version=version)
        self.outbox.add(session, envelope, topic=topic or self.topic, key=key)
        return envelope

    def create_schema(self) -> None:
        """Bring the database to the newest migration (Alembic), unless MIGRATE_ON_START
        is false: there a migration step runs before the processes start, and each one
        racing for its lock would slow scale-ups and hide a failed migration behind
        serving pods, so the process only looks and readiness waits for the head."""
        from shared.migrations import upgrade

        if self.settings.migrate_on_start:
            upgrade(self)
            self._schema_at_head = True
            return
        try:
            problem = self.schema_problem()
        except Exception as exc:  # the database may come later; readiness says so
            problem = f"database not reachable: {exc!r}"[:300]
        if problem:
            log.warning("schema not at head", extra={"problem": problem})

    def schema_problem(self) -> str | None:
        """None once the database is at the code's head. Remembered when it is: a later
        release's migration moves the database past this code's head mid-rollout, and
        that must not take serving pods out of their Service."""
        if self._schema_at_head:
            return None
        from shared.migrations import schema_problem

        problem = schema_problem(self)
        self._schema_at_head = problem is None
        return problem

    def ready_checks(self) -> list[Callable[[], None]]:
        """What a web pod needs to serve: its database (and, when it does not migrate,
        the schema at head). Not Kafka: writes stage their events in the outbox, so a
        broker outage must not take every API out of its Service; Kafka's state is in
        /metrics (paincare_kafka_reachable) and on the dashboard."""
        def database() -> None:
            self.db.ping()

        def schema() -> None:
            problem = self.schema_problem()
            if problem:
                raise RuntimeError(problem)

        return [database] if self.settings.migrate_on_start else [database, schema]

    def refresh_metrics(self) -> None:
        """Figures read at scrape time rather than counted: the outbox backlog and whether
        Kafka answers (readiness leaves Kafka out, so it shows here)."""
        try:
            with self.db.transaction() as s:
                metrics.OUTBOX_BACKLOG.labels(self.settings.service).set(self.outbox.backlog(s))
        except Exception:  # a scrape must answer even while the database is away
            pass
        if self.settings.kafka_enabled:
            metrics.KAFKA_REACHABLE.labels(self.settings.service).set(
                1 if kafka_reachable(self.settings) else 0)
