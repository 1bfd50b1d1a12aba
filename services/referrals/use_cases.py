"""What the referral desk does, one function per use case: load, ask the domain, store the
row, its history line and its events, all in the caller's transaction.

Both entry points use these: the HTTP routes (people) and the event handlers (scheduling).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from services.referrals import domain
from services.referrals.db import (
    UNSCHEDULED_OCCASION,
    ReferralRow,
    Referrals,
    apply,
    pathway_to_json,
    to_domain,
)
from services.referrals.domain import Actor, BreachRisk, Move, PriorityTargets, Referral
from services.referrals.patients import domain as patients_domain
from services.referrals.patients import use_cases as patients
from shared.auth import Principal
from shared.correlation import new_id
from shared.errors import Conflict
from shared.runtime import Runtime

# The events that say more than "the status moved"; every move also emits
# referral.status_changed for the dashboard.
_EVENT_FOR_ACTION = {"triage": "referral.triaged", "accept": "referral.accepted",
                     "reject": "referral.rejected", "cancel": "referral.cancelled",
                     "discharge": "referral.discharged"}


def default_targets(runtime: Runtime) -> PriorityTargets:
    """The clinic's targets before an admin sets any: from the environment, else 7/28/90."""
    s = runtime.settings
    return PriorityTargets({p: int(s.setting(f"REFERRALS_TARGET_DAYS_{p.upper()}", str(d)))
                            for p, d in domain.DEFAULT_TARGET_DAYS.items()})


def duplicate_window(runtime: Runtime) -> timedelta:
    return timedelta(days=int(runtime.settings.setting("REFERRALS_DUPLICATE_WINDOW_DAYS", "30")))


def breach_warning_days(runtime: Runtime) -> int:
    """How close to its due date an unscheduled referral is warned about."""
    days = int(runtime.settings.setting("REFERRAL_BREACH_WARNING_DAYS",
                                        str(domain.DEFAULT_BREACH_WARNING_DAYS)))
    if days < 0:
        raise ValueError(f"REFERRAL_BREACH_WARNING_DAYS cannot be negative, not {days}")
    return days


def clinic_tz(runtime: Runtime) -> tzinfo:
    return ZoneInfo(runtime.settings.clinic_timezone)


def targets(runtime: Runtime, session: Session) -> PriorityTargets:
    return Referrals(session).targets(default_targets(runtime))


