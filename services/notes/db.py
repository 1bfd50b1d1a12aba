"""The notes service's tables and repositories. Only this service reads or writes them.

A note's current content lives in `notes`; every save of a draft is also kept whole in
`note_versions`. Rows are never deleted. Updates name the status and version they
expect, so a signed note cannot be overwritten even by a racing request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Session

from services.notes import domain as d
from shared.errors import Conflict

_BigId = BigInteger().with_variant(Integer(), "sqlite")
_At = DateTime(timezone=True)


class Base(DeclarativeBase):
    pass


notes = Table(
    "notes", Base.metadata,
    Column("id", String(36), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("author_id", String(64), nullable=False),
    Column("author_subject", String(120), nullable=False),
    Column("discipline", String(40), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("encounter_at", _At, nullable=False),
    Column("created_at", _At, nullable=False),
    Column("updated_at", _At, nullable=False),
    Column("signed_at", _At, nullable=True),
    Column("amends_note_id", String(36), ForeignKey("notes.id"), nullable=True, index=True),
    Column("sections", JSON, nullable=False),
    Column("measures", JSON, nullable=False),
    Column("scores", JSON, nullable=False),
    Column("treatment", JSON, nullable=False),
    Column("entered_in_error_at", _At, nullable=True),
    Column("entered_in_error_by", String(64), nullable=True),
    Column("entered_in_error_reason", Text, nullable=True),
    Index("ix_notes_patient_encounter", "patient_id", "encounter_at"),
)

note_versions = Table(
    "note_versions", Base.metadata,
    Column("note_id", String(36), ForeignKey("notes.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("saved_at", _At, nullable=False),
    Column("saved_by", String(120), nullable=False),
    Column("encounter_at", _At, nullable=False),
    Column("sections", JSON, nullable=False),
    Column("measures", JSON, nullable=False),
    Column("treatment", JSON, nullable=False),
    PrimaryKeyConstraint("note_id", "version", name="pk_note_versions"),
)

care_team = Table(
    "care_team_members", Base.metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("patient_id", String(64), nullable=False),
    Column("member_id", String(64), nullable=False),
    Column("discipline", String(40), nullable=True),
    Column("source", String(40), nullable=False),
    # "" when the membership came without a referral (unique constraints and NULL differ
    # between SQLite and PostgreSQL; an empty string behaves the same in both)
    Column("referral_key", String(64), nullable=False),
    Column("joined_at", _At, nullable=False),
    Column("left_at", _At, nullable=True),
    UniqueConstraint("patient_id", "member_id", "referral_key", name="uq_care_team_member"),
    Index("ix_care_team_patient", "patient_id", "left_at"),
)

discharged_referrals = Table(
    "discharged_referrals", Base.metadata,
    Column("referral_id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("at", _At, nullable=False),
)

break_glass = Table(
    "break_glass_access", Base.metadata,
    Column("id", String(36), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("actor_subject", String(120), nullable=False),
    Column("actor_id", String(64), nullable=False),
    Column("discipline", String(40), nullable=True),
    Column("reason", Text, nullable=False),
    Column("opened_at", _At, nullable=False),
    Column("expires_at", _At, nullable=False),
    Index("ix_break_glass_patient_actor", "patient_id", "actor_subject"),
)

safety_alerts = Table(
    "safety_alerts", Base.metadata,
    Column("id", String(36), primary_key=True),
    Column("note_id", String(36), ForeignKey("notes.id"), nullable=False),
    Column("patient_id", String(64), nullable=False, index=True),
    Column("measure", String(40), nullable=False),
    Column("value", Float, nullable=False),
    Column("raised_by", String(64), nullable=False),
    Column("raised_at", _At, nullable=False),
    UniqueConstraint("note_id", "measure", name="uq_safety_alert_note_measure"),
)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we stored was UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _note(row: Any) -> d.Note:
    return d.Note(
        id=row.id, patient_id=row.patient_id, author_id=row.author_id,
        author_subject=row.author_subject, discipline=row.discipline, kind=row.kind,
        status=row.status, version=row.version, encounter_at=aware(row.encounter_at),
        created_at=aware(row.created_at), updated_at=aware(row.updated_at),
        sections=row.sections or {}, measures=row.measures or {},
        treatment=row.treatment or {}, amends_note_id=row.amends_note_id,
        signed_at=aware(row.signed_at), entered_in_error_at=aware(row.entered_in_error_at),
        entered_in_error_by=row.entered_in_error_by,
        entered_in_error_reason=row.entered_in_error_reason)


@dataclass(frozen=True)
class TimelineFilter:
    disciplines: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    author_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    include_entered_in_error: bool = False


class NotesRepository:
    """Notes, their versions, addenda and safety alerts, through one session."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def get(self, note_id: str, *, for_update: bool = False) -> d.Note | None:
        stmt = select(notes).where(notes.c.id == note_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self.s.execute(stmt).first()
        return _note(row) if row else None

    def add(self, note: d.Note, saved_by: str) -> None:
        self.s.execute(insert(notes).values(**self._values(note), id=note.id,
                                            patient_id=note.patient_id,
                                            author_id=note.author_id,
                                            author_subject=note.author_subject,
                                            discipline=note.discipline, kind=note.kind,
                                            created_at=note.created_at,
                                            amends_note_id=note.amends_note_id))
        self._keep_version(note, saved_by)

    @staticmethod
    def _values(note: d.Note) -> dict[str, Any]:
        return dict(status=note.status, version=note.version, encounter_at=note.encounter_at,
                    updated_at=note.updated_at, signed_at=note.signed_at,
                    sections=note.sections, measures=note.measures, scores=note.scores,
                    treatment=note.treatment, entered_in_error_at=note.entered_in_error_at,
                    entered_in_error_by=note.entered_in_error_by,
                    entered_in_error_reason=note.entered_in_error_reason)

    def save(self, before: d.Note, after: d.Note, saved_by: str) -> None:
        """Write a change only over the state it was decided on; a signed note's content
        columns are never written again (the WHERE names the draft status)."""
        values = self._values(after)
        if before.status == d.SIGNED:
            # only the entered-in-error mark may touch a signed note; its words stay
            values = {k: values[k] for k in ("status", "updated_at", "entered_in_error_at",
                                             "entered_in_error_by",
                                             "entered_in_error_reason")}
        done = self.s.execute(
            update(notes).where(notes.c.id == before.id, notes.c.status == before.status,
                                notes.c.version == before.version).values(**values))
        if done.rowcount != 1:
            raise Conflict("the note changed meanwhile; reload it")
        if before.status == d.DRAFT and after.version != before.version:
            self._keep_version(after, saved_by)

    def _keep_version(self, note: d.Note, saved_by: str) -> None:
        self.s.execute(insert(note_versions).values(
            note_id=note.id, version=note.version, saved_at=note.updated_at,
            saved_by=saved_by, encounter_at=note.encounter_at, sections=note.sections,
            measures=note.measures, treatment=note.treatment))

    def versions(self, note_id: str) -> list[dict[str, Any]]:
        rows = self.s.execute(select(note_versions).where(note_versions.c.note_id == note_id)
                              .order_by(note_versions.c.version)).mappings().all()
        return [{**r, "saved_at": aware(r["saved_at"]),
                 "encounter_at": aware(r["encounter_at"])} for r in rows]

    def addenda_of(self, note_ids: Iterable[str]) -> dict[str, list[str]]:
        ids = list(note_ids)
        out: dict[str, list[str]] = {}
        if not ids:
            return out
        rows = self.s.execute(select(notes.c.amends_note_id, notes.c.id)
                              .where(notes.c.amends_note_id.in_(ids))
                              .order_by(notes.c.created_at))
        for amends, note_id in rows:
            out.setdefault(amends, []).append(note_id)
        return out

    def timeline(self, patient_id: str, reader: d.Clinician,
                 flt: TimelineFilter) -> list[d.Note]:
        """Every discipline's notes of a patient in time order, in one query: signed
        notes, the reader's own drafts, and (admins, on request) those in error."""
        shown = [notes.c.status == d.SIGNED,
                 and_(notes.c.status == d.DRAFT, notes.c.author_subject == reader.subject)]
        if reader.is_admin:
            shown.append(notes.c.status == d.DRAFT)
            if flt.include_entered_in_error:
                shown.append(notes.c.status == d.ENTERED_IN_ERROR)
        stmt = select(notes).where(notes.c.patient_id == patient_id, or_(*shown))
        if flt.disciplines:
            stmt = stmt.where(notes.c.discipline.in_(flt.disciplines))
        if flt.kinds:
            stmt = stmt.where(notes.c.kind.in_(flt.kinds))
        if flt.author_id:
            stmt = stmt.where(notes.c.author_id == flt.author_id)
        if flt.since:
            stmt = stmt.where(notes.c.encounter_at >= flt.since)
        if flt.until:
            stmt = stmt.where(notes.c.encounter_at < flt.until)
        stmt = stmt.order_by(notes.c.encounter_at, notes.c.created_at, notes.c.id)
        return [_note(r) for r in self.s.execute(stmt)]

    def raise_alert(self, alert_id: str, note: d.Note, measure: str, value: float,
                    raised_by: str, now: datetime) -> bool:
        """Record a safety alert once per note and measure; False if already raised."""
        seen = self.s.execute(select(safety_alerts.c.id).where(
            safety_alerts.c.note_id == note.id, safety_alerts.c.measure == measure)).first()
        if seen:
            return False
        self.s.execute(insert(safety_alerts).values(
            id=alert_id, note_id=note.id, patient_id=note.patient_id, measure=measure,
            value=value, raised_by=raised_by, raised_at=now))
        return True


class CareTeamRepository:
    """Who is on each patient's care team, as the events told us."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def active_ids(self, patient_id: str) -> set[str]:
        rows = self.s.execute(select(care_team.c.member_id).where(
            care_team.c.patient_id == patient_id, care_team.c.left_at.is_(None)))
        return {r[0] for r in rows}

    def members(self, patient_id: str) -> list[dict[str, Any]]:
        rows = self.s.execute(select(care_team).where(care_team.c.patient_id == patient_id)
                              .order_by(care_team.c.joined_at, care_team.c.id)).mappings()
        return [{**r, "referral_id": r["referral_key"] or None,
                 "joined_at": aware(r["joined_at"]), "left_at": aware(r["left_at"]),
                 "active": r["left_at"] is None} for r in rows]

    def discharged(self, referral_id: str | None) -> bool:
        if not referral_id:
            return False
        return self.s.execute(select(discharged_referrals.c.referral_id).where(
            discharged_referrals.c.referral_id == referral_id)).first() is not None

    def join(self, *, patient_id: str, member_id: str, discipline: str | None, source: str,
             referral_id: str | None, at: datetime) -> bool:
        """Add a member (once per referral); nothing if the referral was discharged
        already (events from two topics may arrive out of order)."""
        if self.discharged(referral_id):
            return False
        key = referral_id or ""
        exists = self.s.execute(select(care_team.c.id).where(
            care_team.c.patient_id == patient_id, care_team.c.member_id == member_id,
            care_team.c.referral_key == key)).first()
        if exists:
            return False
        self.s.execute(insert(care_team).values(
            patient_id=patient_id, member_id=member_id, discipline=discipline, source=source,
            referral_key=key, joined_at=at, left_at=None))
        return True

    def discharge(self, *, patient_id: str, referral_id: str, at: datetime) -> int:
        """Close the memberships of this referral, and those that came with no referral."""
        if not self.discharged(referral_id):
            self.s.execute(insert(discharged_referrals).values(
                referral_id=referral_id, patient_id=patient_id, at=at))
        done = self.s.execute(update(care_team).where(
            care_team.c.patient_id == patient_id, care_team.c.left_at.is_(None),
            care_team.c.referral_key.in_((referral_id, ""))).values(left_at=at))
        return done.rowcount or 0


class BreakGlassRepository:
    def __init__(self, session: Session) -> None:
        self.s = session

    def open(self, *, grant_id: str, patient_id: str, who: d.Clinician, reason: str,
             now: datetime, until: datetime) -> None:
        self.s.execute(insert(break_glass).values(
            id=grant_id, patient_id=patient_id, actor_subject=who.subject,
            actor_id=who.author_id, discipline=who.discipline, reason=reason,
            opened_at=now, expires_at=until))

    def active(self, patient_id: str, subject: str, now: datetime) -> str | None:
        """The id of this person's open grant for this patient, if any."""
        row = self.s.execute(select(break_glass.c.id).where(
            break_glass.c.patient_id == patient_id, break_glass.c.actor_subject == subject,
            break_glass.c.expires_at > now).order_by(break_glass.c.expires_at.desc())).first()
        return row[0] if row else None

    def report(self, *, since: datetime | None, limit: int, offset: int
               ) -> list[dict[str, Any]]:
        stmt = select(break_glass)
        if since:
            stmt = stmt.where(break_glass.c.opened_at >= since)
        rows = self.s.execute(stmt.order_by(break_glass.c.opened_at.desc())
                              .limit(limit).offset(offset)).mappings()
        return [{**r, "opened_at": aware(r["opened_at"]), "expires_at": aware(r["expires_at"])}
                for r in rows]
