"""The referral's clinical rules, pure: the status workflow, triage (priority, screening,
care pathway), intake checks and duplicate detection.

Nothing here touches Flask, SQLAlchemy or Kafka, and nothing reads the clock: every
function that needs the time takes `now`, so the rules can be tested alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, tzinfo

from shared.errors import Conflict, Forbidden, InvalidInput
from shared.events.vocabulary import CONDITIONS, DISCIPLINES, PRIORITIES, SCREENING_TOOLS

RECEIVED = "received"
TRIAGED = "triaged"
ACCEPTED = "accepted"
SCHEDULED = "scheduled"
IN_CARE = "in_care"
DISCHARGED = "discharged"
REJECTED = "rejected"
CANCELLED = "cancelled"
ON_HOLD = "on_hold"

STATUSES = (RECEIVED, TRIAGED, ACCEPTED, SCHEDULED, IN_CARE, DISCHARGED, REJECTED,
            CANCELLED, ON_HOLD)
CLOSED = frozenset({DISCHARGED, REJECTED, CANCELLED})
# Still waiting for a first visit: these are the ones that can breach their target.
WAITING = (RECEIVED, TRIAGED, ACCEPTED, SCHEDULED, ON_HOLD)
# A specialist's work: referrals to triage, and triaged ones to accept or reject.
AWAITING_SPECIALIST = (RECEIVED, TRIAGED)

PAIN_MEDICINE = "pain_medicine"

# Every move of the workflow, by name: the statuses it may start from and where it
# ends. `resume` ends where the referral was when it was put on hold.
MOVES: dict[str, tuple[frozenset[str], str | None]] = {
    "triage": (frozenset({RECEIVED, TRIAGED}), TRIAGED),
    "accept": (frozenset({TRIAGED}), ACCEPTED),
    "reject": (frozenset({RECEIVED, TRIAGED}), REJECTED),
    "cancel": (frozenset({RECEIVED, TRIAGED, ACCEPTED, SCHEDULED, ON_HOLD}), CANCELLED),
    "hold": (frozenset({RECEIVED, TRIAGED, ACCEPTED, SCHEDULED, IN_CARE}), ON_HOLD),
    "resume": (frozenset({ON_HOLD}), None),
    "schedule": (frozenset({ACCEPTED}), SCHEDULED),
    "start_care": (frozenset({SCHEDULED}), IN_CARE),
    "discharge": (frozenset({IN_CARE}), DISCHARGED),
}
# Moves that must say why: a patient or referrer is owed the reason.
REASON_REQUIRED = frozenset({"reject", "cancel", "hold"})

SCREENING_RANGES: dict[str, tuple[int, int]] = {
    "dn4": (0, 10),
    "lanss": (0, 24),
    "paindetect": (-1, 38),
}
DEFAULT_TARGET_DAYS: dict[str, int] = {"urgent": 7, "soon": 28, "routine": 90}
PRIORITY_RANK: dict[str | None, int] = {"urgent": 0, "soon": 1, "routine": 2, None: 2}

assert set(SCREENING_RANGES) == set(SCREENING_TOOLS)
assert set(DEFAULT_TARGET_DAYS) == set(PRIORITIES)


@dataclass(frozen=True)
class Actor:
    """Who makes a move: a person (subject and role) or a service acting on an event.
    `roles` is every role the token carries (a specialist may also be the triage lead)."""

    id: str
    role: str
    discipline: str | None = None
    roles: tuple[str, ...] = ()
    provider_id: str | None = None

    def has(self, role: str) -> bool:
        return role == self.role or role in self.roles

    @property
    def member_ids(self) -> set[str]:
        """The ids a care team may know this person by (token subject, provider id)."""
        return {i for i in (self.id, self.provider_id) if i}


# ------------------------------------------------------------------- care team access

TRIAGE_LEAD = "triage_lead"
TEAM_DECISIONS = ("accept", "reject", "cancel", "hold", "resume", "discharge")


@dataclass(frozen=True)
class Member:
    """One active member of a patient's care team as the referral desk knows it."""

    member_id: str
    discipline: str | None


def on_team(actor: Actor, team: Iterable[Member]) -> bool:
    return bool(actor.member_ids & {m.member_id for m in team})


def is_pain_medicine_lead(actor: Actor, team: Iterable[Member]) -> bool:
    """The patient's pain-medicine lead: a pain-medicine specialist on their care team."""
    return (actor.role == "specialist" and actor.discipline == PAIN_MEDICINE
            and any(m.member_id in actor.member_ids and m.discipline == PAIN_MEDICINE
                    for m in team))


