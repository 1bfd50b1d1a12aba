"""The life of a safety alert, pure: when a note raises one (PHQ-9 item 9 >= 1, or a
clinician's flag), who must hear of it, who may acknowledge and close it, and when an
unacknowledged alert escalates.

A self-harm answer is the one message that must never be lost, so each rule here is
small and unit-tested on its own. No Flask, SQLAlchemy or Kafka; the clock is `now`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo

from services.notes import domain as d
from shared.errors import Conflict, Forbidden, InvalidInput
from shared.events.notes import ALERT_ACK_ACTIONS, ALERT_CLOSE_REASONS, ALERT_SOURCES

OPEN, ACKNOWLEDGED, CLOSED = "open", "acknowledged", "closed"
STATUSES = (OPEN, ACKNOWLEDGED, CLOSED)
PHQ9_ITEM9, CLINICIAN_FLAG = ALERT_SOURCES
# Role ids the notifier's directory reaches (a person holding the role that day).
TRIAGE_LEAD = "role:triage_lead"
CLINICAL_LEAD = "role:clinical_lead"
PSYCHOLOGY, PAIN_MEDICINE = "psychology", "pain_medicine"
MAX_RECIPIENTS = 20            # the event contract's bound
SEVERITIES = (1, 2, 3)
DEFAULT_FLAG_SEVERITY = 2
MAX_TEXT = 2000
DEFAULT_ACK_MINUTES = 30.0
# A provider id as scheduling hands them out: letters, digits, '.', '_', '-'; never a
# role id (`role:...`), which is not a person on a rota.
_PROVIDER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Recipient:
    recipient_id: str
    role: str


@dataclass(frozen=True)
class Member:
    """An active care-team membership, as routing needs it."""

    member_id: str
    discipline: str | None
    joined_at: datetime
    source: str = "appointment.booked"


@dataclass(frozen=True)
class Alert:
    id: str
    patient_id: str
    note_id: str
    source: str
    severity: int
    raised_by: str
    raised_at: datetime
    status: str = OPEN
    recipients: tuple[Recipient, ...] = ()
    escalations: int = 0
    next_escalation_at: datetime | None = None
    escalated_to: tuple[Recipient, ...] = ()
    last_raised_at: datetime | None = None
    flag_reason: str | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    ack_action: str | None = None
    ack_detail: str | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    close_detail: str | None = None

    @property
    def told(self) -> tuple[Recipient, ...]:
        """Everyone told of it so far (raise and escalations): they hear it is handled."""
        return merge(self.recipients, self.escalated_to)


# ------------------------------------------------------------------------ the clinic day

def clinic_day(now: datetime, tz: tzinfo) -> date:
    """The rota's day is the clinic's calendar day, not UTC's."""
    return now.astimezone(tz).date()


def check_rota_entry(day_text: str, clinician_id: str, name: str) -> tuple[date, str, str]:
    """A rota entry as an admin sends it: an ISO date, a provider id, a name to show."""
    day = parse_day(day_text, "date")
    if not _PROVIDER_ID.fullmatch(clinician_id or ""):
        raise InvalidInput("the duty clinician is named by their provider id (letters, "
                           "digits, '.', '_' or '-', up to 64)", field="clinician_id")
    if not name.strip():
        raise InvalidInput("give the duty clinician's name as the clinic shows it",
                           field="name")
    return day, clinician_id, name.strip()


