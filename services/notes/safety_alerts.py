"""Use cases of safety alerts and the duty rota: each one a transaction that checks who
is asking (care team, today's duty clinician, admin for the rota), applies a rule from
`safety`, keeps the audit trail and stages its event. Routes and the worker's
escalation loop call these; the clock arrives as `now`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from services.notes import alerting, safety
from services.notes import domain as d
from services.notes.care_notes import Attempt, clinician, unit
from services.notes.db import (
    CareTeamRepository,
    DutyRotaRepository,
    NotesRepository,
    SafetyAlertRepository,
)
from shared.auth import Principal
from shared.errors import Forbidden, InvalidInput, NotFound
from shared.runtime import Runtime

log = logging.getLogger(__name__)
MAX_ROTA_SPAN_DAYS = 366
ROTA_HORIZON_DAYS = 731


def _alert(repo: SafetyAlertRepository, alert_id: str, *, for_update: bool = False
           ) -> safety.Alert:
    found = repo.get(alert_id, for_update=for_update)
    if found is None:
        raise NotFound(f"no safety alert {alert_id}")
    return found


def _team(s: Session, patient_id: str) -> set[str]:
    return CareTeamRepository(s).active_ids(patient_id)


# -------------------------------------------------------------------------------- raise

def flag(runtime: Runtime, principal: Principal, note_id: str, *, reason: str, severity: int,
         now: datetime) -> safety.Alert:
    """A clinician flags a risk concern by hand on a note of any kind; only someone who
    may write this patient's notes. The reason stays here; the event carries none."""
    attempt = Attempt("flag_safety_risk", resource="note", resource_id=note_id)
    with unit(runtime, principal, attempt) as s:
        note = NotesRepository(s).get(note_id)
        who = clinician(principal)
        if note is None or not d.visible(note, who):
            raise NotFound(f"no note {note_id}")
        attempt.patient_id = note.patient_id
        d.require_writer(who, _team(s, note.patient_id))
        text = safety.check_flag(reason, severity)
        return alerting.raise_new(s, runtime, principal, note=note,
                                  source=safety.CLINICIAN_FLAG, severity=severity,
                                  raised_by=who.author_id, now=now, flag_reason=text)


# --------------------------------------------------------------------- acknowledge, close

def acknowledge(runtime: Runtime, principal: Principal, alert_id: str, *, action: str,
                detail: str | None, now: datetime) -> safety.Alert:
    """Someone on the care team or on duty has acted: escalation stops and everyone who
    was told hears it is handled (ids and the action's code, never the detail)."""
    attempt = Attempt("acknowledge_safety_alert", resource="safety_alert",
                      resource_id=alert_id)
    with unit(runtime, principal, attempt) as s:
        repo = SafetyAlertRepository(s)
        before = _alert(repo, alert_id, for_update=True)
        attempt.patient_id = before.patient_id
        who = clinician(principal)
        safety.require_responder(who, _team(s, before.patient_id),
                                 alerting.duty_clinician(s, runtime, now), "acknowledge")
        after = safety.acknowledge(before, who, action=action, detail=detail, now=now)
        repo.change(before, after)
        runtime.audit.record(s, principal, "acknowledge_safety_alert", "safety_alert",
                             resource_id=alert_id, patient_id=after.patient_id,
                             reason=action)
        runtime.emit(s, "patient.safety_alert_acknowledged", {
            "alert_id": after.id, "patient_id": after.patient_id,
            "acknowledged_by": who.author_id, "action": action, "acknowledged_at": now,
            "recipients": [{"recipient_id": r.recipient_id, "role": r.role}
                           for r in after.told]}, key=after.patient_id)
        return after


def close(runtime: Runtime, principal: Principal, alert_id: str, *, reason: str,
          detail: str | None, now: datetime) -> safety.Alert:
    attempt = Attempt("close_safety_alert", resource="safety_alert", resource_id=alert_id)
    with unit(runtime, principal, attempt) as s:
        repo = SafetyAlertRepository(s)
        before = _alert(repo, alert_id, for_update=True)
        attempt.patient_id = before.patient_id
        who = clinician(principal)
        safety.require_responder(who, _team(s, before.patient_id),
                                 alerting.duty_clinician(s, runtime, now), "close")
        after = safety.close(before, who, reason=reason, detail=detail, now=now)
        repo.change(before, after)
        runtime.audit.record(s, principal, "close_safety_alert", "safety_alert",
                             resource_id=alert_id, patient_id=after.patient_id,
                             reason=reason)
        runtime.emit(s, "patient.safety_alert_closed", {
            "alert_id": after.id, "patient_id": after.patient_id, "closed_by": who.author_id,
            "reason": reason, "closed_at": now}, key=after.patient_id)
        return after