def waiting_for_triage_lead(status: str, held_from: str | None) -> bool:
    """Waiting for triage or a decision, or put on hold while it was."""
    return status in AWAITING_SPECIALIST or (status == ON_HOLD
                                             and held_from in AWAITING_SPECIALIST)


REFERRER = "referrer"
STATUS_FIELDS = ("id", "status", "received_at", "updated_at")


def may_read(actor: Actor, status: str, team: Iterable[Member], *,
             held_from: str | None = None, created_by: str | None = None) -> bool:
    """Schedulers read every referral (administrative fields: see sees_clinical_fields);
    a specialist those of the patients whose care team they are on; the triage lead also
    those waiting for triage or a decision; a referring system the status of its own
    (the referral keeps the system's token subject as `created_by`)."""
    if actor.role == "scheduler":
        return True
    if actor.role == REFERRER:
        return created_by == actor.id
    if actor.has(TRIAGE_LEAD) and waiting_for_triage_lead(status, held_from):
        return True
    return (actor.has("specialist") or actor.has(TRIAGE_LEAD)) and on_team(actor, team)


def sees_clinical_fields(actor: Actor) -> bool:
    """Medications, reason, screening, condition detail and attachments are clinical
    text: a scheduler (or a referring system) sees a referral's administrative fields."""
    return actor.has("specialist") or actor.has(TRIAGE_LEAD)


def require_decision(actor: Actor, action: str, team: Iterable[Member]) -> None:
    """Triage is the triage lead's; a decision on a referral (accept, reject, hold,
    resume, cancel, discharge) the triage lead's or the patient's pain-medicine lead's."""
    if action == "triage":
        if not actor.has(TRIAGE_LEAD):
            raise Forbidden("only the triage lead triages a referral")
        return
    if action in TEAM_DECISIONS and not (actor.has(TRIAGE_LEAD)
                                         or is_pain_medicine_lead(actor, list(team))):
        raise Forbidden(f"only the triage lead or the patient's pain-medicine lead may "
                        f"{action} a referral")


@dataclass(frozen=True)
class Move:
    """One line of a referral's history: who moved it, when, from where, to where, why."""

    action: str
    from_status: str | None
    to_status: str
    at: datetime
    actor: Actor
    reason: str | None = None


@dataclass(frozen=True)
class Screening:
    tool: str
    score: int


@dataclass(frozen=True)
class PathwayStep:
    """One discipline's part of the care pathway; `after` names the disciplines whose
    first visit must come before this one's."""

    discipline: str
    visit_minutes: int
    sessions: int
    interval_days: int
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class BreachRisk:
    """The referral is about to miss its target: why, when it was seen, and the first
    visit that falls too late (for `first_visit_after_due`)."""

    reason: str
    detected_at: datetime
    first_visit_at: datetime | None = None


@dataclass(frozen=True)
class Referral:
    """The workflow's view of a referral: what the rules need, nothing about contact."""

    id: str
    patient_id: str
    condition: str
    received_at: datetime
    status: str = RECEIVED
    urgency_requested: str | None = None
    held_from: str | None = None
    priority: str | None = None
    target_days: int | None = None
    due_by: date | None = None
    screening: Screening | None = None
    pathway: tuple[PathwayStep, ...] = ()
    triaged_by: str | None = None
    triaged_at: datetime | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    closed_reason: str | None = None
    first_visit_at: datetime | None = None
    breach_risk: BreachRisk | None = None


@dataclass(frozen=True)
class PriorityTargets:
    """Days from receipt to first visit for each priority; the clinic configures them."""

    days: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_TARGET_DAYS))

    def for_priority(self, priority: str | None) -> int:
        return self.days.get(priority or "routine", DEFAULT_TARGET_DAYS["routine"])


# ----------------------------------------------------------------------------- intake

@dataclass(frozen=True)
class IntakeFacts:
    """The parts of an intake the clinic's rules look at (the schema did the shapes)."""

    date_of_birth: date
    condition: str
    condition_detail: str | None
    preferred_channel: str
    email: str | None
    phone: str | None


