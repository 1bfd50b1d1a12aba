"""Linked patients, the same way in every service: a `patient_links` table fed by the
registry's `patient.linked` / `patient.unlinked` events (topic patients.events), and
`group()` to read a patient's records with those of everyone linked with them.

Nothing is moved or rewritten when two patients are linked: each service keeps its rows
under the id they arrived with and reads the group. An unlink deletes the link, so each
patient's records are their own again and nothing is lost either way.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, select
from sqlalchemy.orm import Session

from shared import topics
from shared.events import Envelope
from shared.kafka import Handler, Subscription

TABLE = "patient_links"


def add_patient_links_table(metadata: MetaData) -> Table:
    """The table on a service's own metadata (its Alembic revision creates it)."""
    if TABLE in metadata.tables:
        return metadata.tables[TABLE]
    return Table(
        TABLE, metadata,
        # a patient linked into another: one link at a time (the registry's rule)
        Column("linked_patient_id", String(64), primary_key=True),
        Column("patient_id", String(64), nullable=False, index=True),
        Column("event_id", String(36), nullable=False),
        Column("linked_at", DateTime(timezone=True), nullable=False),
    )


def surviving(session: Session, table: Table, patient_id: str) -> str:
    """The patient whose records this one's are read with (itself if not linked)."""
    found = session.execute(select(table.c.patient_id).where(
        table.c.linked_patient_id == patient_id)).scalar_one_or_none()
    return found or patient_id


def group(session: Session, table: Table, patient_id: str) -> list[str]:
    """The patient and everyone linked with them, the surviving id first."""
    root = surviving(session, table, patient_id)
    linked = session.scalars(select(table.c.linked_patient_id).where(
        table.c.patient_id == root).order_by(table.c.linked_patient_id))
    return [root, *linked]


def linked_with(session: Session, table: Table, patient_ids: set[str]) -> set[str]:
    """Everyone in the groups of these patients (for "my patients" lists)."""
    if not patient_ids:
        return set()
    ids = sorted(patient_ids)
    rows = session.execute(select(table.c.patient_id, table.c.linked_patient_id).where(
        table.c.patient_id.in_(ids) | table.c.linked_patient_id.in_(ids)))
    roots = {r.patient_id for r in rows}
    if not roots:
        return set()
    more = session.scalars(select(table.c.linked_patient_id).where(
        table.c.patient_id.in_(sorted(roots))))
    return roots | set(more)


def handlers(table: Table) -> dict[str, Handler]:
    """Apply links and unlinks; a redelivered or repeated one changes nothing."""

    def linked(session: Session, envelope: Envelope) -> None:
        p = envelope.payload
        session.execute(delete(table).where(table.c.linked_patient_id == p["linked_patient_id"]))
        session.execute(table.insert().values(
            linked_patient_id=p["linked_patient_id"], patient_id=p["patient_id"],
            event_id=envelope.id, linked_at=_instant(p["at"])))

    def unlinked(session: Session, envelope: Envelope) -> None:
        p = envelope.payload
        session.execute(delete(table).where(table.c.linked_patient_id == p["linked_patient_id"],
                                            table.c.patient_id == p["patient_id"]))

    return {"patient.linked": linked, "patient.unlinked": unlinked}


def _instant(at: str | datetime) -> datetime:
    return datetime.fromisoformat(at) if isinstance(at, str) else at


def subscription(table: Table, name: str = "patient-links") -> Subscription:
    """The consumer a service's worker adds to keep its `patient_links`."""
    return Subscription(name, (topics.PATIENTS,), handlers(table))


def create_table(op) -> None:  # type: ignore[no-untyped-def]
    """For a service's Alembic revision: the same table `add_patient_links_table` maps."""
    import sqlalchemy as sa

    op.create_table(
        TABLE,
        sa.Column("linked_patient_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("linked_patient_id"),
    )
    op.create_index("ix_patient_links_patient_id", TABLE, ["patient_id"])
