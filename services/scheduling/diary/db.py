"""The scheduling service's tables. Only this service reads or writes them.

Double booking is refused by the database itself:
- PostgreSQL: exclusion constraints (btree_gist) on `appointments` for the provider, the
  room and the patient — no two blocking rows with overlapping `tstzrange(start, end)`.
  They live in the Alembic migration (PostgreSQL-only DDL), so the schema must always be
  made by migrations, never by `create_all`.
- SQLite: every transaction starts with BEGIN IMMEDIATE (shared.db), so the overlap check
  and the insert in `booking.py` run with the write lock held, across processes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Time,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase

from shared.patient_links import add_patient_links_table


class Base(DeclarativeBase):
    pass


class UtcDateTime(TypeDecorator):
    """Aware UTC datetimes on both backends (SQLite keeps no offset; we store UTC there
    and say so when reading back), so comparisons in SQL are comparisons of instants."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):  # type: ignore[no-untyped-def]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):  # type: ignore[no-untyped-def]
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = Base.metadata
# patients linked by the registry: their appointments are listed together (nothing moved)
patient_links = add_patient_links_table(metadata)
_id = String(36)

providers = Table(
    "providers", metadata,
    Column("id", _id, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("discipline", String(40), nullable=False, index=True),
    Column("visit_types", JSON, nullable=False),
    Column("email", String(254), nullable=True),
    Column("phone", String(40), nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

rooms = Table(
    "rooms", metadata,
    Column("id", _id, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("kind", String(40), nullable=False),
    Column("fit_for", JSON, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UtcDateTime, nullable=False),
)

template_blocks = Table(
    "template_blocks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider_id", _id, ForeignKey("providers.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("weekday", Integer, nullable=False),
    Column("start_time", Time, nullable=False),
    Column("end_time", Time, nullable=False),
    Column("valid_from", Date, nullable=True),
    Column("valid_until", Date, nullable=True),
)

# Leave, training, sickness (provider_id set) and clinic closures (provider_id NULL).
exceptions = Table(
    "availability_exceptions", metadata,
    Column("id", _id, primary_key=True),
    Column("provider_id", _id, ForeignKey("providers.id", ondelete="CASCADE"), nullable=True,
           index=True),
    Column("kind", String(20), nullable=False),
    Column("start_at", UtcDateTime, nullable=False),
    Column("end_at", UtcDateTime, nullable=False),
    Column("note", String(500), nullable=False, default=""),
    Column("created_by", String(120), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_exceptions_span", "start_at", "end_at"),
)

series = Table(
    "series", metadata,
    Column("id", _id, primary_key=True),
    Column("patient_id", String(64), nullable=False, index=True),
    Column("provider_id", _id, ForeignKey("providers.id"), nullable=False),
    Column("visit_type", String(80), nullable=False, default=""),
    Column("minutes", Integer, nullable=False),
    Column("interval_days", Integer, nullable=False),
    Column("count", Integer, nullable=False),
    Column("unplaced", JSON, nullable=False),
    Column("created_by", String(120), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

appointments = Table(
    "appointments", metadata,
    Column("id", _id, primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("provider_id", _id, ForeignKey("providers.id"), nullable=False),
    Column("room_id", _id, ForeignKey("rooms.id"), nullable=True),
    Column("discipline", String(40), nullable=False),
    Column("visit_type", String(80), nullable=False, default=""),
    Column("start_at", UtcDateTime, nullable=False),
    Column("end_at", UtcDateTime, nullable=False),
    Column("status", String(20), nullable=False),
    # A hold (proposed/pending) blocks its slot until it expires; whoever books over an
    # expired hold first cancels it in the same transaction.
    Column("hold_expires_at", UtcDateTime, nullable=True),
    Column("series_id", _id, ForeignKey("series.id"), nullable=True, index=True),
    Column("referral_id", String(64), nullable=True, index=True),
    Column("itinerary_id", String(64), nullable=True, index=True),
    Column("waitlist_id", _id, nullable=True),
    Column("cancel_reason", String(1000), nullable=True),
    Column("changed_by", String(120), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_appointments_provider_start", "provider_id", "start_at"),
    Index("ix_appointments_patient_start", "patient_id", "start_at"),
    Index("ix_appointments_room_start", "room_id", "start_at"),
)

waitlist = Table(
    "waitlist", metadata,
    Column("id", _id, primary_key=True),
    Column("patient_id", String(64), nullable=False, index=True),
    Column("discipline", String(40), nullable=False),
    Column("provider_id", _id, ForeignKey("providers.id"), nullable=True),
    Column("visit_minutes", Integer, nullable=False),
    Column("visit_type", String(80), nullable=False, default=""),
    Column("priority", String(20), nullable=False),
    Column("earliest", Date, nullable=True),
    Column("latest", Date, nullable=True),
    Column("weekdays", JSON, nullable=False),
    Column("day_start", Time, nullable=True),
    Column("day_end", Time, nullable=True),
    # waiting -> offered -> booked | waiting (declined or offer expired) ; removed
    Column("status", String(20), nullable=False),
    Column("offered_appointment_id", _id, nullable=True),
    Column("offer_expires_at", UtcDateTime, nullable=True),
    Column("referral_id", String(64), nullable=True),
    Column("created_by", String(120), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_waitlist_discipline_status", "discipline", "status"),
)

# Names of the PostgreSQL exclusion constraints (migration), for clear 409 messages.
EXCLUSIONS = {
    "ex_appointments_provider": "provider",
    "ex_appointments_room": "room",
    "ex_appointments_patient": "patient",
}

# A provider's private iCal feed: only the SHA-256 of its secret token is kept, so a copy
# of the database gives no one a working feed URL. Revoked feeds stay, for the audit.
calendar_feeds = Table(
    "calendar_feeds", metadata,
    Column("id", _id, primary_key=True),
    Column("provider_id", _id, ForeignKey("providers.id"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_by", String(120), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("revoked_by", String(120), nullable=True),
)