def check_intake(facts: IntakeFacts, *, today: date) -> None:
    """Refuse an intake that is well-formed but clinically impossible or unreachable."""
    if facts.date_of_birth > today:
        raise InvalidInput("the date of birth is in the future", field="patient.date_of_birth")
    if facts.date_of_birth < date(today.year - 125, 1, 1):
        raise InvalidInput("the date of birth is more than 125 years ago",
                           field="patient.date_of_birth")
    if facts.condition not in CONDITIONS:
        raise InvalidInput(f"unknown condition {facts.condition!r}", field="condition")
    if facts.condition == "other" and not (facts.condition_detail or "").strip():
        raise InvalidInput("a condition of 'other' needs a description",
                           field="condition_detail")
    if facts.preferred_channel == "email" and not facts.email:
        raise InvalidInput("the patient prefers email but has no email address",
                           field="patient.contact.email")
    if facts.preferred_channel == "sms" and not facts.phone:
        raise InvalidInput("the patient prefers SMS but has no phone number",
                           field="patient.contact.phone")


def receive(referral_id: str, *, patient_id: str, condition: str,
            urgency_requested: str | None, targets: PriorityTargets, actor: Actor,
            now: datetime) -> tuple[Referral, Move]:
    """A new referral. It gets a provisional due date from the referrer's stated urgency
    (routine if none), so a referral nobody triages still shows as overdue."""
    target = targets.for_priority(urgency_requested)
    referral = Referral(id=referral_id, patient_id=patient_id, condition=condition,
                        received_at=now, urgency_requested=urgency_requested,
                        target_days=target, due_by=now.date() + timedelta(days=target))
    return referral, Move("receive", None, RECEIVED, now, actor)


def referrer_key(name: str, organisation: str) -> str:
    """Two submissions from 'Dr A. Patel, Elm Surgery' and 'dr a. patel , elm surgery'
    come from the same referrer."""
    def norm(text: str) -> str:
        return " ".join(text.casefold().replace(",", " ").split())

    return f"{norm(name)}|{norm(organisation)}"


def duplicate_of(candidates: Iterable[tuple[str, str, datetime]], *, referrer: str,
                 now: datetime, window: timedelta) -> str | None:
    """The referral a new submission repeats, if any: same patient and condition (the
    caller's query), same referrer, received within the window and still open. A closed
    referral (rejected, cancelled, discharged) does not count: a re-referral after it is
    new clinical information, not a double click.

    `candidates` are (referral id, referrer key, received_at) of open referrals."""
    since = now - window
    matches = [(at, rid) for rid, key, at in candidates if key == referrer and at >= since]
    return max(matches)[1] if matches else None


# -------------------------------------------------------------------------- workflow

def allowed_moves(status: str) -> list[str]:
    return sorted(name for name, (sources, _to) in MOVES.items() if status in sources)


def _check_move(referral: Referral, action: str, reason: str | None) -> str:
    if action not in MOVES:
        raise ValueError(f"no such move {action!r}")
    sources, target = MOVES[action]
    if referral.status not in sources:
        allowed = ", ".join(sorted(sources))
        raise Conflict(
            f"referral {referral.id} is {referral.status}; it cannot be {_verb(action)} "
            f"(only a referral that is {allowed} can)",
            errors={"status": [f"{referral.status} -> {action} is not allowed"]})
    if action in REASON_REQUIRED and not (reason or "").strip():
        raise InvalidInput(f"a reason is required to {action} a referral", field="reason")
    if target is None:  # resume
        if referral.held_from is None:
            raise Conflict(f"referral {referral.id} does not know where it was held from")
        return referral.held_from
    return target


def _verb(action: str) -> str:
    return {"triage": "triaged", "accept": "accepted", "reject": "rejected",
            "cancel": "cancelled", "hold": "put on hold", "resume": "resumed",
            "schedule": "scheduled", "start_care": "taken into care",
            "discharge": "discharged"}[action]


def move(referral: Referral, action: str, *, actor: Actor, now: datetime,
         reason: str | None = None) -> tuple[Referral, Move]:
    """Make a workflow move that carries no clinical content (all but triage), or raise
    Conflict (409) if the referral's status does not allow it."""
    if action == "triage":
        raise ValueError("triage carries a priority and a pathway: call triage()")
    if action in ("accept", "reject"):
        require_pain_medicine(actor, action)
    target = _check_move(referral, action, reason)
    reason = (reason or "").strip() or None
    changes: dict[str, object] = {"status": target}
    if action == "hold":
        changes["held_from"] = referral.status
    elif action == "resume":
        changes["held_from"] = None
    if action in ("accept", "reject"):
        changes.update(decided_by=actor.id, decided_at=now)
    if action in ("reject", "cancel", "discharge"):
        changes["closed_reason"] = reason
    updated = replace(referral, **changes)  # type: ignore[arg-type]
    return updated, Move(action, referral.status, target, now, actor, reason)