# ---------------------------------------------------------------------------- escalation

def escalate_overdue(runtime: Runtime, now: datetime, *, batch: int = 100) -> int:
    """Escalate every open alert whose interval has passed unacknowledged: the clinical
    lead and today's duty clinician are told, and the next escalation is one interval
    on. Each alert in its own transaction, claimed by a conditional update, so several
    worker replicas emit one escalation per interval between them, never two."""
    interval = alerting.ack_interval(runtime)
    with runtime.db.transaction() as s:
        due = SafetyAlertRepository(s).due(now, batch)
    done = 0
    for alert in due:
        with runtime.db.transaction() as s:
            recipients = safety.escalation_route(alerting.duty_clinician(s, runtime, now))
            after = safety.escalated(alert, recipients, interval, now)
            if not SafetyAlertRepository(s).escalate(alert, after, now):
                continue  # acknowledged, or another replica escalated it meanwhile
            runtime.audit.record(s, alerting.ESCALATION_ACTOR, "escalate_safety_alert",
                                 "safety_alert", resource_id=alert.id,
                                 patient_id=alert.patient_id,
                                 reason=f"escalation {after.escalations}")
            runtime.emit(s, "patient.safety_alert_escalated", {
                "alert_id": alert.id, "patient_id": alert.patient_id,
                "escalation": after.escalations, "severity": alert.severity,
                "raised_at": alert.raised_at, "escalated_at": now,
                "recipients": [{"recipient_id": r.recipient_id, "role": r.role}
                               for r in recipients]}, key=alert.patient_id)
            done += 1
    return done


def escalation_loop(runtime: Runtime, *, clock: Callable[[], datetime] | None = None,
                    every: float | None = None) -> Callable[[threading.Event], None]:
    """The notes worker's extra loop: escalate what is overdue every
    SAFETY_ESCALATION_POLL_SECONDS (5)."""
    alerting.ack_interval(runtime)   # a bad SAFETY_ACK_MINUTES stops the worker at start
    if every is None:
        every = float(runtime.settings.setting("SAFETY_ESCALATION_POLL_SECONDS", "5"))
    now_of = clock or (lambda: datetime.now(UTC))

    def safety_escalation(stop: threading.Event) -> None:
        while not stop.wait(every):
            try:
                escalated = escalate_overdue(runtime, now_of())
                if escalated:
                    log.info("safety alerts escalated", extra={"count": escalated})
            except Exception:  # database away: the alerts stay due, try again
                log.exception("safety alert escalation failed; trying again")

    return safety_escalation


# -------------------------------------------------------------------------------- reading

def _audit_reads(s: Session, runtime: Runtime, principal: Principal, action: str,
                 alerts: list[safety.Alert]) -> None:
    for a in alerts:
        runtime.audit.record(s, principal, action, "safety_alert", resource_id=a.id,
                             patient_id=a.patient_id)


def read_alert(runtime: Runtime, principal: Principal, alert_id: str,
               now: datetime) -> safety.Alert:
    attempt = Attempt("read_safety_alert", resource="safety_alert", resource_id=alert_id)
    with unit(runtime, principal, attempt) as s:
        who = clinician(principal)
        safety.require_clinical_reader(who)
        alert = _alert(SafetyAlertRepository(s), alert_id)
        attempt.patient_id = alert.patient_id
        if not safety.may_read(who, _team(s, alert.patient_id),
                               alerting.duty_clinician(s, runtime, now), alert):
            raise Forbidden("only the patient's care team, or today's duty clinician while "
                            "it is not closed, may read this safety alert")
        _audit_reads(s, runtime, principal, "read_safety_alert", [alert])
        return alert


