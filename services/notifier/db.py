"""The notifier service's tables and the queries on them. Only this service reads or
writes them.

- `recipients`: the directory (patients from referral.received, providers from
  provider.registered, preferences and opt-outs from the API).
- `notifications`: one row per (dedupe key, recipient, channel); the unique constraint is
  what makes redelivered events and racing workers harmless. `dedupe_key` is the event id,
  or for reminders the appointment, its start and the offset.
- `source_events`: the event each notification came from, kept to dead-letter it.
- `safety_alerts`: what the notifier knows of each safety alert's life (raised when,
  acknowledged or closed), so a late escalation tells no one and an acknowledgement
  reaches everyone who was told.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    delete,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

from services.notifier.domain import DUTY_PHONE, AlertHistory, AlertSettled, Contact, Planned
from shared import patient_links as links
from shared.patient_links import add_patient_links_table


class UtcDateTime(TypeDecorator):
    """Instants in UTC on both backends: SQLite hands back naive datetimes, this makes
    them aware again so comparisons and the API never mix the two."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):  # type: ignore[no-untyped-def]
        return aware(value)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime}


class Recipient(Base):
    __tablename__ = "recipients"

    recipient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(40), nullable=True)
    preferred_channel: Mapped[str] = mapped_column(String(20), default="email")
    language: Mapped[str] = mapped_column(String(10), default="en")
    opted_out: Mapped[str] = mapped_column(String(60), default="")  # "sms,email"
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # when the registry last changed these details (patient.contact_changed's as_of): an
    # older change, arriving late, never overwrites a newer one
    contacts_as_of: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    def contact(self) -> Contact:
        return Contact(self.recipient_id, self.kind, self.name, self.email, self.phone,
                       self.preferred_channel, self.language,
                       frozenset(c for c in self.opted_out.split(",") if c))


