"""The patient registry's tables (on the referrals service's Base) and its repository.
Only the referrals service reads or writes them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, Integer, String, UniqueConstraint, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.referrals.db import Base, aware
from services.referrals.patients import domain
from services.referrals.patients.domain import Contacts, Identifier
from shared.errors import NotFound


class PatientRow(Base):
    """One person as PainCare knows them: demographics and contacts in one place, with
    who last set them (a referral or a user) and when. `linked_to` names the patient
    whose records theirs are read with, while a link stands."""

    __tablename__ = "patients"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    date_of_birth: Mapped[date] = mapped_column(Date, index=True)
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    postcode: Mapped[str | None] = mapped_column(String(12))
    preferred_channel: Mapped[str] = mapped_column(String(10))
    language: Mapped[str] = mapped_column(String(10))
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    linked_to: Mapped[str | None] = mapped_column(String(64), index=True)


class PatientIdentifierRow(Base):
    """An identifier in its system; one system and value belong to one patient."""

    __tablename__ = "patient_identifiers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    system: Mapped[str] = mapped_column(String(260))
    value: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("system", "value", name="uq_patient_identifiers"),)


class PossibleSameRow(Base):
    """A 'possible same patient' task: two registrations alike in name, date of birth
    and postcode or phone, for a scheduler to link or keep apart."""

    __tablename__ = "possible_same_patients"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    other_patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    reason: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), index=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    settled_by: Mapped[str | None] = mapped_column(String(120))
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("patient_id", "other_patient_id",
                                       name="uq_possible_same_pair"),)


def contacts_of(row: PatientRow) -> Contacts:
    return Contacts(name=row.name, date_of_birth=row.date_of_birth, email=row.email,
                    phone=row.phone, postcode=row.postcode,
                    preferred_channel=row.preferred_channel, language=row.language,
                    as_of=aware(row.as_of), source=row.source)  # type: ignore[arg-type]


def set_contacts(row: PatientRow, c: Contacts) -> None:
    row.name, row.date_of_birth, row.email, row.phone = c.name, c.date_of_birth, c.email, c.phone
    row.postcode, row.preferred_channel, row.language = c.postcode, c.preferred_channel, c.language
    row.as_of, row.source = c.as_of, c.source


class Patients:
    """Reads and writes of the registry, within the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, patient_id: str, *, for_update: bool = False) -> PatientRow:
        if len(patient_id) > 64 or not patient_id.isprintable():
            raise NotFound("no such patient")
        stmt = select(PatientRow).where(PatientRow.id == patient_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self.session.scalars(stmt).first()
        if row is None:
            raise NotFound(f"no patient {patient_id}")
        return row

    def by_identifiers(self, idents: list[Identifier]) -> list[str]:
        """The patients any of these identifiers already belong to (each once)."""
        conds = [(PatientIdentifierRow.system == i.system) & (PatientIdentifierRow.value == i.value)
                 for i in idents]
        rows = self.session.scalars(select(PatientIdentifierRow.patient_id).where(or_(*conds))
                                    .order_by(PatientIdentifierRow.id))
        return list(dict.fromkeys(rows))

    def identifiers(self, patient_id: str) -> list[PatientIdentifierRow]:
        return list(self.session.scalars(select(PatientIdentifierRow).where(
            PatientIdentifierRow.patient_id == patient_id).order_by(PatientIdentifierRow.id)))

    def add_identifiers(self, patient_id: str, idents: list[Identifier], *, source: str,
                        at: datetime) -> None:
        """Add the ones not yet known (one that belongs to another patient stays theirs)."""
        conds = [(PatientIdentifierRow.system == i.system) & (PatientIdentifierRow.value == i.value)
                 for i in idents]
        taken = {(r.system, r.value) for r in self.session.execute(
            select(PatientIdentifierRow.system, PatientIdentifierRow.value).where(or_(*conds)))}
        for i in idents:
            if (i.system, i.value) not in taken:
                self.session.add(PatientIdentifierRow(patient_id=patient_id, system=i.system,
                                                      value=i.value, source=source, added_at=at))
        self.session.flush()

    def add(self, row: PatientRow) -> None:
        self.session.add(row)
        self.session.flush()

    def alike(self, c: Contacts, *, besides: str) -> list[PatientRow]:
        """Other patients with the same date of birth whose details look like these."""
        rows = self.session.scalars(select(PatientRow).where(
            PatientRow.date_of_birth == c.date_of_birth, PatientRow.id != besides))
        return [r for r in rows if domain.possibly_same(c, contacts_of(r))]

    def open_task(self, task_id: str, a: str, b: str, reason: str, at: datetime) -> bool:
        """One task per pair, whichever way round; False if there already is one."""
        pair = sorted((a, b))
        exists = self.session.scalars(select(PossibleSameRow.id).where(
            PossibleSameRow.patient_id == pair[0],
            PossibleSameRow.other_patient_id == pair[1])).first()
        if exists:
            return False
        self.session.add(PossibleSameRow(id=task_id, patient_id=pair[0], other_patient_id=pair[1],
                                         reason=reason, status=domain.OPEN, opened_at=at))
        self.session.flush()
        return True

    def task(self, task_id: str, *, for_update: bool = False) -> PossibleSameRow:
        if len(task_id) > 36 or not task_id.isprintable():
            raise NotFound("no such task")
        stmt = select(PossibleSameRow).where(PossibleSameRow.id == task_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self.session.scalars(stmt).first()
        if row is None:
            raise NotFound(f"no possible-same task {task_id}")
        return row

    def tasks(self, status: str | None, limit: int, offset: int) -> list[PossibleSameRow]:
        stmt = select(PossibleSameRow)
        if status:
            stmt = stmt.where(PossibleSameRow.status == status)
        return list(self.session.scalars(stmt.order_by(PossibleSameRow.opened_at,
                                                       PossibleSameRow.id)
                                         .limit(limit).offset(offset)))

    def linked_into(self, patient_id: str) -> list[str]:
        return list(self.session.scalars(select(PatientRow.id).where(
            PatientRow.linked_to == patient_id).order_by(PatientRow.id)))

    def tasks_between(self, a: str, b: str) -> list[PossibleSameRow]:
        pair = sorted((a, b))
        return list(self.session.scalars(select(PossibleSameRow).where(
            PossibleSameRow.patient_id == pair[0], PossibleSameRow.other_patient_id == pair[1])))

    def group(self, patient_id: str) -> list[str]:
        """The patient and everyone linked with them (their records are read together)."""
        row = self.session.get(PatientRow, patient_id)
        root = (row.linked_to or row.id) if row is not None else patient_id
        return [root, *self.linked_into(root)]