def require_pain_medicine(actor: Actor, what: str) -> None:
    """Triage and the decision to accept or reject are a pain-medicine specialist's or the
    triage lead's (no role passes implicitly: admin is operations)."""
    if actor.has(TRIAGE_LEAD):
        return
    if actor.role != "specialist" or actor.discipline != PAIN_MEDICINE:
        raise Forbidden(f"only a pain-medicine specialist may {what} a referral")


# --------------------------------------------------------------------------- triage

def check_screening(tool: str, score: int) -> Screening:
    if tool not in SCREENING_RANGES:
        raise InvalidInput(f"unknown screening tool {tool!r}", field="screening.tool")
    low, high = SCREENING_RANGES[tool]
    if not low <= score <= high:
        raise InvalidInput(f"a {tool.upper()} score is between {low} and {high}, not {score}",
                           field="screening.score")
    return Screening(tool, score)


@dataclass(frozen=True)
class StepRequest:
    """A pathway step as asked for; `after=None` means 'the clinic's default order'."""

    discipline: str
    visit_minutes: int
    sessions: int
    interval_days: int
    after: Sequence[str] | None = None


def build_pathway(steps: Sequence[StepRequest]) -> tuple[PathwayStep, ...]:
    """Check a care pathway and fill in the default order: pain medicine first, unless a
    step says otherwise (an explicit empty `after` means it may come first too)."""
    if not 1 <= len(steps) <= len(DISCIPLINES):
        raise InvalidInput(f"a pathway has 1 to {len(DISCIPLINES)} disciplines",
                           field="pathway")
    names = [s.discipline for s in steps]
    for i, step in enumerate(steps):
        where = f"pathway.{i}"
        if step.discipline not in DISCIPLINES:
            raise InvalidInput(f"unknown discipline {step.discipline!r}",
                               field=f"{where}.discipline")
        if step.discipline in names[:i]:
            raise InvalidInput(f"{step.discipline} appears more than once in the pathway",
                               field=f"{where}.discipline")
        if step.sessions > 1 and step.interval_days < 1:
            raise InvalidInput("a series of sessions needs an interval of at least one day",
                               field=f"{where}.interval_days")
        for other in step.after or ():
            if other == step.discipline:
                raise InvalidInput(f"{other} cannot come after itself", field=f"{where}.after")
            if other not in names:
                raise InvalidInput(f"{other} is not in this pathway", field=f"{where}.after")
    built = tuple(
        PathwayStep(s.discipline, s.visit_minutes, s.sessions, s.interval_days,
                    tuple(s.after) if s.after is not None else
                    ((PAIN_MEDICINE,) if PAIN_MEDICINE in names
                     and s.discipline != PAIN_MEDICINE else ()))
        for s in steps)
    _check_no_cycle(built)
    return tuple(sorted(built, key=lambda s: _depth(s, built)))


def _depth(step: PathwayStep, steps: tuple[PathwayStep, ...]) -> tuple[int, int]:
    """Order steps so that each comes after those it depends on (then as given)."""
    by_name = {s.discipline: s for s in steps}

    def depth(s: PathwayStep) -> int:
        return 0 if not s.after else 1 + max(depth(by_name[a]) for a in s.after)

    return depth(step), [s.discipline for s in steps].index(step.discipline)


def _check_no_cycle(steps: tuple[PathwayStep, ...]) -> None:
    after = {s.discipline: set(s.after) for s in steps}
    done: set[str] = set()
    while after:
        ready = [d for d, deps in after.items() if deps <= done]
        if not ready:
            raise InvalidInput("the pathway's order constraints go round in a circle: "
                               + ", ".join(sorted(after)), field="pathway")
        for d in ready:
            done.add(d)
            del after[d]


def triage(referral: Referral, *, priority: str, screening: Screening | None,
           pathway: tuple[PathwayStep, ...], targets: PriorityTargets, actor: Actor,
           now: datetime, reason: str | None = None) -> tuple[Referral, Move]:
    """A specialist's triage: the priority sets the target and the due date (counted from
    receipt, as the patient has been waiting since then). A triaged referral may be
    triaged again before it is accepted, to correct it."""
    require_pain_medicine(actor, "triage")
    if priority not in PRIORITIES:
        raise InvalidInput(f"unknown priority {priority!r}", field="priority")
    target = _check_move(referral, "triage", None)
    days = targets.for_priority(priority)
    updated = replace(referral, status=target, priority=priority, target_days=days,
                      due_by=referral.received_at.date() + timedelta(days=days),
                      screening=screening, pathway=pathway, triaged_by=actor.id,
                      triaged_at=now)
    return updated, Move("triage", referral.status, target, now, actor,
                         (reason or "").strip() or None)