class SourceEvent(Base):
    __tablename__ = "source_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(80))
    topic: Mapped[str] = mapped_column(String(200))
    message_key: Mapped[str] = mapped_column(String(200))
    body: Mapped[bytes] = mapped_column(LargeBinary)


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("dedupe_key", "recipient_id", "channel",
                         name="uq_notification_once"),
        Index("ix_notifications_due", "status", "next_attempt_at"),
        Index("ix_notifications_appointment", "appointment_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200))
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    event_type: Mapped[str] = mapped_column(String(80))
    recipient_id: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    template: Mapped[str] = mapped_column(String(60))
    language: Mapped[str] = mapped_column(String(10))
    address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    appointment_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_holder: Mapped[str | None] = mapped_column(String(120), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    provisional: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    dead_lettered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(),
                                                              nullable=True)
    priority: Mapped[str] = mapped_column(String(10), default="normal",
                                          server_default="normal")
    alert_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # A safety alert's in-app items leave the top of the feed once it is acknowledged.
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # The RFC 5545 invitation an email about visits carries (sent as text/calendar).
    calendar: Mapped[str | None] = mapped_column(Text, nullable=True)


class SafetyAlert(Base):
    __tablename__ = "safety_alerts"

    alert_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    raised_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    settled: Mapped[str | None] = mapped_column(String(20), nullable=True)  # acknowledged|closed
    settled_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    settled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


def aware(at: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if at is None:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _insert(session: Session, table):  # type: ignore[no-untyped-def]
    return (postgresql.insert(table) if session.get_bind().dialect.name == "postgresql"
            else sqlite.insert(table))


# --------------------------------------------------------------------------- directory

patient_links = add_patient_links_table(Base.metadata)


def lookup(session: Session, recipient_id: str) -> Contact | None:
    """A recipient's contact. A patient linked with others is reached at the group's
    current details (the newest change of any of them), under the id asked for."""
    row = session.get(Recipient, recipient_id)
    if row is None:
        return None
    newest = current_details(session, row)
    if newest is row:
        return row.contact()
    return replace(newest.contact(), recipient_id=recipient_id,
                   opted_out=row.contact().opted_out)


def current_details(session: Session, row: Recipient) -> Recipient:
    """Whose details reach this recipient: their own, or for a patient linked with
    others the group's newest change (contacts_as_of)."""
    if row.kind != "patient":
        return row
    ids = links.group(session, patient_links, row.recipient_id)
    if len(ids) == 1:
        return row
    rows = list(session.scalars(select(Recipient).where(Recipient.recipient_id.in_(ids))))
    return max(rows, key=lambda r: (aware(r.contacts_as_of) or datetime.min.replace(
        tzinfo=UTC), r.recipient_id == row.recipient_id))


def keep_patient_contact(session: Session, contact: Contact, as_of: datetime,
                         now: datetime) -> bool:
    """The registry's current details of a patient, unless newer ones are already kept.
    True if they were taken."""
    row = session.get(Recipient, contact.recipient_id)
    if row is not None and row.contacts_as_of is not None and aware(row.contacts_as_of) > as_of:
        return False
    upsert_recipient(session, contact, now)  # preferences changed over the API are kept
    session.get(Recipient, contact.recipient_id).contacts_as_of = as_of  # type: ignore[union-attr]
    return True


def upsert_recipient(session: Session, contact: Contact, now: datetime, *,
                     keep_preferences: bool = True) -> None:
    """Contact details from events; preferences changed over the API are kept."""
    row = session.get(Recipient, contact.recipient_id)
    if row is None:
        session.add(Recipient(recipient_id=contact.recipient_id, kind=contact.kind,
                              name=contact.name, email=contact.email, phone=contact.phone,
                              preferred_channel=contact.preferred_channel,
                              language=contact.language,
                              opted_out=",".join(sorted(contact.opted_out)), updated_at=now))
        session.flush()
        return
    row.kind, row.name, row.email, row.phone = (contact.kind, contact.name, contact.email,
                                                contact.phone)
    if not keep_preferences:
        row.preferred_channel, row.language = contact.preferred_channel, contact.language
    row.updated_at = now


# ------------------------------------------------------------------------ notifications

def remember_event(session: Session, event_id: str, event_type: str, topic: str, key: str,
                   body: bytes) -> None:
    stmt = _insert(session, SourceEvent.__table__).values(
        event_id=event_id, event_type=event_type, topic=topic, message_key=key, body=body)
    session.execute(stmt.on_conflict_do_nothing())


def add_planned(session: Session, event_id: str, event_type: str,
                planned: Sequence[Planned], now: datetime) -> int:
    """Insert each planned notification once. A reminder cancelled earlier and planned
    again (a visit moved away and back) comes back to life."""
    table = Notification.__table__
    added = 0
    for p in planned:
        values = dict(id=str(uuid.uuid4()), dedupe_key=p.dedupe_key, event_id=event_id,
                      event_type=event_type, recipient_id=p.recipient_id, channel=p.channel,
                      template=p.template, language=p.language, address=p.address[:320],
                      subject=p.subject[:300], body=p.body, appointment_id=p.appointment_id,
                      status="pending", due_at=p.due_at, next_attempt_at=p.due_at, attempts=0,
                      created_at=now, provisional=p.provisional, priority=p.priority,
                      alert_id=p.alert_id, calendar=p.calendar)
        stmt = _insert(session, table).values(**values).on_conflict_do_nothing()
        if session.execute(stmt.returning(table.c.id)).first() is not None:
            added += 1
        elif p.appointment_id:
            session.execute(update(table).where(
                table.c.dedupe_key == p.dedupe_key, table.c.recipient_id == p.recipient_id,
                table.c.channel == p.channel, table.c.status == "cancelled")
                .values(status="pending", next_attempt_at=p.due_at, attempts=0,
                        last_error=None))
    return added


def cancel_reminders(session: Session, appointment_ids: Sequence[str]) -> int:
    """Reminders not yet sent for visits that were cancelled or moved."""
    if not appointment_ids:
        return 0
    table = Notification.__table__
    result = session.execute(update(table).where(
        table.c.appointment_id.in_(list(appointment_ids)), table.c.status == "pending",
        table.c.template == "appointment_reminder").values(status="cancelled"))
    return result.rowcount or 0


def claim_due(session: Session, now: datetime, holder: str, lease_until: datetime,
              limit: int) -> list[Notification]:
    """Take up to `limit` due notifications for this worker: pending ones whose time has
    come and ones whose previous holder's lease ran out (it died mid-send). PostgreSQL
    skips rows another worker is claiming; SQLite's BEGIN IMMEDIATE serialises claims."""
    n = Notification
    query = (select(n).where(or_(
        and_(n.status == "pending", n.next_attempt_at <= now),
        and_(n.status == "sending", n.lease_until < now)))
        .order_by(case((n.priority == "urgent", 0), else_=1), n.next_attempt_at)
        .limit(limit))  # a safety alert never waits behind a batch of reminders
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(session.scalars(query))
    for row in rows:
        row.status, row.lease_holder, row.lease_until = "sending", holder, lease_until
    session.flush()
    return rows


def counts_by_status(session: Session) -> dict[str, int]:
    n = Notification
    return dict(session.execute(select(n.status, func.count()).group_by(n.status)).all())


def drop_opted_out(session: Session, rows: list[Notification]) -> list[Notification]:
    """An opt-out wins even over what was planned before it (a reminder two days out):
    such rows are cancelled at delivery time instead of sent."""
    ids = {r.recipient_id for r in rows if r.alert_id is None}  # safety: never dropped
    if not ids:
        return rows
    opted = {rid: set(out.split(",")) for rid, out in session.execute(
        select(Recipient.recipient_id, Recipient.opted_out)
        .where(Recipient.recipient_id.in_(ids), Recipient.opted_out != ""))}
    keep = []
    for row in rows:
        if row.alert_id is None and row.channel in opted.get(row.recipient_id, ()):
            row.status, row.lease_holder, row.lease_until = "cancelled", None, None
            row.last_error = f"recipient opted out of {row.channel}"
        else:
            keep.append(row)
    session.flush()
    return keep


ALERT_TEMPLATES = ("safety_alert", "safety_alert_escalated")  # what a settled alert stops


def cancel_if_settled(session: Session, notification_id: str, alert_id: str,
                      holder: str) -> bool:
    """Just before a claimed alert or escalation message is sent: if the alert was
    acknowledged or closed since it was claimed (during the batch, or while a dead
    worker's lease ran out), cancel it instead, as `settle_alert` cancels what is
    pending. True when it was cancelled."""
    alert = session.get(SafetyAlert, alert_id)
    if alert is None or alert.settled is None:
        return False
    n = Notification.__table__
    session.execute(update(n).where(n.c.id == notification_id, n.c.lease_holder == holder,
                                    n.c.status == "sending")
                    .values(status="cancelled", lease_holder=None, lease_until=None,
                            last_error=f"safety alert {alert.settled}"))
    return True


def take_provisional(session: Session, recipient_id: str) -> list[tuple[bytes, set[str]]]:
    """Someone's contact has just arrived: their provisional notifications not sent yet
    are withdrawn (never delivered, so nothing is lost); each source event comes back
    with the dedupe keys withdrawn, to be planned again with the real contact. A safety
    alert still open whose in-app item already went (urgent: no grace) comes back too,
    so its email and SMS follow (the in-app one is not planned twice)."""
    n = Notification
    taken = session.execute(select(n.event_id, n.dedupe_key).where(
        n.recipient_id == recipient_id, n.provisional.is_(True), n.status == "pending")).all()
    open_alerts = session.execute(
        select(n.event_id, n.dedupe_key).join(SafetyAlert, SafetyAlert.alert_id == n.alert_id)
        .where(n.recipient_id == recipient_id, n.provisional.is_(True), n.status == "sent",
               n.priority == "urgent", SafetyAlert.settled.is_(None))).all()
    if not taken and not open_alerts:
        return []
    session.execute(delete(n).where(n.recipient_id == recipient_id, n.provisional.is_(True),
                                    n.status == "pending"))
    keys: dict[str, set[str]] = {}
    for event_id, key in [*taken, *open_alerts]:
        keys.setdefault(event_id, set()).add(key)
    bodies = session.execute(select(SourceEvent.event_id, SourceEvent.body)
                             .where(SourceEvent.event_id.in_(list(keys)))).all()
    return [(body, keys[event_id]) for event_id, body in bodies]


# ------------------------------------------------------------------------ safety alerts

def alert_history(session: Session, alert_id: str) -> AlertHistory:
    row = session.get(SafetyAlert, alert_id)
    n = Notification
    told = session.scalars(select(n.recipient_id).where(
        n.alert_id == alert_id, n.recipient_id != DUTY_PHONE,
        n.template.in_(("safety_alert", "safety_alert_escalated")))
        .distinct().order_by(n.recipient_id)).all()
    return AlertHistory(settled=bool(row and row.settled), raised_at=row.raised_at if row else None,
                        recipients=tuple(told))


def alert_raised(session: Session, alert_id: str, patient_id: str, raised_at: datetime) -> None:
    """Raised (again): a raise after an acknowledgement is new information, open again."""
    row = session.get(SafetyAlert, alert_id)
    if row is None:
        session.add(SafetyAlert(alert_id=alert_id, patient_id=patient_id, raised_at=raised_at))
        session.flush()
    else:
        row.raised_at = row.raised_at or raised_at
        row.settled = row.settled_by = row.settled_at = None


def settle_alert(session: Session, patient_id: str, settled: AlertSettled) -> int:
    """Acknowledged or closed: everything not yet sent about the alert (escalations
    included) is cancelled and its in-app items leave the top of the feeds. Returns how
    many were cancelled."""
    row = session.get(SafetyAlert, settled.alert_id)
    if row is None:
        row = SafetyAlert(alert_id=settled.alert_id, patient_id=patient_id)
        session.add(row)
    if row.settled != "closed":  # closed is final; an acknowledgement after it changes nothing
        row.settled, row.settled_by, row.settled_at = settled.how, settled.by, settled.at
    session.flush()
    n = Notification.__table__
    cancelled = session.execute(update(n).where(
        n.c.alert_id == settled.alert_id, n.c.status == "pending",
        n.c.template.in_(ALERT_TEMPLATES))
        .values(status="cancelled", last_error=f"safety alert {settled.how}"))
    session.execute(update(n).where(
        n.c.alert_id == settled.alert_id, n.c.channel == "in_app",
        n.c.acknowledged_at.is_(None)).values(acknowledged_at=settled.at))
    return cancelled.rowcount or 0