def fingerprint(body: dict[str, Any]) -> str:
    """The same request sent twice has the same fingerprint, whatever the key order."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------------------- intake

def receive(runtime: Runtime, session: Session, body: dict[str, Any], *, actor: Actor,
            now: datetime, idempotency_key: str | None = None) -> tuple[ReferralRow, bool]:
    """Record a referral, or hand back the one it repeats. Returns (row, created)."""
    repo = Referrals(session)
    patient, referrer = body["patient"], body["referrer"]
    contact = patient.get("contact") or {}
    print_ = fingerprint(body)
    if idempotency_key:
        repo.lock_duplicates("idempotency|" + idempotency_key)
        existing = repo.by_idempotency_key(idempotency_key)
        if existing is not None:
            if existing.request_fingerprint != print_:
                raise Conflict("this Idempotency-Key was used for a different referral",
                               errors={"Idempotency-Key": ["reused with another request"]})
            return existing, False
    domain.check_intake(domain.IntakeFacts(
        date_of_birth=patient["date_of_birth"], condition=body["condition"],
        condition_detail=body.get("condition_detail"),
        preferred_channel=patient["preferred_channel"], email=contact.get("email"),
        phone=contact.get("phone")), today=now.date())
    key = domain.referrer_key(referrer["name"], referrer.get("organisation", ""))
    referral_id = new_id()
    patient_id, idents = patients.intake(
        runtime, session, patient, referral_id=referral_id, now=now,
        referrer_sys=patients_domain.referrer_system(referrer.get("system"),
                                                     referrer.get("organisation", "")))
    repo.lock_duplicates(f"intake|{patient_id}|{body['condition']}")
    repeated = domain.duplicate_of(repo.open_candidates(patient_id, body["condition"]),
                                   referrer=key, now=now, window=duplicate_window(runtime))
    if repeated is not None:
        return repo.get(repeated), False

    referral, step = domain.receive(
        referral_id, patient_id=patient_id, condition=body["condition"],
        urgency_requested=body.get("urgency_requested"), targets=targets(runtime, session),
        actor=actor, now=now)
    ref_contact = referrer.get("contact") or {}
    duration = body["pain_duration"]
    row = ReferralRow(
        id=referral.id, status=referral.status, received_at=now, updated_at=now,
        created_by=actor.id, idempotency_key=idempotency_key, request_fingerprint=print_,
        patient_id=patient_id, patient_name=patient["name"],
        patient_identifiers=[{"system": i.system, "value": i.value} for i in idents],
        patient_date_of_birth=patient["date_of_birth"], patient_email=contact.get("email"),
        patient_phone=contact.get("phone"), preferred_channel=patient["preferred_channel"],
        language=patient["language"], referrer_name=referrer["name"],
        referrer_organisation=referrer.get("organisation", ""),
        referrer_email=ref_contact.get("email"), referrer_phone=ref_contact.get("phone"),
        referrer_key=key, condition=body["condition"],
        condition_detail=body.get("condition_detail"),
        pain_duration_value=duration["value"], pain_duration_unit=duration["unit"],
        reason=body["reason"], medications=body.get("medications", []),
        attachments=body.get("attachments", []),
        urgency_requested=body.get("urgency_requested"), pathway=[])
    apply(row, referral, now=now)
    repo.add(row)
    repo.record(row.id, step)
    # v2: the patient's id only; their details went to patients.contacts (intake)
    runtime.emit(session, "referral.received", {
        "referral_id": row.id, "patient_id": row.patient_id,
        "referrer": {"name": row.referrer_name, "organisation": row.referrer_organisation},
        "condition": row.condition, "received_at": now,
        "urgency_requested": row.urgency_requested, "due_by": row.due_by}, key=row.id,
        version=2)
    _status_changed(runtime, session, referral, step)
    return row, True


# -------------------------------------------------------------------------- workflow

def triage(runtime: Runtime, session: Session, referral_id: str, body: dict[str, Any], *,
           actor: Actor, now: datetime) -> ReferralRow:
    """A pain-medicine specialist sets priority, screening and care pathway."""
    domain.require_pain_medicine(actor, "triage")
    screening = (domain.check_screening(body["screening"]["tool"], body["screening"]["score"])
                 if body.get("screening") else None)
    pathway = domain.build_pathway([domain.StepRequest(**s) for s in body["pathway"]])
    repo = Referrals(session)
    row = repo.get(referral_id, for_update=True)
    domain.require_decision(actor, "triage", repo.team_of(row.patient_id))
    referral, step = domain.triage(to_domain(row), priority=body["priority"],
                                   screening=screening, pathway=pathway,
                                   targets=targets(runtime, session), actor=actor, now=now,
                                   reason=body.get("reason"))
    _store(runtime, session, row, referral, step, now=now)
    repo.join_team(row, actor.id, discipline=actor.discipline, source="triage", at=now)
    return row


def make_move(runtime: Runtime, session: Session, referral_id: str, action: str, *,
              actor: Actor, now: datetime, reason: str | None = None) -> ReferralRow:
    """accept, reject, cancel, hold, resume or discharge, as a person asked."""
    repo = Referrals(session)
    row = repo.get(referral_id, for_update=True)
    domain.require_decision(actor, action, repo.team_of(row.patient_id))
    referral, step = domain.move(to_domain(row), action, actor=actor, now=now, reason=reason)
    if action == "accept":
        repo.join_team(row, actor.id, discipline=actor.discipline, source="accept", at=now)
    _store(runtime, session, row, referral, step, now=now)
    if action == "discharge":
        repo.close_team(row.id, now)
    return row


def provider_booked(session: Session, referral_id: str, *, provider_id: str,
                    discipline: str | None, at: datetime) -> None:
    """A provider booked for the referral joins the patient's care team here too."""
    repo = Referrals(session)
    repo.join_team(repo.get(referral_id), provider_id, discipline=discipline,
                   source="appointment.booked", at=at)


def itinerary_booked(runtime: Runtime, session: Session, referral_id: str, *,
                     itinerary_id: str, first_visit_at: datetime | None, actor: Actor,
                     now: datetime, event_id: str) -> ReferralRow:
    row = Referrals(session).get(referral_id, for_update=True)
    referral, step = domain.booked(to_domain(row), first_visit_at=first_visit_at, actor=actor,
                                   now=now, reason=f"itinerary {itinerary_id} booked")
    if step is not None:
        _store(runtime, session, row, referral, step, now=now, event_id=event_id)
    return row


def itinerary_planned(runtime: Runtime, session: Session, referral_id: str, *,
                      itinerary_id: str, first_visit_at: datetime | None, booked: bool,
                      actor: Actor, now: datetime) -> ReferralRow:
    """An itinerary was proposed or booked for the referral: if its first visit falls
    after the due date, the referral is at breach risk (once per itinerary); a booked one
    within the due date lifts the risk."""
    repo = Referrals(session)
    row = repo.get(referral_id, for_update=True)
    if first_visit_at is None:
        return row
    referral = to_domain(row)
    risk = domain.assess_itinerary(referral, first_visit_at=first_visit_at,
                                   tz=clinic_tz(runtime), now=now)
    if risk is not None:
        if not repo.breach_raised(row.id, itinerary_id):
            what = "booked" if booked else "proposed"
            _raise_breach(runtime, session, row, referral, risk, occasion=itinerary_id,
                          actor=actor, note=f"first visit of {what} itinerary {itinerary_id} "
                                            f"falls after the due date {row.due_by}")
    elif booked and not domain.first_visit_is_late(row.due_by, first_visit_at,
                                                   clinic_tz(runtime)):
        cleared, step = domain.clear_breach(
            referral, actor=actor, now=now,
            note=f"itinerary {itinerary_id} booked with its first visit by {row.due_by}")
        if step is not None:
            apply(row, cleared, now=now)
            repo.record(row.id, step)
            repo.clear_breaches(row.id, now)
            _audit(runtime, session, actor, "breach_cleared", row)
    return row


