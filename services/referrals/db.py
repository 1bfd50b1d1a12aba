"""The referrals service's tables and the repository that maps them to the domain.
Only this service reads or writes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from services.referrals import domain
from services.referrals.domain import (
    BreachRisk,
    Move,
    PathwayStep,
    PriorityTargets,
    Referral,
    Screening,
)
from shared.errors import NotFound


class Base(DeclarativeBase):
    pass


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; every time in this service is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class ReferralRow(Base):
    __tablename__ = "referrals"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(120))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))

    # PainCare's own patient id (the registry's); what the referrer called them is in
    # patient_identifiers, each with its system.
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    patient_identifiers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    patient_name: Mapped[str] = mapped_column(String(200))
    patient_date_of_birth: Mapped[date] = mapped_column(Date)
    patient_email: Mapped[str | None] = mapped_column(String(254))
    patient_phone: Mapped[str | None] = mapped_column(String(40))
    preferred_channel: Mapped[str] = mapped_column(String(10))
    language: Mapped[str] = mapped_column(String(10))

    referrer_name: Mapped[str] = mapped_column(String(200))
    referrer_organisation: Mapped[str] = mapped_column(String(200))
    referrer_email: Mapped[str | None] = mapped_column(String(254))
    referrer_phone: Mapped[str | None] = mapped_column(String(40))
    referrer_key: Mapped[str] = mapped_column(String(402))

    condition: Mapped[str] = mapped_column(String(40), index=True)
    condition_detail: Mapped[str | None] = mapped_column(String(500))
    pain_duration_value: Mapped[int] = mapped_column(Integer)
    pain_duration_unit: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    medications: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    urgency_requested: Mapped[str | None] = mapped_column(String(10))

    held_from: Mapped[str | None] = mapped_column(String(20))
    priority: Mapped[str | None] = mapped_column(String(10), index=True)
    target_days: Mapped[int | None] = mapped_column(Integer)
    due_by: Mapped[date | None] = mapped_column(Date, index=True)
    screening_tool: Mapped[str | None] = mapped_column(String(20))
    screening_score: Mapped[int | None] = mapped_column(Integer)
    pathway: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    triaged_by: Mapped[str | None] = mapped_column(String(120))
    triaged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_reason: Mapped[str | None] = mapped_column(Text)
    first_visit_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # At risk of missing the target now (cleared by an itinerary within due_by).
    breach_reason: Mapped[str | None] = mapped_column(String(30), index=True)
    breach_detected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    breach_first_visit_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the sweep warned that it was still unscheduled near its due date: once only,
    # claimed by a conditional update so that two worker replicas never both warn.
    near_due_warned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_referrals_duplicates", "patient_id", "condition", "received_at"),)


class HistoryRow(Base):
    __tablename__ = "referral_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(120))
    actor_role: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(String(36))


class BreachRiskRow(Base):
    """Each breach risk raised, once per (referral, occasion): the itinerary whose first
    visit is late, or "unscheduled" for the sweep's warning."""

    __tablename__ = "referral_breach_risks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    occasion: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(30))
    due_by: Mapped[date] = mapped_column(Date)
    first_visit_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    detected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("referral_id", "occasion",
                                       name="uq_referral_breach_risks_occasion"),)


UNSCHEDULED_OCCASION = "unscheduled"


class CareTeamRow(Base):
    """A patient's care team as the referral desk knows it, so that a specialist reads
    only their own patients' referrals. Built here, not asked of notes at each request:
    the triage lead who triaged and the specialist who accepted join in the move's own
    transaction; each provider booked for the referral joins from appointment.booked
    (the event notes builds its care team from), so no service calls another to
    authorise a read. The referral's discharge closes its memberships."""

    __tablename__ = "referral_care_team"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    member_id: Mapped[str] = mapped_column(String(120), index=True)
    discipline: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(40))
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("referral_id", "member_id",
                                       name="uq_referral_care_team_member"),)


class PriorityTargetRow(Base):
    """The clinic's own target days per priority; a missing row means the default."""

    __tablename__ = "priority_targets"

    priority: Mapped[str] = mapped_column(String(10), primary_key=True)
    target_days: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# ------------------------------------------------------------------------ mapping