def parse_day(text: str, field: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidInput("a day is written YYYY-MM-DD", field=field) from None


# ------------------------------------------------------------------------------ routing

def merge(*groups: Iterable[Recipient]) -> tuple[Recipient, ...]:
    """One entry per recipient id (the first role named wins), at most the contract's 20."""
    seen: dict[str, Recipient] = {}
    for group in groups:
        for r in group:
            seen.setdefault(r.recipient_id, r)
    return tuple(seen.values())[:MAX_RECIPIENTS]


def duty_recipient(duty_clinician_id: str | None) -> Recipient:
    """The day's duty clinician; a clinic with no rota entry that day falls back to the
    triage lead, who then hears of it once."""
    if duty_clinician_id:
        return Recipient(duty_clinician_id, "duty_clinician")
    return Recipient(TRIAGE_LEAD, "triage_lead")


def pain_medicine_lead(team: Iterable[Member]) -> str | None:
    """The pain-medicine member who joined first; failing a booked one, the specialist who
    accepted the referral (pain medicine triages and accepts every referral)."""
    members = sorted(team, key=lambda m: (m.joined_at, m.member_id))
    booked = [m for m in members if m.discipline == PAIN_MEDICINE]
    if booked:
        return booked[0].member_id
    accepted = [m for m in members if m.source == "referral.accepted"]
    return accepted[0].member_id if accepted else None


def route(team: Iterable[Member], duty_clinician_id: str | None) -> tuple[Recipient, ...]:
    """Who hears of a raised alert: the duty clinician first (they are reached at once),
    the patient's psychologists, the pain-medicine lead and the triage lead."""
    members = sorted(team, key=lambda m: (m.joined_at, m.member_id))
    psychologists = [Recipient(m.member_id, "psychologist") for m in members
                     if m.discipline == PSYCHOLOGY]
    lead = pain_medicine_lead(members)
    return merge([duty_recipient(duty_clinician_id)], psychologists,
                 [Recipient(lead, "pain_medicine_lead")] if lead else [],
                 [Recipient(TRIAGE_LEAD, "triage_lead")])


def escalation_route(duty_clinician_id: str | None) -> tuple[Recipient, ...]:
    """An unacknowledged alert goes up: the clinical lead and the day's duty clinician."""
    return merge([Recipient(CLINICAL_LEAD, "clinical_lead")],
                 [duty_recipient(duty_clinician_id)])


# ------------------------------------------------------------------------------ raising

def severity_of_item9(value: float | None) -> int:
    """PHQ-9 item 9 scored 1-3 is the alert's severity; 0 (or absent) is no alert."""
    if value is None or value < 1:
        return 0
    return min(3, int(value))


@dataclass(frozen=True)
class Raise:
    """What a saved note's PHQ-9 item 9 asks for: nothing, a new alert, or a higher
    severity of the alert still open for that note."""

    severity: int
    alert: Alert | None = None     # the alert raised again; None: a new one

    @property
    def is_new(self) -> bool:
        return self.alert is None


def on_item9(item9: float | None, latest: Alert | None) -> Raise | None:
    """Item 9 >= 1 raises an alert; a later save above the open (unacknowledged) alert's
    severity raises it again at the higher one. Once someone has acknowledged or closed
    it, a higher score is new information: a new alert. The same or lower is silent."""
    severity = severity_of_item9(item9)
    if not severity:
        return None
    if latest is None:
        return Raise(severity)
    if severity <= latest.severity:
        return None
    return Raise(severity, latest if latest.status == OPEN else None)


def check_flag(reason: str, severity: int) -> str:
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("say why you are concerned for the patient's safety",
                           field="reason")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"a reason has at most {MAX_TEXT} characters", field="reason")
    if severity not in SEVERITIES:
        raise InvalidInput("severity is 1, 2 or 3", field="severity")
    return text


def raised_again(alert: Alert, severity: int, recipients: Sequence[Recipient],
                 now: datetime) -> Alert:
    """A higher severity: told again (the routing of now added to who heard before); the
    escalation clock keeps running from the first raise, never postponed."""
    return replace(alert, severity=severity, recipients=merge(alert.recipients, recipients),
                   last_raised_at=now)


# ------------------------------------------------------------------ acknowledge, close

def require_responder(who: d.Clinician, team: Iterable[str], duty_clinician_id: str | None,
                      doing: str) -> None:
    """A clinician on the patient's care team, or the day's duty clinician."""
    if who.role != "specialist":
        raise Forbidden(f"only a clinician on the patient's care team or on duty may "
                        f"{doing} a safety alert")
    if d.is_member(who, team) or is_on_duty(who, duty_clinician_id):
        return
    raise Forbidden(f"only the patient's care team or today's duty clinician may {doing} "
                    "this safety alert")


def is_on_duty(who: d.Clinician, duty_clinician_id: str | None) -> bool:
    return (who.role == "specialist" and duty_clinician_id is not None
            and who.provider_id == duty_clinician_id)