def booked(referral: Referral, *, first_visit_at: datetime | None, actor: Actor,
           now: datetime, reason: str) -> tuple[Referral, Move | None]:
    """Scheduling booked the itinerary. Already scheduled or further on: nothing to do
    (a second booking for the same referral changes nothing here)."""
    if referral.status in (SCHEDULED, IN_CARE, DISCHARGED):
        return referral, None
    updated, step = move(referral, "schedule", actor=actor, now=now, reason=reason)
    return replace(updated, first_visit_at=first_visit_at), step


def first_visit_done(referral: Referral, *, actor: Actor, now: datetime,
                     reason: str) -> tuple[Referral, Move | None]:
    """The first completed appointment takes the patient into care; later ones do not
    move the referral again."""
    if referral.status in (IN_CARE, DISCHARGED):
        return referral, None
    return move(referral, "start_care", actor=actor, now=now, reason=reason)


# ---------------------------------------------------------------------------- reads

def is_overdue(referral: Referral, *, today: date) -> bool:
    """Still waiting for a first visit after the target date."""
    return (referral.status in WAITING and referral.due_by is not None
            and today > referral.due_by)


def queue_order(referral: Referral) -> tuple[int, datetime]:
    """Triage queue: most urgent first (the triage priority, else the referrer's stated
    urgency, else routine), then whoever has waited longest."""
    return PRIORITY_RANK[referral.priority or referral.urgency_requested], referral.received_at


# ------------------------------------------------------------------------ breach risk

FIRST_VISIT_AFTER_DUE = "first_visit_after_due"
UNSCHEDULED_NEAR_DUE = "unscheduled_near_due"
BREACH_REASONS = (FIRST_VISIT_AFTER_DUE, UNSCHEDULED_NEAR_DUE)
# Triaged or accepted but not yet scheduled: still waiting for someone to book them.
UNSCHEDULED = (TRIAGED, ACCEPTED)
# Not history lines of the status workflow: notes on the referral that move nothing.
BREACH_ACTIONS = ("breach_risk", "breach_cleared")
DEFAULT_BREACH_WARNING_DAYS = 2


def first_visit_is_late(due_by: date | None, first_visit_at: datetime, tz: tzinfo) -> bool:
    """Does the first visit fall after the due date? Dates in the clinic's time zone: a
    visit at 00:30 on the due date, clinic time, is on time whatever UTC says."""
    return due_by is not None and first_visit_at.astimezone(tz).date() > due_by


def near_due_cutoff(today: date, warning_days: int) -> date:
    """Referrals due on or before this date are close enough to warn about."""
    if warning_days < 0:
        raise ValueError("REFERRAL_BREACH_WARNING_DAYS cannot be negative")
    return today + timedelta(days=warning_days)


def is_unscheduled_near_due(referral: Referral, *, today: date, warning_days: int) -> bool:
    """Triaged or accepted, not yet scheduled, and due within the warning days (or past)."""
    return (referral.status in UNSCHEDULED and referral.due_by is not None
            and referral.due_by <= near_due_cutoff(today, warning_days))


def assess_itinerary(referral: Referral, *, first_visit_at: datetime, tz: tzinfo,
                     now: datetime) -> BreachRisk | None:
    """The breach risk an itinerary for this referral brings, if its first visit falls
    after the due date; None if it is on time (or the referral is past waiting)."""
    if referral.status not in WAITING:
        return None
    if not first_visit_is_late(referral.due_by, first_visit_at, tz):
        return None
    return BreachRisk(FIRST_VISIT_AFTER_DUE, now, first_visit_at)


def flag_breach(referral: Referral, risk: BreachRisk, *, actor: Actor, note: str
                ) -> tuple[Referral, Move]:
    """Mark the referral at risk; its history says why (no status moves)."""
    if risk.reason not in BREACH_REASONS:
        raise ValueError(f"no such breach reason {risk.reason!r}")
    return (replace(referral, breach_risk=risk),
            Move("breach_risk", referral.status, referral.status, risk.detected_at, actor,
                 note))


def clear_breach(referral: Referral, *, actor: Actor, now: datetime, note: str
                 ) -> tuple[Referral, Move | None]:
    """An itinerary whose first visit is within the due date lifts the risk; the history
    keeps that it was there."""
    if referral.breach_risk is None:
        return referral, None
    return (replace(referral, breach_risk=None),
            Move("breach_cleared", referral.status, referral.status, now, actor, note))