def sweep_near_due(runtime: Runtime, session: Session, *, now: datetime,
                   warning_days: int, limit: int = 200) -> list[str]:
    """Warn once about each triaged or accepted referral still unscheduled whose due date
    is within `warning_days` (or past). Safe with several workers: each warning is claimed
    by a conditional update first. Returns the referrals warned about."""
    repo = Referrals(session)
    cutoff = domain.near_due_cutoff(now.astimezone(clinic_tz(runtime)).date(), warning_days)
    actor = Actor(id=runtime.settings.service, role="service")
    warned = []
    for referral_id in repo.near_due_candidates(cutoff, limit):
        if not repo.claim_near_due(referral_id, cutoff, now):
            continue  # another worker took it, or it moved on meanwhile
        row = repo.get(referral_id, for_update=True)
        if repo.breach_raised(row.id, UNSCHEDULED_OCCASION):
            continue
        risk = BreachRisk(domain.UNSCHEDULED_NEAR_DUE, now)
        _raise_breach(runtime, session, row, to_domain(row), risk,
                      occasion=UNSCHEDULED_OCCASION, actor=actor,
                      note=f"still {row.status} and not scheduled; due by {row.due_by}")
        warned.append(row.id)
    return warned


def _raise_breach(runtime: Runtime, session: Session, row: ReferralRow, referral: Referral,
                  risk: BreachRisk, *, occasion: str, actor: Actor, note: str) -> None:
    """Store the risk on the referral, its history line and the event, in one go."""
    flagged, step = domain.flag_breach(referral, risk, actor=actor, note=note)
    repo = Referrals(session)
    apply(row, flagged, now=risk.detected_at)
    repo.record(row.id, step)
    repo.record_breach(row, occasion, risk)
    runtime.emit(session, "referral.breach_risk", {
        "referral_id": row.id, "patient_id": row.patient_id, "priority": row.priority,
        "due_by": row.due_by, "reason": risk.reason, "first_visit_at": risk.first_visit_at,
        "detected_at": risk.detected_at}, key=row.id)
    _audit(runtime, session, actor, "breach_risk", row)


def _audit(runtime: Runtime, session: Session, actor: Actor, action: str,
           row: ReferralRow) -> None:
    runtime.audit.record(session, Principal(subject=actor.id, role=actor.role), action,
                         "referral", resource_id=row.id, patient_id=row.patient_id)


def appointment_completed(runtime: Runtime, session: Session, referral_id: str, *,
                          appointment_id: str, actor: Actor, now: datetime,
                          event_id: str) -> ReferralRow:
    row = Referrals(session).get(referral_id, for_update=True)
    referral, step = domain.first_visit_done(
        to_domain(row), actor=actor, now=now,
        reason=f"first appointment {appointment_id} completed")
    if step is not None:
        _store(runtime, session, row, referral, step, now=now, event_id=event_id)
    return row


def _store(runtime: Runtime, session: Session, row: ReferralRow, referral: Referral,
           step: Move, *, now: datetime, event_id: str | None = None) -> None:
    apply(row, referral, now=now)
    Referrals(session).record(row.id, step, event_id=event_id)
    event_type = _EVENT_FOR_ACTION.get(step.action)
    if event_type:
        runtime.emit(session, event_type, _payload(event_type, row, referral, step),
                     key=row.id)
    _status_changed(runtime, session, referral, step)


def _payload(event_type: str, row: ReferralRow, referral: Referral, step: Move
             ) -> dict[str, Any]:
    base = {"referral_id": referral.id, "patient_id": referral.patient_id}
    if event_type == "referral.triaged":
        screening = referral.screening
        return {**base, "priority": referral.priority, "target_days": referral.target_days,
                "screening": {"tool": screening.tool, "score": screening.score}
                if screening else None,
                "pathway": pathway_to_json(referral.pathway), "triaged_by": step.actor.id}
    if event_type == "referral.accepted":
        return {**base, "patient_name": row.patient_name, "priority": referral.priority,
                "target_days": referral.target_days, "due_by": referral.due_by,
                "condition": referral.condition, "pathway": pathway_to_json(referral.pathway),
                "accepted_by": step.actor.id}
    if event_type in ("referral.rejected", "referral.cancelled"):
        return {**base, "reason": step.reason, "by": step.actor.id}
    if event_type == "referral.discharged":
        return {**base, "reason": step.reason or "", "by": step.actor.id}
    raise ValueError(event_type)


def _status_changed(runtime: Runtime, session: Session, referral: Referral, step: Move
                    ) -> None:
    runtime.emit(session, "referral.status_changed", {
        "referral_id": referral.id, "patient_id": referral.patient_id,
        "from_status": step.from_status, "to_status": step.to_status,
        "priority": referral.priority, "condition": referral.condition,
        "received_at": referral.received_at, "due_by": referral.due_by, "at": step.at},
        key=referral.id)