def _detail(detail: str | None, required: bool, what: str) -> str | None:
    text = (detail or "").strip()
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"the detail has at most {MAX_TEXT} characters", field="detail")
    if required and not text:
        raise InvalidInput(f"say what was done when the {what} is 'other'", field="detail")
    return text or None


def acknowledge(alert: Alert, who: d.Clinician, *, action: str, detail: str | None,
                now: datetime) -> Alert:
    """Someone has seen it and acted: escalation stops."""
    if action not in ALERT_ACK_ACTIONS:
        raise InvalidInput(f"the action is one of {', '.join(ALERT_ACK_ACTIONS)}",
                           field="action")
    text = _detail(detail, action == "other", "action")
    if alert.status != OPEN:
        raise Conflict(f"the alert is already {alert.status}")
    return replace(alert, status=ACKNOWLEDGED, acknowledged_by=who.author_id,
                   acknowledged_at=now, ack_action=action, ack_detail=text,
                   next_escalation_at=None)


def close(alert: Alert, who: d.Clinician, *, reason: str, detail: str | None,
          now: datetime) -> Alert:
    """Closed with a reason, after an acknowledgement (or at once if raised in error)."""
    if reason not in ALERT_CLOSE_REASONS:
        raise InvalidInput(f"the reason is one of {', '.join(ALERT_CLOSE_REASONS)}",
                           field="reason")
    text = _detail(detail, reason == "other", "reason")
    if alert.status == CLOSED:
        raise Conflict("the alert is already closed")
    if alert.status == OPEN and reason != "raised_in_error":
        raise Conflict("acknowledge the alert with the action taken before closing it "
                       "(or close it as raised in error)")
    return replace(alert, status=CLOSED, closed_by=who.author_id, closed_at=now,
                   close_reason=reason, close_detail=text, next_escalation_at=None)


# ----------------------------------------------------------------------------- escalation

def ack_interval(minutes: float) -> timedelta:
    if not minutes > 0:
        raise ValueError("SAFETY_ACK_MINUTES must be above 0")
    return timedelta(minutes=minutes)


def first_escalation_at(raised_at: datetime, interval: timedelta) -> datetime:
    return raised_at + interval


def is_due(alert: Alert, now: datetime) -> bool:
    """Unacknowledged once the interval has passed (at the very instant, not before)."""
    return (alert.status == OPEN and alert.next_escalation_at is not None
            and now >= alert.next_escalation_at)


def next_escalation_after(raised_at: datetime, interval: timedelta, now: datetime) -> datetime:
    """The next step of the alert's own schedule (raised + k x interval) after `now`: a
    worker that was away escalates once, not once for each interval it missed."""
    steps = (now - raised_at) // interval + 1
    return raised_at + steps * interval


def escalated(alert: Alert, recipients: Sequence[Recipient], interval: timedelta,
              now: datetime) -> Alert:
    return replace(alert, escalations=alert.escalations + 1,
                   next_escalation_at=next_escalation_after(alert.raised_at, interval, now),
                   escalated_to=merge(alert.escalated_to, recipients))


# ------------------------------------------------------------------------------- reading

def note_alert(alerts: Iterable[Alert]) -> Alert | None:
    """The alert a note shows: an unclosed one (the most severe, then the newest), else
    the newest closed."""
    found = sorted(alerts, key=lambda a: (a.status != CLOSED, a.severity, a.raised_at))
    return found[-1] if found else None


def may_read(who: d.Clinician, team: Iterable[str], duty_clinician_id: str | None,
             alert: Alert) -> bool:
    """The care team reads their patient's alerts; the duty clinician every alert not yet
    closed. Admins run the clinic's operations, not its clinical detail."""
    if who.role != "specialist":
        return False
    if d.is_member(who, team):
        return True
    return is_on_duty(who, duty_clinician_id) and alert.status != CLOSED


def require_clinical_reader(who: d.Clinician) -> None:
    if who.is_admin:
        raise Forbidden("admins run the clinic's operations; safety alerts are clinical "
                        "detail for the care team and the duty clinician")
    if who.role != "specialist":
        raise Forbidden("safety alerts are for the patient's care team and the duty "
                        "clinician")
