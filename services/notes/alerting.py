"""A safety alert's moves as they are staged in the caller's transaction: route it, store
it, audit it and emit its event together, so an alert is never stored without its event
nor announced without being stored. Note saves (care_notes) and the alert use cases
(safety_alerts) both stage through here."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from services.notes import domain as d
from services.notes import measures as m
from services.notes import safety
from services.notes.db import CareTeamRepository, DutyRotaRepository, SafetyAlertRepository
from shared.auth import Principal
from shared.correlation import new_id
from shared.runtime import Runtime

RAISED_VERSION = 2
# Who the audit trail names for what the worker does by itself.
ESCALATION_ACTOR = Principal(subject="notes-safety-escalation", role="service",
                             name="safety alert escalation")


def clinic_tz(runtime: Runtime) -> ZoneInfo:
    return ZoneInfo(runtime.settings.clinic_timezone)


def ack_interval(runtime: Runtime) -> timedelta:
    """SAFETY_ACK_MINUTES (30): how long an alert may wait unacknowledged; a float so an
    end-to-end run can use seconds."""
    return safety.ack_interval(float(runtime.settings.setting(
        "SAFETY_ACK_MINUTES", str(safety.DEFAULT_ACK_MINUTES))))


def duty_clinician(s: Session, runtime: Runtime, now: datetime) -> str | None:
    """The provider id on the rota for the clinic's day of `now`, if any."""
    entry = DutyRotaRepository(s).on(safety.clinic_day(now, clinic_tz(runtime)))
    return entry["clinician_id"] if entry else None


def _recipients(recipients: tuple[safety.Recipient, ...]) -> list[dict[str, str]]:
    return [{"recipient_id": r.recipient_id, "role": r.role} for r in recipients]


def _emit_raised(s: Session, runtime: Runtime, alert: safety.Alert, by: str,
                 now: datetime) -> None:
    """v2: ids, source, severity and who is told; never the note's or the flag's text."""
    payload: dict[str, Any] = {
        "alert_id": alert.id, "patient_id": alert.patient_id, "note_id": alert.note_id,
        "source": alert.source, "severity": alert.severity, "raised_by": by,
        "raised_at": now, "recipients": _recipients(alert.recipients)}
    runtime.emit(s, "patient.safety_alert", payload, key=alert.patient_id,
                 version=RAISED_VERSION)


def raise_new(s: Session, runtime: Runtime, principal: Principal, *, note: d.Note,
              source: str, severity: int, raised_by: str, now: datetime,
              flag_reason: str | None = None) -> safety.Alert:
    """A new alert, routed now (care team and today's duty clinician) and stored with
    its routing; its escalation clock starts."""
    team = CareTeamRepository(s).active_members(note.patient_id)
    alert = safety.Alert(
        id=new_id(), patient_id=note.patient_id, note_id=note.id, source=source,
        severity=severity, raised_by=raised_by, raised_at=now,
        recipients=safety.route(team, duty_clinician(s, runtime, now)),
        next_escalation_at=safety.first_escalation_at(now, ack_interval(runtime)),
        flag_reason=flag_reason)
    SafetyAlertRepository(s).add(alert)
    runtime.audit.record(s, principal, "raise_safety_alert", "safety_alert",
                         resource_id=alert.id, patient_id=alert.patient_id,
                         reason=f"{source} severity {severity} on note {note.id}")
    _emit_raised(s, runtime, alert, raised_by, now)
    return alert


def raise_again(s: Session, runtime: Runtime, principal: Principal, alert: safety.Alert, *,
                severity: int, raised_by: str, now: datetime) -> safety.Alert:
    """A higher severity of an open alert: a new event, so everyone is told again."""
    team = CareTeamRepository(s).active_members(alert.patient_id)
    after = safety.raised_again(alert, severity,
                                safety.route(team, duty_clinician(s, runtime, now)), now)
    SafetyAlertRepository(s).change(alert, after)
    runtime.audit.record(s, principal, "raise_safety_alert", "safety_alert",
                         resource_id=alert.id, patient_id=alert.patient_id,
                         reason=f"severity {alert.severity} -> {severity}")
    _emit_raised(s, runtime, after, raised_by, now)
    return after


def on_note_saved(s: Session, runtime: Runtime, principal: Principal, note: d.Note,
                  now: datetime) -> safety.Alert | None:
    """PHQ-9 item 9 >= 1 raises an alert, a higher score raises it again; then the alert
    the note shows (the same on create, edit and read)."""
    repo = SafetyAlertRepository(s)
    item9 = note.scores.get(m.SAFETY_MEASURE)
    decision = safety.on_item9(item9, repo.latest_of_note(note.id, safety.PHQ9_ITEM9)
                               if item9 else None)
    if decision and decision.alert is None:
        raise_new(s, runtime, principal, note=note, source=safety.PHQ9_ITEM9,
                  severity=decision.severity, raised_by=note.author_id, now=now)
    elif decision and decision.alert is not None:
        raise_again(s, runtime, principal, decision.alert, severity=decision.severity,
                    raised_by=note.author_id, now=now)
    return safety.note_alert(repo.of_notes([note.id]).get(note.id, []))