def to_domain(row: ReferralRow) -> Referral:
    screening = (Screening(row.screening_tool, row.screening_score)
                 if row.screening_tool is not None and row.screening_score is not None
                 else None)
    return Referral(
        id=row.id, patient_id=row.patient_id, condition=row.condition,
        received_at=aware(row.received_at), status=row.status,  # type: ignore[arg-type]
        urgency_requested=row.urgency_requested, held_from=row.held_from,
        priority=row.priority, target_days=row.target_days, due_by=row.due_by,
        screening=screening, pathway=tuple(pathway_from_json(row.pathway or [])),
        triaged_by=row.triaged_by, triaged_at=aware(row.triaged_at),
        decided_by=row.decided_by, decided_at=aware(row.decided_at),
        closed_reason=row.closed_reason, first_visit_at=aware(row.first_visit_at),
        breach_risk=BreachRisk(row.breach_reason, aware(row.breach_detected_at),  # type: ignore[arg-type]
                               aware(row.breach_first_visit_at))
        if row.breach_reason else None)


def pathway_to_json(steps: Sequence[PathwayStep]) -> list[dict[str, Any]]:
    return [{"discipline": s.discipline, "visit_minutes": s.visit_minutes,
             "sessions": s.sessions, "interval_days": s.interval_days, "after": list(s.after)}
            for s in steps]


def pathway_from_json(items: Sequence[dict[str, Any]]) -> list[PathwayStep]:
    return [PathwayStep(i["discipline"], i["visit_minutes"], i["sessions"], i["interval_days"],
                        tuple(i.get("after") or ())) for i in items]


def apply(row: ReferralRow, referral: Referral, *, now: datetime) -> None:
    """Copy what the workflow changed back onto the row."""
    row.status = referral.status
    row.held_from = referral.held_from
    row.priority = referral.priority
    row.target_days = referral.target_days
    row.due_by = referral.due_by
    row.screening_tool = referral.screening.tool if referral.screening else None
    row.screening_score = referral.screening.score if referral.screening else None
    row.pathway = pathway_to_json(referral.pathway)
    row.triaged_by = referral.triaged_by
    row.triaged_at = referral.triaged_at
    row.decided_by = referral.decided_by
    row.decided_at = referral.decided_at
    row.closed_reason = referral.closed_reason
    row.first_visit_at = referral.first_visit_at
    risk = referral.breach_risk
    row.breach_reason = risk.reason if risk else None
    row.breach_detected_at = risk.detected_at if risk else None
    row.breach_first_visit_at = risk.first_visit_at if risk else None
    row.updated_at = now


# --------------------------------------------------------------------- repository

@dataclass(frozen=True)
class ListFilters:
    status: str | None = None
    priority: str | None = None
    condition: str | None = None
    referrer: str | None = None
    patient_id: str | None = None
    overdue: bool | None = None
    breach_risk: bool | None = None


