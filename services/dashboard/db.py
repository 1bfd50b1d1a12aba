"""The dashboard's own tables: its read model of the clinic, built from events. It never
reads another service's database."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session

from services.dashboard import domain
from shared import availability as av


class Base(DeclarativeBase):
    pass


meta = Table(
    "dash_read_model", Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("rebuilt_at", DateTime(timezone=True), nullable=True),
)
referrals = Table(
    "dash_referrals", Base.metadata,
    Column("referral_id", String(64), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("priority", String(20), nullable=True),
    Column("condition", String(60), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("due_by", Date, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
appointments = Table(
    "dash_appointments", Base.metadata,
    Column("appointment_id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("referral_id", String(64), nullable=True, index=True),
    Column("provider_id", String(64), nullable=False),
    Column("provider_name", String(200), nullable=False),
    Column("discipline", String(40), nullable=False),
    Column("start", DateTime(timezone=True), nullable=False, index=True),
    Column("end", DateTime(timezone=True), nullable=False),
    Column("status", String(20), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
providers = Table(
    "dash_providers", Base.metadata,
    Column("provider_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("discipline", String(40), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
capacities = Table(
    "dash_provider_capacity", Base.metadata,
    Column("provider_id", String(64), primary_key=True),
    Column("discipline", String(40), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("blocks", JSON, nullable=False),
    Column("closed", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
notifications = Table(
    "dash_notifications", Base.metadata,
    Column("notification_id", String(64), primary_key=True),
    Column("outcome", String(10), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("event_type", String(80), nullable=False),
    Column("reason", String(1000), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

breach_risks = Table(
    "dash_breach_risks", Base.metadata,
    Column("referral_id", String(64), primary_key=True),
    Column("reason", String(30), nullable=False),
    Column("priority", String(20), nullable=True),
    Column("due_by", Date, nullable=False),
    Column("first_visit_at", DateTime(timezone=True), nullable=True),
    Column("detected_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

safety_alerts = Table(
    "dash_safety_alerts", Base.metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("raised_at", DateTime(timezone=True), nullable=True),
    Column("escalations", Integer, nullable=False),
    Column("acknowledged_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

break_glass = Table(
    "dash_break_glass", Base.metadata,
    Column("access_id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("actor_id", String(120), nullable=False),
    Column("discipline", String(40), nullable=True),
    Column("opened_at", DateTime(timezone=True), nullable=False, index=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

TABLES: dict[type, Table] = {
    domain.Referral: referrals, domain.Appointment: appointments,
    domain.Provider: providers, domain.Capacity: capacities,
    domain.Notification: notifications, domain.BreachRisk: breach_risks,
    domain.SafetyAlert: safety_alerts, domain.BreakGlass: break_glass,
}
_DATETIMES = {"received_at", "updated_at", "start", "end", "first_visit_at", "detected_at",
              "raised_at", "acknowledged_at", "closed_at", "opened_at", "expires_at"}


def _record(kind: type, row: Any) -> Any:
    values = {f.name: getattr(row, f.name) for f in fields(kind)}
    for name in _DATETIMES & values.keys():
        if values[name] is not None:
            values[name] = domain.as_utc(values[name])
    if kind is domain.Capacity:
        values["blocks"] = tuple(av.WeeklyBlock(
            w, time.fromisoformat(start), time.fromisoformat(end), domain.as_date(since),
            domain.as_date(until)) for w, start, end, since, until in values["blocks"])
        values["closed"] = tuple(av.Interval(domain.as_utc(a), domain.as_utc(b))
                                 for a, b in values["closed"])
    return kind(**values)


def _values(record: domain.Record) -> dict[str, Any]:
    """A record as column values; a capacity's template and time off as JSON lists."""
    if not isinstance(record, domain.Capacity):
        return asdict(record)
    return {"provider_id": record.provider_id, "discipline": record.discipline,
            "timezone": record.timezone, "updated_at": record.updated_at,
            "blocks": [[b.weekday, b.start.isoformat(), b.end.isoformat(),
                        b.valid_from.isoformat() if b.valid_from else None,
                        b.valid_until.isoformat() if b.valid_until else None]
                       for b in record.blocks],
            "closed": [[iv.start.isoformat(), iv.end.isoformat()] for iv in record.closed]}


class ReadModelStore:
    """Reads and writes the read model's records inside the caller's transaction."""

    def lookup(self, session: Session, kind: type, key: str) -> Any:
        table = TABLES[kind]
        pk = next(iter(table.primary_key.columns))
        row = session.execute(select(table).where(pk == key)).first()
        return _record(kind, row) if row is not None else None

    def save(self, session: Session, record: domain.Record) -> None:
        table = TABLES[type(record)]
        pk = next(iter(table.primary_key.columns))
        values = _values(record)
        key = values.pop(pk.name)
        done = session.execute(update(table).where(pk == key).values(**values))
        if done.rowcount == 0:
            session.execute(insert(table).values({pk.name: key, **values}))

    def snapshot(self, session: Session) -> domain.Snapshot:
        snap = domain.Snapshot()
        for kind, table in TABLES.items():
            for row in session.execute(select(table)):
                snap.put(_record(kind, row))
        return snap

    def counts(self, session: Session) -> dict[str, int]:
        from sqlalchemy import func

        return {table.name.removeprefix("dash_"):
                session.execute(select(func.count()).select_from(table)).scalar_one()
                for table in TABLES.values()}

    def generation(self, session: Session, *, lock: bool = False) -> int:
        """Which rebuild of the read model is current. Locking it orders a handler's
        write against a rebuild's reset (PostgreSQL; SQLite serialises writers)."""
        stmt = select(meta.c.generation).where(meta.c.id == 1)
        if lock:
            stmt = stmt.with_for_update()
        found = session.execute(stmt).scalar_one_or_none()
        if found is None:  # the first of several processes to ask makes the row
            dialect = session.get_bind().dialect.name
            make = postgresql.insert if dialect == "postgresql" else sqlite.insert
            session.execute(make(meta).values(id=1, generation=1, rebuilt_at=None)
                            .on_conflict_do_nothing())
            found = session.execute(stmt).scalar_one()
        return found

    def reset(self, session: Session, inbox: Table) -> int:
        """Empty the read model and start a new generation, whose consumer group reads
        every topic from the beginning."""
        current = self.generation(session, lock=True)
        for table in TABLES.values():
            session.execute(delete(table))
        session.execute(delete(inbox).where(inbox.c.consumer.like("%.readmodel-g%")))
        session.execute(update(meta).where(meta.c.id == 1).values(
            generation=current + 1, rebuilt_at=datetime.now(UTC)))
        return current + 1
