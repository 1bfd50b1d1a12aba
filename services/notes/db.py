"""The notes service's tables and repositories. Only this service reads or writes them.

A note's current content lives in `notes`; every save of a draft is also kept whole in
`note_versions`. Rows are never deleted. Updates name the status and version they
expect, so a signed note cannot be overwritten even by a racing request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
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
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session

from services.notes import domain as d
from services.notes import safety
from shared import patient_links as links
from shared.errors import Conflict
from shared.patient_links import add_patient_links_table

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
    Column("shared_at", _At, nullable=True),
    Column("shared_by", String(64), nullable=True),
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

# patients linked by the registry (patient.linked / patient.unlinked): their notes and
# care teams are read together, nothing moved
patient_links = add_patient_links_table(Base.metadata)

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
    Column("note_id", String(36), ForeignKey("notes.id"), nullable=False, index=True),
    Column("patient_id", String(64), nullable=False, index=True),
    Column("source", String(20), nullable=False),
    Column("severity", Integer, nullable=False),
    Column("raised_by", String(64), nullable=False),
    Column("raised_at", _At, nullable=False),
    Column("last_raised_at", _At, nullable=True),
    Column("status", String(20), nullable=False),
    # routed at raise time: [{recipient_id, role}]
    Column("recipients", JSON, nullable=False),
    Column("escalations", Integer, nullable=False),
    Column("next_escalation_at", _At, nullable=True),
    Column("escalated_to", JSON, nullable=False),
    # free text: stays in this service, never in an event
    Column("flag_reason", Text, nullable=True),
    Column("acknowledged_by", String(64), nullable=True),
    Column("acknowledged_at", _At, nullable=True),
    Column("ack_action", String(40), nullable=True),
    Column("ack_detail", Text, nullable=True),
    Column("closed_by", String(64), nullable=True),
    Column("closed_at", _At, nullable=True),
    Column("close_reason", String(40), nullable=True),
    Column("close_detail", Text, nullable=True),
    Index("ix_safety_alerts_due", "status", "next_escalation_at"),
)

duty_rota = Table(
    "duty_rota", Base.metadata,
    Column("day", Date, primary_key=True),
    Column("clinician_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("set_by", String(120), nullable=False),
    Column("set_at", _At, nullable=False),
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
        entered_in_error_reason=row.entered_in_error_reason,
        shared_at=aware(row.shared_at), shared_by=row.shared_by)


@dataclass(frozen=True)
class TimelineFilter:
    disciplines: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    author_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    include_entered_in_error: bool = False


class NotesRepository:
    """Notes, their versions and addenda, through one session."""

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
                    entered_in_error_reason=note.entered_in_error_reason,
                    shared_at=note.shared_at, shared_by=note.shared_by)

    def save(self, before: d.Note, after: d.Note, saved_by: str) -> None:
        """Write a change only over the state it was decided on; a signed note's content
        columns are never written again (the WHERE names the draft status)."""
        values = self._values(after)
        if before.status == d.SIGNED:
            # only the entered-in-error mark may touch a signed note; its words stay
            values = {k: values[k] for k in ("status", "updated_at", "entered_in_error_at",
                                             "entered_in_error_by",
                                             "entered_in_error_reason", "shared_at",
                                             "shared_by")}
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

    def timeline(self, patient_id: str, reader: d.Clinician, flt: TimelineFilter,
                 access: d.Access | None = None) -> list[d.Note]:
        """Every discipline's notes of a patient in time order, in one query: signed
        notes, the reader's own drafts, and on request those in error (the reader's own;
        all of them to an admin through break-glass: see domain.visible)."""
        shown = [notes.c.status == d.SIGNED,
                 and_(notes.c.status == d.DRAFT, notes.c.author_subject == reader.subject)]
        if flt.include_entered_in_error:
            if reader.is_admin and access is d.Access.BREAK_GLASS:
                shown.append(notes.c.status == d.ENTERED_IN_ERROR)
            else:
                shown.append(and_(notes.c.status == d.ENTERED_IN_ERROR,
                                  notes.c.author_subject == reader.subject))
        # a linked patient's notes are read together (nothing moved: an unlink parts them)
        stmt = select(notes).where(notes.c.patient_id.in_(
            links.group(self.s, patient_links, patient_id)), or_(*shown))
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


class CareTeamRepository:
    """Who is on each patient's care team, as the events told us."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def group(self, patient_id: str) -> list[str]:
        """The patient and everyone linked with them (shared.patient_links)."""
        return links.group(self.s, patient_links, patient_id)

    def active_ids(self, patient_id: str) -> set[str]:
        rows = self.s.execute(select(care_team.c.member_id).where(
            care_team.c.patient_id.in_(self.group(patient_id)), care_team.c.left_at.is_(None)))
        return {r[0] for r in rows}

    def active_members(self, patient_id: str) -> list[safety.Member]:
        """Active memberships with discipline and joining time (a safety alert's routing)."""
        rows = self.s.execute(select(care_team).where(
            care_team.c.patient_id.in_(self.group(patient_id)), care_team.c.left_at.is_(None)))
        return [safety.Member(r.member_id, r.discipline, aware(r.joined_at), r.source)
                for r in rows]

    def patients_of(self, member_ids: Iterable[str]) -> set[str]:
        """The patients whose care team a person is on now (by provider id or subject)."""
        ids = [i for i in member_ids if i]
        if not ids:
            return set()
        rows = self.s.execute(select(care_team.c.patient_id).where(
            care_team.c.member_id.in_(ids), care_team.c.left_at.is_(None)).distinct())
        mine = {r[0] for r in rows}
        return mine | links.linked_with(self.s, patient_links, mine)

    def members(self, patient_id: str) -> list[dict[str, Any]]:
        rows = self.s.execute(select(care_team).where(
            care_team.c.patient_id.in_(self.group(patient_id)))
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


def _recipients(value: Any) -> tuple[safety.Recipient, ...]:
    return tuple(safety.Recipient(r["recipient_id"], r["role"]) for r in value or ())


def _plain_recipients(recipients: Iterable[safety.Recipient]) -> list[dict[str, str]]:
    return [{"recipient_id": r.recipient_id, "role": r.role} for r in recipients]


def _alert(row: Any) -> safety.Alert:
    return safety.Alert(
        id=row.id, patient_id=row.patient_id, note_id=row.note_id, source=row.source,
        severity=row.severity, raised_by=row.raised_by, raised_at=aware(row.raised_at),
        status=row.status, recipients=_recipients(row.recipients),
        escalations=row.escalations, next_escalation_at=aware(row.next_escalation_at),
        escalated_to=_recipients(row.escalated_to),
        last_raised_at=aware(row.last_raised_at), flag_reason=row.flag_reason,
        acknowledged_by=row.acknowledged_by, acknowledged_at=aware(row.acknowledged_at),
        ack_action=row.ack_action, ack_detail=row.ack_detail, closed_by=row.closed_by,
        closed_at=aware(row.closed_at), close_reason=row.close_reason,
        close_detail=row.close_detail)


def _alert_values(alert: safety.Alert) -> dict[str, Any]:
    return dict(
        severity=alert.severity, status=alert.status, last_raised_at=alert.last_raised_at,
        recipients=_plain_recipients(alert.recipients), escalations=alert.escalations,
        next_escalation_at=alert.next_escalation_at,
        escalated_to=_plain_recipients(alert.escalated_to),
        acknowledged_by=alert.acknowledged_by, acknowledged_at=alert.acknowledged_at,
        ack_action=alert.ack_action, ack_detail=alert.ack_detail, closed_by=alert.closed_by,
        closed_at=alert.closed_at, close_reason=alert.close_reason,
        close_detail=alert.close_detail)


class SafetyAlertRepository:
    """Safety alerts. Every change names the state it was decided on (status, severity,
    escalation count), so two requests or two worker replicas never both win."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def add(self, alert: safety.Alert) -> None:
        self.s.execute(insert(safety_alerts).values(
            id=alert.id, note_id=alert.note_id, patient_id=alert.patient_id,
            source=alert.source, raised_by=alert.raised_by, raised_at=alert.raised_at,
            flag_reason=alert.flag_reason, **_alert_values(alert)))

    def get(self, alert_id: str, *, for_update: bool = False) -> safety.Alert | None:
        stmt = select(safety_alerts).where(safety_alerts.c.id == alert_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self.s.execute(stmt).first()
        return _alert(row) if row else None

    def of_notes(self, note_ids: Iterable[str]) -> dict[str, list[safety.Alert]]:
        ids = list(note_ids)
        out: dict[str, list[safety.Alert]] = {}
        if not ids:
            return out
        rows = self.s.execute(select(safety_alerts).where(safety_alerts.c.note_id.in_(ids))
                              .order_by(safety_alerts.c.raised_at, safety_alerts.c.id))
        for row in rows:
            out.setdefault(row.note_id, []).append(_alert(row))
        return out

    def latest_of_note(self, note_id: str, source: str) -> safety.Alert | None:
        row = self.s.execute(select(safety_alerts).where(
            safety_alerts.c.note_id == note_id, safety_alerts.c.source == source)
            .order_by(safety_alerts.c.raised_at.desc(), safety_alerts.c.id.desc())
            .with_for_update()).first()
        return _alert(row) if row else None

    def change(self, before: safety.Alert, after: safety.Alert) -> None:
        """Write `after` only over `before` as it was read; else someone else moved it."""
        done = self.s.execute(update(safety_alerts).where(
            safety_alerts.c.id == before.id, safety_alerts.c.status == before.status,
            safety_alerts.c.severity == before.severity,
            safety_alerts.c.escalations == before.escalations).values(**_alert_values(after)))
        if done.rowcount != 1:
            raise Conflict("the safety alert changed meanwhile; reload it")

    def escalate(self, before: safety.Alert, after: safety.Alert, now: datetime) -> bool:
        """Claim one escalation: only an open alert still at `before`'s count and due by
        `now`. Of several worker replicas exactly one gets rowcount 1."""
        done = self.s.execute(update(safety_alerts).where(
            safety_alerts.c.id == before.id, safety_alerts.c.status == safety.OPEN,
            safety_alerts.c.escalations == before.escalations,
            safety_alerts.c.next_escalation_at <= now).values(
                escalations=after.escalations, next_escalation_at=after.next_escalation_at,
                escalated_to=_plain_recipients(after.escalated_to)))
        return done.rowcount == 1

    def due(self, now: datetime, limit: int = 100) -> list[safety.Alert]:
        rows = self.s.execute(select(safety_alerts).where(
            safety_alerts.c.status == safety.OPEN, safety_alerts.c.next_escalation_at <= now)
            .order_by(safety_alerts.c.next_escalation_at).limit(limit))
        return [_alert(r) for r in rows]

    def find(self, *, statuses: Iterable[str], patient_ids: Iterable[str] | None,
             limit: int, offset: int) -> list[safety.Alert]:
        """Newest first; `patient_ids` None means every patient."""
        stmt = select(safety_alerts).where(safety_alerts.c.status.in_(list(statuses)))
        if patient_ids is not None:
            stmt = stmt.where(safety_alerts.c.patient_id.in_(list(patient_ids)))
        stmt = stmt.order_by(safety_alerts.c.raised_at.desc(), safety_alerts.c.id.desc())
        return [_alert(r) for r in self.s.execute(stmt.limit(limit).offset(offset))]


class DutyRotaRepository:
    """Who is the duty clinician on each of the clinic's days."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def on(self, day: date) -> dict[str, Any] | None:
        row = self.s.execute(select(duty_rota).where(duty_rota.c.day == day)).mappings().first()
        return self._shape(row) if row else None

    def put(self, *, day: date, clinician_id: str, name: str, by: str, now: datetime) -> bool:
        """Set the day's duty clinician; True if the day had none before."""
        values = dict(clinician_id=clinician_id, name=name, set_by=by, set_at=now)
        done = self.s.execute(update(duty_rota).where(duty_rota.c.day == day).values(**values))
        if done.rowcount == 1:
            return False
        try:
            with self.s.begin_nested():   # two admins naming the same new day at once
                self.s.execute(insert(duty_rota).values(day=day, **values))
        except IntegrityError:
            raise Conflict("the day's rota was set meanwhile; reload it") from None
        return True

    def delete(self, day: date) -> bool:
        return (self.s.execute(duty_rota.delete().where(duty_rota.c.day == day)).rowcount
                or 0) == 1

    def between(self, first: date, last: date) -> list[dict[str, Any]]:
        rows = self.s.execute(select(duty_rota).where(duty_rota.c.day >= first,
                                                      duty_rota.c.day <= last)
                              .order_by(duty_rota.c.day)).mappings()
        return [self._shape(r) for r in rows]

    @staticmethod
    def _shape(row: Any) -> dict[str, Any]:
        return {"date": row["day"], "clinician_id": row["clinician_id"], "name": row["name"],
                "set_by": row["set_by"], "set_at": aware(row["set_at"])}