class Referrals:
    """Reads and writes of referrals, within the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, referral_id: str, *, for_update: bool = False) -> ReferralRow:
        if len(referral_id) > 64 or not referral_id.isprintable():
            raise NotFound("no such referral")  # and never a NUL byte sent to PostgreSQL
        stmt = select(ReferralRow).where(ReferralRow.id == referral_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self.session.scalars(stmt).first()
        if row is None:
            raise NotFound(f"no referral {referral_id}")
        return row

    # --- care team -------------------------------------------------------------------

    def join_team(self, row: ReferralRow, member_id: str, *, discipline: str | None,
                  source: str, at: datetime) -> None:
        """Idempotent: a member already on this referral's team stays as they were (a
        redelivered booking adds no one); a discharged referral's team takes no one."""
        if row.status == domain.DISCHARGED or not member_id:
            return
        existing = self.session.scalars(select(CareTeamRow).where(
            CareTeamRow.referral_id == row.id, CareTeamRow.member_id == member_id)).first()
        if existing is None:
            self.session.add(CareTeamRow(patient_id=row.patient_id, referral_id=row.id,
                                         member_id=member_id[:120], discipline=discipline,
                                         source=source, joined_at=at))
        elif existing.discipline is None and discipline:
            existing.discipline = discipline

    def close_team(self, referral_id: str, at: datetime) -> None:
        for member in self.session.scalars(select(CareTeamRow).where(
                CareTeamRow.referral_id == referral_id, CareTeamRow.left_at.is_(None))):
            member.left_at = at

    def linked_group(self, patient_id: str) -> list[str]:
        """The patient and everyone the registry links with them (patients.linked_to)."""
        patients = Base.metadata.tables["patients"]
        root = self.session.execute(select(patients.c.linked_to).where(
            patients.c.id == patient_id)).scalar_one_or_none() or patient_id
        linked = self.session.scalars(select(patients.c.id).where(
            patients.c.linked_to == root).order_by(patients.c.id))
        return [root, *linked]

    def team_of(self, patient_id: str) -> list[domain.Member]:
        """The patient's active care team, over all their referrals (and those of the
        patients linked with them)."""
        rows = self.session.execute(select(CareTeamRow.member_id, CareTeamRow.discipline)
                                    .where(CareTeamRow.patient_id.in_(
                                        self.linked_group(patient_id)),
                                           CareTeamRow.left_at.is_(None)))
        return [domain.Member(m, d) for m, d in rows]

    @staticmethod
    def readable_by(actor: domain.Actor) -> ColumnElement[bool] | None:
        """domain.may_read in SQL, so that lists and paging show only what the reader
        may see (None: everything)."""
        if actor.role == "scheduler":
            return None
        if actor.role == domain.REFERRER:
            return ReferralRow.created_by == actor.id
        mine = select(CareTeamRow.patient_id).where(
            CareTeamRow.member_id.in_(sorted(actor.member_ids)), CareTeamRow.left_at.is_(None))
        conds: list[ColumnElement[bool]] = []
        if actor.has("specialist") or actor.has(domain.TRIAGE_LEAD):
            conds.append(ReferralRow.patient_id.in_(mine))
        if actor.has(domain.TRIAGE_LEAD):
            conds.append(ReferralRow.status.in_(domain.AWAITING_SPECIALIST))
            conds.append(and_(ReferralRow.status == domain.ON_HOLD,
                              ReferralRow.held_from.in_(domain.AWAITING_SPECIALIST)))
        return or_(*conds) if conds else ReferralRow.id.is_(None)

    def find(self, referral_id: str, *, for_update: bool = False) -> ReferralRow | None:
        try:
            return self.get(referral_id, for_update=for_update)
        except NotFound:
            return None

    def by_idempotency_key(self, key: str) -> ReferralRow | None:
        return self.session.scalars(
            select(ReferralRow).where(ReferralRow.idempotency_key == key)).first()

    def lock_duplicates(self, lock_key: str) -> None:
        """Serialise two submissions that could be duplicates of each other. SQLite
        already has (BEGIN IMMEDIATE); PostgreSQL takes a transaction advisory lock."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text("select pg_advisory_xact_lock(hashtext(:k))"),
                                 {"k": lock_key})

    def open_candidates(self, patient_id: str, condition: str
                        ) -> list[tuple[str, str, datetime]]:
        rows = self.session.execute(
            select(ReferralRow.id, ReferralRow.referrer_key, ReferralRow.received_at)
            .where(ReferralRow.patient_id == patient_id, ReferralRow.condition == condition,
                   ReferralRow.status.not_in(tuple(domain.CLOSED))))
        return [(r.id, r.referrer_key, aware(r.received_at)) for r in rows]  # type: ignore[misc]

    def add(self, row: ReferralRow) -> None:
        self.session.add(row)
        self.session.flush()

    def record(self, referral_id: str, step: Move, *, event_id: str | None = None) -> None:
        self.session.add(HistoryRow(
            referral_id=referral_id, action=step.action, from_status=step.from_status,
            to_status=step.to_status, at=step.at, actor=step.actor.id,
            actor_role=step.actor.role, reason=step.reason, event_id=event_id))
        self.session.flush()

    def history(self, referral_id: str) -> list[HistoryRow]:
        return list(self.session.scalars(
            select(HistoryRow).where(HistoryRow.referral_id == referral_id)
            .order_by(HistoryRow.id)))

    def _filtered(self, f: ListFilters, today: date) -> ColumnElement[bool] | None:
        conds = []
        if f.status:
            conds.append(ReferralRow.status == f.status)
        if f.priority:
            conds.append(ReferralRow.priority == f.priority)
        if f.condition:
            conds.append(ReferralRow.condition == f.condition)
        if f.patient_id:  # PainCare's id, or an identifier's value (a search, not a match)
            idents = Base.metadata.tables["patient_identifiers"]
            conds.append(or_(ReferralRow.patient_id == f.patient_id,
                             ReferralRow.patient_id.in_(select(idents.c.patient_id).where(
                                 idents.c.value == f.patient_id))))
        if f.referrer:
            like = f"%{f.referrer.casefold()}%"
            conds.append(or_(func.lower(ReferralRow.referrer_name).like(like),
                             func.lower(ReferralRow.referrer_organisation).like(like)))
        overdue = and_(ReferralRow.status.in_(domain.WAITING), ReferralRow.due_by < today)
        if f.overdue is True:
            conds.append(overdue)
        elif f.overdue is False:
            conds.append(~overdue | ReferralRow.due_by.is_(None))
        if f.breach_risk is True:
            conds.append(ReferralRow.breach_reason.is_not(None))
        elif f.breach_risk is False:
            conds.append(ReferralRow.breach_reason.is_(None))
        return and_(*conds) if conds else None

    def page(self, f: ListFilters, *, today: date, limit: int, offset: int,
             reader: domain.Actor | None = None) -> tuple[list[ReferralRow], int]:
        where = self._filtered(f, today)
        scope = self.readable_by(reader) if reader is not None else None
        if scope is not None:
            where = scope if where is None else and_(where, scope)
        stmt = select(ReferralRow)
        count = select(func.count()).select_from(ReferralRow)
        if where is not None:
            stmt, count = stmt.where(where), count.where(where)
        rows = self.session.scalars(
            stmt.order_by(ReferralRow.received_at.desc(), ReferralRow.id)
            .limit(limit).offset(offset))
        return list(rows), self.session.execute(count).scalar_one()

    def triage_queue(self, *, limit: int, offset: int, breach_risk: bool | None = None,
                     reader: domain.Actor | None = None) -> tuple[list[ReferralRow], int]:
        """Ordered as domain.queue_order says, in SQL so that paging is right."""
        effective = func.coalesce(ReferralRow.priority, ReferralRow.urgency_requested)
        rank = case({"urgent": 0, "soon": 1}, value=effective, else_=2)
        waiting = ReferralRow.status.in_(domain.AWAITING_SPECIALIST)
        if breach_risk is not None:
            waiting = and_(waiting, ReferralRow.breach_reason.is_not(None) if breach_risk
                           else ReferralRow.breach_reason.is_(None))
        scope = self.readable_by(reader) if reader is not None else None
        if scope is not None:
            waiting = and_(waiting, scope)
        rows = self.session.scalars(
            select(ReferralRow).where(waiting)
            .order_by(rank, ReferralRow.received_at, ReferralRow.id).limit(limit).offset(offset))
        total = self.session.execute(
            select(func.count()).select_from(ReferralRow).where(waiting)).scalar_one()
        return list(rows), total

    # --- breach risk ----------------------------------------------------------------

    def breach_raised(self, referral_id: str, occasion: str) -> bool:
        return self.session.execute(select(BreachRiskRow.id).where(
            BreachRiskRow.referral_id == referral_id,
            BreachRiskRow.occasion == occasion)).first() is not None

    def record_breach(self, row: ReferralRow, occasion: str, risk: BreachRisk) -> None:
        self.session.add(BreachRiskRow(
            referral_id=row.id, occasion=occasion, reason=risk.reason, due_by=row.due_by,
            first_visit_at=risk.first_visit_at, detected_at=risk.detected_at))
        self.session.flush()

    def clear_breaches(self, referral_id: str, now: datetime) -> None:
        self.session.execute(update(BreachRiskRow).where(
            BreachRiskRow.referral_id == referral_id, BreachRiskRow.cleared_at.is_(None))
            .values(cleared_at=now).execution_options(synchronize_session=False))

    def near_due_candidates(self, cutoff: date, limit: int) -> list[str]:
        """Ids of triaged or accepted referrals due by `cutoff` not yet warned about."""
        return list(self.session.scalars(
            select(ReferralRow.id).where(ReferralRow.status.in_(domain.UNSCHEDULED),
                                         ReferralRow.due_by <= cutoff,
                                         ReferralRow.near_due_warned_at.is_(None))
            .order_by(ReferralRow.due_by, ReferralRow.id).limit(limit)))

    def claim_near_due(self, referral_id: str, cutoff: date, now: datetime) -> bool:
        """Claim the one warning for this referral: a conditional update that only one
        transaction can make (another replica's waits, then finds it taken)."""
        done = self.session.execute(update(ReferralRow).where(
            ReferralRow.id == referral_id, ReferralRow.near_due_warned_at.is_(None),
            ReferralRow.status.in_(domain.UNSCHEDULED), ReferralRow.due_by <= cutoff)
            .values(near_due_warned_at=now).execution_options(synchronize_session=False))
        return done.rowcount == 1

    def targets(self, defaults: PriorityTargets) -> PriorityTargets:
        days = dict(defaults.days)
        for row in self.session.scalars(select(PriorityTargetRow)):
            days[row.priority] = row.target_days
        return PriorityTargets(days)

    def set_target(self, priority: str, days: int, *, by: str, now: datetime) -> None:
        row = self.session.get(PriorityTargetRow, priority)
        if row is None:
            self.session.add(PriorityTargetRow(priority=priority, target_days=days,
                                               updated_by=by, updated_at=now))
        else:
            row.target_days, row.updated_by, row.updated_at = days, by, now
        self.session.flush()