def list_alerts(runtime: Runtime, principal: Principal, *, statuses: tuple[str, ...],
                patient_id: str | None, limit: int, offset: int,
                now: datetime) -> list[safety.Alert]:
    """The alerts this clinician may see: their care-team patients' (any status), and,
    on duty, every alert not yet closed. Newest first."""
    attempt = Attempt("read_safety_alerts", resource="safety_alert", patient_id=patient_id)
    with unit(runtime, principal, attempt) as s:
        who = clinician(principal)
        safety.require_clinical_reader(who)
        mine = CareTeamRepository(s).patients_of(who.member_ids)
        on_duty = safety.is_on_duty(who, alerting.duty_clinician(s, runtime, now))
        if patient_id is not None:
            if patient_id not in mine and not on_duty:
                raise Forbidden("only the patient's care team or today's duty clinician may "
                                "read their safety alerts")
            mine = mine & {patient_id}
        repo = SafetyAlertRepository(s)
        window = limit + offset
        found = {a.id: a for a in repo.find(statuses=statuses, patient_ids=mine,
                                            limit=window, offset=0)}
        unclosed = tuple(st for st in statuses if st != safety.CLOSED)
        if on_duty and unclosed:
            for a in repo.find(statuses=unclosed,
                               patient_ids=[patient_id] if patient_id else None,
                               limit=window, offset=0):
                found.setdefault(a.id, a)
        page = sorted(found.values(), key=lambda a: (a.raised_at, a.id),
                      reverse=True)[offset:offset + limit]
        _audit_reads(s, runtime, principal, "read_safety_alerts", page)
        return page


def my_alerts(runtime: Runtime, principal: Principal, now: datetime) -> list[safety.Alert]:
    """Open (unacknowledged) alerts this clinician must see at once: their care-team
    patients', and all of them on the day they are on duty (the console's red banner)."""
    return list_alerts(runtime, principal, statuses=(safety.OPEN,), patient_id=None,
                       limit=500, offset=0, now=now)


# ------------------------------------------------------------------------------ duty rota

def _rota_day(runtime: Runtime, day_text: str, now: datetime) -> date:
    day = safety.parse_day(day_text, "date")
    today = safety.clinic_day(now, alerting.clinic_tz(runtime))
    if day < today:
        raise InvalidInput("a day gone by is history; the rota is set for today onwards",
                           field="date")
    if day > today + timedelta(days=ROTA_HORIZON_DAYS):
        raise InvalidInput("the rota is set up to two years ahead", field="date")
    return day


def set_duty(runtime: Runtime, principal: Principal, day_text: str, *, clinician_id: str,
             name: str, now: datetime) -> tuple[dict[str, Any], bool]:
    """An admin names the day's duty clinician (a provider id); audited."""
    attempt = Attempt("set_duty_rota", resource="duty_rota", resource_id=day_text[:64])
    with unit(runtime, principal, attempt) as s:
        if not principal.is_admin:
            raise Forbidden("only an admin sets the duty rota")
        day, clinician_id, name = safety.check_rota_entry(day_text, clinician_id, name)
        day = _rota_day(runtime, day_text, now)
        created = DutyRotaRepository(s).put(day=day, clinician_id=clinician_id, name=name,
                                            by=principal.subject, now=now)
        runtime.audit.record(s, principal, "set_duty_rota", "duty_rota",
                             resource_id=day.isoformat(), reason=clinician_id)
        entry = DutyRotaRepository(s).on(day)
        assert entry is not None
        return entry, created


def clear_duty(runtime: Runtime, principal: Principal, day_text: str, now: datetime) -> None:
    attempt = Attempt("clear_duty_rota", resource="duty_rota", resource_id=day_text[:64])
    with unit(runtime, principal, attempt) as s:
        if not principal.is_admin:
            raise Forbidden("only an admin changes the duty rota")
        day = _rota_day(runtime, day_text, now)
        if not DutyRotaRepository(s).delete(day):
            raise NotFound(f"no one is on the rota for {day.isoformat()}")
        runtime.audit.record(s, principal, "clear_duty_rota", "duty_rota",
                             resource_id=day.isoformat())


@dataclass(frozen=True)
class DutyToday:
    date: date
    entry: dict[str, Any] | None

    @property
    def recipient(self) -> safety.Recipient:
        return safety.duty_recipient(self.entry["clinician_id"] if self.entry else None)


def rota(runtime: Runtime, first: date | None, last: date | None,
         now: datetime) -> list[dict[str, Any]]:
    """The rota between two days (both included); from today for four weeks by default."""
    today = safety.clinic_day(now, alerting.clinic_tz(runtime))
    first = first or today
    last = last or first + timedelta(days=27)
    if last < first:
        raise InvalidInput("'to' comes on or after 'from'", field="query.to")
    if (last - first).days >= MAX_ROTA_SPAN_DAYS:
        raise InvalidInput(f"ask for at most {MAX_ROTA_SPAN_DAYS} days at a time",
                           field="query.to")
    with runtime.db.transaction() as s:
        return DutyRotaRepository(s).between(first, last)


def duty_today(runtime: Runtime, now: datetime) -> DutyToday:
    today = safety.clinic_day(now, alerting.clinic_tz(runtime))
    with runtime.db.transaction() as s:
        return DutyToday(today, DutyRotaRepository(s).on(today))
