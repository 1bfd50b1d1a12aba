"""The transactional outbox and the idempotent inbox (as in eventuate-tram).

A domain write and the events it causes commit in one transaction (`Outbox.add`); the
relay publishes them later. A consumer records each handled event id in the same
transaction as its effect (`Inbox.first_time`), so a redelivered event changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shared.events import Envelope

_BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class MessagingTables:
    outbox: Table
    inbox: Table
    audit: Table


def add_messaging_tables(metadata: MetaData) -> MessagingTables:
    """Every service's database holds these three tables beside its own."""
    outbox = Table(
        "outbox", metadata,
        Column("seq", _BigId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(80), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("message_key", String(200), nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True, index=True),
        Column("attempts", Integer, nullable=False, default=0),
    )
    inbox = Table(
        "inbox", metadata,
        Column("consumer", String(80), nullable=False),
        Column("event_id", String(36), nullable=False),
        Column("event_type", String(80), nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox"),
    )
    audit = Table(
        "audit_log", metadata,
        Column("id", _BigId, primary_key=True, autoincrement=True),
        Column("at", DateTime(timezone=True), nullable=False, index=True),
        Column("actor", String(120), nullable=False, index=True),
        Column("actor_role", String(40), nullable=False),
        Column("action", String(60), nullable=False),
        Column("resource", String(60), nullable=False),
        Column("resource_id", String(64), nullable=True),
        Column("patient_id", String(64), nullable=True, index=True),
        Column("outcome", String(20), nullable=False),
        Column("reason", Text, nullable=True),
        Column("correlation_id", String(64), nullable=True),
    )
    return MessagingTables(outbox, inbox, audit)


class Outbox:
    def __init__(self, tables: MessagingTables) -> None:
        self.table = tables.outbox

    def add(self, session: Session, envelope: Envelope, *, topic: str, key: str) -> None:
        """Stage an event in the caller's transaction; it is published only if it commits."""
        session.execute(insert(self.table).values(
            event_id=envelope.id,
            event_type=envelope.type,
            topic=topic,
            message_key=key,
            body=envelope.to_bytes(),
            created_at=utcnow(),
            attempts=0,
        ))

    def backlog(self, session: Session) -> int:
        return session.execute(
            select(func.count()).select_from(self.table)
            .where(self.table.c.published_at.is_(None))).scalar_one()


class Inbox:
    def __init__(self, tables: MessagingTables) -> None:
        self.table = tables.inbox

    def first_time(self, session: Session, consumer: str, envelope: Envelope) -> bool:
        """Record that `consumer` handles this event; False if it already has.

        The insert holds the row's lock until the caller's transaction ends, so two
        workers handed the same event cannot both apply it.
        """
        values = dict(consumer=consumer, event_id=envelope.id, event_type=envelope.type,
                      handled_at=utcnow())
        dialect = session.get_bind().dialect.name
        stmt = (postgresql.insert(self.table) if dialect == "postgresql"
                else sqlite.insert(self.table)).values(**values).on_conflict_do_nothing()
        # RETURNING, not rowcount: psycopg reports -1 for a skipped ON CONFLICT insert
        return session.execute(stmt.returning(self.table.c.event_id)).first() is not None
