"""The gateway's own tables: FHIR resources built from the clinic's events (its read
model), the facts it keeps between events, and the identifiers referrers sent. It never
reads or writes another service's database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    or_,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from shared import patient_links as links
from shared.patient_links import add_patient_links_table


class Base(DeclarativeBase):
    pass


# patients linked by the registry (patient.linked / patient.unlinked): a search by
# patient finds the linked patients' resources too; nothing is moved
patient_links = add_patient_links_table(Base.metadata)


class ResourceRow(Base):
    """One FHIR resource as the gateway serves it, with the columns searches use."""

    __tablename__ = "fhir_resource"
    # searches are by type, then patient or date (the diary's week, a patient's visits)
    __table_args__ = (Index("ix_fhir_resource_type_date", "resource_type", "date"),
                      Index("ix_fhir_resource_type_patient", "resource_type", "patient_id",
                            "date"))

    resource_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str | None] = mapped_column(String(40))
    date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    code: Mapped[str | None] = mapped_column(String(200))
    source_id: Mapped[str | None] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    last_updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    body: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


class FactRow(Base):
    """What one event leaves for the next to build on (a referral's state, a provider)."""

    __tablename__ = "fhir_fact"

    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


class IdentifierRow(Base):
    """An identifier a referrer sent (Bundle, ServiceRequest or Patient), kept with its
    system and value as they came, and what it names here."""

    __tablename__ = "fhir_identifier"
    __table_args__ = (UniqueConstraint("kind", "system", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    system: Mapped[str] = mapped_column(String(200), nullable=False)
    value: Mapped[str] = mapped_column(String(200), nullable=False)
    target_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


def aware(at: datetime | None) -> datetime | None:
    if at is not None and at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    return at


@dataclass
class Search:
    """A FHIR search on one resource type, already parsed."""

    resource_type: str
    ids: list[str] = field(default_factory=list)
    patient: str | None = None
    statuses: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    date: list[tuple[str, datetime]] = field(default_factory=list)
    last_updated: list[tuple[str, datetime]] = field(default_factory=list)
    count: int = 20
    offset: int = 0
    # the reader's scope (services.fhir.access): None is no limit
    only_patients: list[str] | None = None
    only_sources: list[str] | None = None


_OPS = {"ge": "__ge__", "gt": "__gt__", "le": "__le__", "lt": "__lt__"}


Emit = Callable[[str, dict[str, Any], str], None]   # (event type, payload, key)


class Resources:
    """The read model's repository. `emit` stages an event in the same transaction
    (a subscribed Task's change); without it nothing is told."""

    def __init__(self, session: Session, emit: Emit | None = None) -> None:
        self.s = session
        self.emit = emit

    # ------------------------------------------------------------------ resources
    def get(self, resource_type: str, rid: str) -> ResourceRow | None:
        return self.s.get(ResourceRow, (resource_type, rid))

    def put(self, body: dict[str, Any], *, at: datetime, patient_id: str | None = None,
            status: str | None = None, date: datetime | None = None, code: str | None = None,
            source_id: str | None = None) -> ResourceRow:
        """Store a resource, bumping its version when it changed."""
        rtype, rid = body["resourceType"], body["id"]
        row = self.get(rtype, rid)
        if row is None:
            row = ResourceRow(resource_type=rtype, id=rid, version=0)
            self.s.add(row)
        elif row.body == _without_meta(body):
            return row
        row.version = (row.version or 0) + 1
        row.last_updated = at
        row.patient_id, row.status, row.date = patient_id, status, date
        row.code, row.source_id = code, source_id
        row.body = _without_meta(body)
        self.s.flush()
        return row

    def delete(self, resource_type: str, rid: str) -> None:
        row = self.get(resource_type, rid)
        if row is not None:
            self.s.delete(row)

    def by_source(self, resource_type: str, source_id: str) -> list[ResourceRow]:
        return list(self.s.scalars(select(ResourceRow).where(
            ResourceRow.resource_type == resource_type, ResourceRow.source_id == source_id)))

    def search(self, q: Search) -> tuple[list[ResourceRow], int]:
        where = [ResourceRow.resource_type == q.resource_type]
        if q.ids:
            where.append(ResourceRow.id.in_(q.ids))
        if q.patient is not None:  # with the patients the registry links with them
            where.append(ResourceRow.patient_id.in_(
                links.group(self.s, patient_links, q.patient)))
        if q.only_patients is not None:
            where.append(ResourceRow.patient_id.in_(q.only_patients))
        if q.only_sources is not None and q.resource_type != "Patient":
            where.append(ResourceRow.source_id.in_(q.only_sources))
        if q.statuses:
            where.append(ResourceRow.status.in_(q.statuses))
        if q.codes:
            where.append(or_(*(ResourceRow.code == c if "|" in c
                               else ResourceRow.code.like(f"%|{c}") for c in q.codes)))
        for column, bounds in ((ResourceRow.date, q.date),
                               (ResourceRow.last_updated, q.last_updated)):
            for op, value in bounds:
                where.append(getattr(column, _OPS[op])(value))
        total = self.s.scalar(select(func.count()).select_from(ResourceRow).where(*where)) or 0
        rows = list(self.s.scalars(
            select(ResourceRow).where(*where)
            .order_by(ResourceRow.date.is_(None), ResourceRow.date, ResourceRow.id)
            .offset(q.offset).limit(q.count)))
        return rows, total

    # ---------------------------------------------------------------------- facts
    def fact(self, kind: str, key: str) -> dict[str, Any] | None:
        row = self.s.get(FactRow, (kind, key))
        return dict(row.data) if row is not None else None

    def save_fact(self, kind: str, key: str, data: dict[str, Any]) -> None:
        row = self.s.get(FactRow, (kind, key))
        if row is None:
            self.s.add(FactRow(kind=kind, key=key, data=data))
        else:
            row.data = data
        self.s.flush()

    # ---------------------------------------------------------------- identifiers
    def identified(self, kind: str, identifier: dict[str, str]) -> str | None:
        return self.s.scalar(select(IdentifierRow.target_id).where(
            IdentifierRow.kind == kind, IdentifierRow.system == identifier["system"],
            IdentifierRow.value == identifier["value"]))

    def identifiers_of(self, kind: str, target_id: str) -> list[dict[str, str]]:
        rows = self.s.scalars(select(IdentifierRow).where(
            IdentifierRow.kind == kind, IdentifierRow.target_id == target_id)
            .order_by(IdentifierRow.id))
        return [{"system": r.system, "value": r.value} for r in rows]

    def remember(self, kind: str, identifier: dict[str, str], target_id: str,
                 at: datetime) -> None:
        if self.identified(kind, identifier) is None:
            self.s.add(IdentifierRow(kind=kind, system=identifier["system"],
                                     value=identifier["value"], target_id=target_id,
                                     created_at=at))
            self.s.flush()


def _without_meta(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "meta"}


def served(row: ResourceRow) -> dict[str, Any]:
    """The resource as served: its body with meta (version and when it last changed)."""
    at = aware(row.last_updated)
    assert at is not None
    body = dict(row.body)
    meta = {"versionId": str(row.version), "lastUpdated": at.isoformat(timespec="seconds")}
    out = {"resourceType": body.pop("resourceType"), "id": body.pop("id"), "meta": meta}
    out.update(body)
    return out
