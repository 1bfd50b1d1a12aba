"""Events in: each clinic event rebuilds the FHIR resources it touches, inside the inbox's
transaction (so a redelivery changes nothing: an unchanged resource keeps its version)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from services.fhir import access, subscriptions
from services.fhir import mapping as fm
from services.fhir.db import Resources
from shared.events import Envelope
from shared.kafka import Subscription
from shared.runtime import Runtime
from shared.topics import NOTES, PATIENT_CONTACTS, REFERRALS, SCHEDULING

SUBSCRIPTION = "fhir-read-model"


def _at(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _day(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    return datetime.fromisoformat(str(value) + "T00:00:00+00:00") if isinstance(
        value, str | date) and len(str(value)) == 10 else _at(value)


def referral_resources(repo: Resources, referral: dict[str, Any], at: datetime) -> None:
    """ServiceRequest and Task from the referral's facts (and its referrer's identifiers)."""
    ids = repo.identifiers_of("service_request", referral["id"])
    patient = fm.fhir_id(referral["patient_id"])
    sr = fm.service_request(referral, ids)
    repo.put(sr, at=at, patient_id=patient, status=sr["status"],
             date=_at(referral["received_at"]), source_id=referral["id"])
    task = fm.task(referral, ids)
    before = repo.get("Task", task["id"])
    version = before.version if before is not None else 0
    row = repo.put(task, at=at, patient_id=patient, status=task["status"],
                   date=_at(referral["received_at"]), source_id=referral["id"],
                   code=f"{fm.CS_REFERRAL_STATUS}|{referral['status']}")
    if row.version != version:
        subscriptions.task_changed(repo, referral["id"], row)


def patient_resource(repo: Resources, contact: dict[str, Any], at: datetime) -> None:
    ids = repo.identifiers_of("patient", contact["patient_id"])
    body = fm.patient(contact, ids)
    repo.put(body, at=at, patient_id=body["id"], date=_day(contact.get("date_of_birth")))


def on_contact_changed(repo: Resources, p: dict[str, Any], at: datetime) -> None:
    """The registry's current details of a patient (patients.contacts); an older change,
    arriving late, leaves newer ones be."""
    known = repo.fact("patient", p["patient_id"]) or {}
    if known.get("as_of") and _at(known["as_of"]) > _at(p["as_of"]):
        return
    repo.save_fact("patient", p["patient_id"], p)
    patient_resource(repo, p, at)


def on_referral_received(repo: Resources, p: dict[str, Any], at: datetime) -> None:
    """v2 names the patient by id only (their details come as patient.contact_changed);
    v1, from older messages, still carries them."""
    if "patient" in p:
        contact = p["patient"]
        repo.save_fact("patient", contact["patient_id"], contact)
        patient_resource(repo, contact, at)
        patient_id = contact["patient_id"]
    else:
        patient_id = p["patient_id"]
    referral = repo.fact("referral", p["referral_id"]) or {}
    referral.update({
        "id": p["referral_id"], "patient_id": patient_id,
        "referrer": p["referrer"], "condition": p["condition"],
        "received_at": p["received_at"], "urgency_requested": p.get("urgency_requested"),
    })
    referral.setdefault("status", "received")
    referral.setdefault("updated_at", p["received_at"])
    if p.get("due_by") and not referral.get("due_by"):
        referral["due_by"] = p["due_by"]
    repo.save_fact("referral", p["referral_id"], referral)
    referral_resources(repo, referral, at)
    _sent_through_fhir(repo, p["referral_id"], patient_id, at)


def _sent_through_fhir(repo: Resources, referral_id: str, patient_id: str,
                       at: datetime) -> None:
    """A referral a referring system sent here, answered before its patient was known:
    its patient's identifiers and the system's own referrals learn the patient now. The
    Patient resource is rebuilt with those identifiers if the registry's details have
    come (patients.contacts); if they come later, `on_contact_changed` builds it."""
    intake = repo.fact("intake", referral_id)
    if intake is None or intake.get("patient_id"):
        return
    repo.save_fact("intake", referral_id, {**intake, "patient_id": patient_id})
    for ident in intake.get("patient_identifiers") or []:
        repo.remember("patient", ident, patient_id, at)
    if intake.get("created_by"):
        access.sent(repo, referral_id, patient_id, intake["created_by"])
    contact = repo.fact("patient", patient_id)
    if contact:
        patient_resource(repo, contact, at)


def on_status_changed(repo: Resources, p: dict[str, Any], at: datetime) -> None:
    referral = repo.fact("referral", p["referral_id"]) or {
        "id": p["referral_id"], "patient_id": p["patient_id"], "referrer": {},
        "received_at": p["received_at"]}
    referral.update({"status": p["to_status"], "condition": p["condition"],
                     "updated_at": p["at"]})
    if p.get("priority"):
        referral["priority"] = p["priority"]
    if p.get("due_by"):
        referral["due_by"] = p["due_by"]
    repo.save_fact("referral", p["referral_id"], referral)
    referral_resources(repo, referral, at)
    team = repo.fact("care_team", p["referral_id"])
    if team is not None:
        _care_team(repo, p["referral_id"], team, at)


def on_triaged(repo: Resources, p: dict[str, Any], at: datetime) -> None:
    """The triage lead who triaged joins the patient's care team (as at the desk)."""
    access.joined(repo, p["referral_id"], p["patient_id"], p["triaged_by"])


def on_accepted(repo: Resources, p: dict[str, Any], at: datetime) -> None:
    """So does the specialist who accepted."""
    access.joined(repo, p["referral_id"], p["patient_id"], p["accepted_by"])


def _care_team(repo: Resources, referral_id: str, team: dict[str, Any], at: datetime) -> None:
    referral = repo.fact("referral", referral_id) or {}
    active = referral.get("status") not in ("discharged", "rejected", "cancelled")
    body = fm.care_team(referral_id, team["patient_id"], team["members"], active)
    repo.put(body, at=at, patient_id=fm.fhir_id(team["patient_id"]), status=body["status"],
             source_id=referral_id)


def on_visit(repo: Resources, event_type: str, p: dict[str, Any], at: datetime) -> None:
    status = fm.APPOINTMENT_STATUS[event_type]
    body = fm.appointment(p, status)
    patient = fm.fhir_id(p["patient_id"])
    repo.put(body, at=at, patient_id=patient, status=status, date=_at(p["start"]),
             source_id=p.get("referral_id"))
    if status == "cancelled":
        repo.delete("Slot", body["id"])
    else:
        slot = fm.busy_slot(p)
        repo.put(slot, at=at, status="busy", date=_at(p["start"]),
                 code=f"Schedule|{fm.fhir_id(p['provider_id'])}")
    if status == "fulfilled":
        enc = fm.encounter(p)
        repo.put(enc, at=at, patient_id=patient, status="finished", date=_at(p["start"]),
                 source_id=p.get("referral_id"))
    if p.get("referral_id") and status != "cancelled":
        access.joined(repo, p["referral_id"], p["patient_id"], p["provider_id"])
        team = repo.fact("care_team", p["referral_id"]) or {
            "patient_id": p["patient_id"], "members": {}}
        team["members"] = {**team["members"], p["provider_id"]: {
            "discipline": p["discipline"], "name": p.get("provider_name", "")}}
        repo.save_fact("care_team", p["referral_id"], team)
        _care_team(repo, p["referral_id"], team, at)


def on_provider(repo: Resources, p: dict[str, Any], at: datetime) -> None:
    repo.save_fact("provider", p["provider_id"], p)
    status = "true" if p.get("active", True) else "false"  # searched as active=true|false
    repo.put(fm.practitioner(p), at=at, status=status)
    repo.put(fm.schedule(p), at=at, status=status,
             code=f"{fm.CS_DISCIPLINE}|{p['discipline']}")


# an item's answer: withheld from FHIR readers while its note is sensitive and unshared
ITEM_MEASURES = ("phq9_item9",)


def on_note_signed(repo: Resources, p: dict[str, Any], at: datetime) -> None:
    """Measures become Observations; item answers (PHQ-9's nine) a QuestionnaireResponse.
    A sensitive note's item answers wait for its author to share it (note.shared): the
    notes service shows them to its author and discipline only until then."""
    withheld = bool(p.get("sensitive"))
    if withheld:
        repo.save_fact("withheld_note", p["note_id"], p)
    _note_resources(repo, p, at, items=not withheld)


def on_note_shared(repo: Resources, p: dict[str, Any], at: datetime) -> None:
    note = repo.fact("withheld_note", p["note_id"])
    if note is not None:
        _note_resources(repo, note, at, items=True)


def _note_resources(repo: Resources, p: dict[str, Any], at: datetime, *, items: bool
                    ) -> None:
    patient = fm.fhir_id(p["patient_id"])
    if items:
        for instrument, scores in sorted((p.get("items") or {}).items()):
            if instrument in fm.QUESTIONNAIRES:
                body = fm.questionnaire_response(p, instrument, scores)
                repo.put(body, at=at, patient_id=patient, status="completed",
                         date=_at(p["signed_at"]), code=fm.QUESTIONNAIRES[instrument][0],
                         source_id=p["note_id"])
    for measure, value in sorted((p.get("measures") or {}).items()):
        if measure not in fm.MEASURE_CODES or (measure in ITEM_MEASURES and not items):
            continue
        body = fm.observation(p, measure, value)
        system, code, _ = fm.MEASURE_CODES[measure]
        repo.put(body, at=at, patient_id=fm.fhir_id(p["patient_id"]), status="final",
                 date=_at(p["signed_at"]), code=f"{system}|{code}", source_id=p["note_id"])


def on_note_entered_in_error(repo: Resources, p: dict[str, Any], at: datetime) -> None:
    for row in repo.by_source("QuestionnaireResponse", p["note_id"]):
        body = dict(row.body)
        body["status"] = "entered-in-error"
        repo.put(body, at=at, patient_id=row.patient_id, status="entered-in-error",
                 date=row.date, code=row.code, source_id=row.source_id)
    for row in repo.by_source("Observation", p["note_id"]):
        body = dict(row.body)
        body["status"] = "entered-in-error"
        repo.put(body, at=at, patient_id=row.patient_id, status="entered-in-error",
                 date=row.date, code=row.code, source_id=row.source_id)


def _visit(event_type: str, repo: Resources, p: dict[str, Any], at: datetime) -> None:
    on_visit(repo, event_type, p, at)


Apply = Callable[[Resources, dict[str, Any], datetime], None]
APPLIERS: dict[str, Apply] = {
    "referral.received": on_referral_received,
    "patient.contact_changed": on_contact_changed,
    "referral.status_changed": on_status_changed,
    "referral.triaged": on_triaged,
    "referral.accepted": on_accepted,
    "provider.registered": on_provider,
    "note.signed": on_note_signed,
    "note.entered_in_error": on_note_entered_in_error,
    "note.shared": on_note_shared,
    **{t: partial(_visit, t) for t in fm.APPOINTMENT_STATUS},
}


def handle(session: Session, envelope: Envelope, runtime: Runtime | None = None) -> None:
    """Apply one event; with the runtime, a subscribed Task's change is emitted in the
    same transaction (the inbox's)."""
    emit = None
    if runtime is not None:
        def emit(event_type: str, payload: dict[str, Any], key: str) -> None:
            runtime.emit(session, event_type, payload, key=key)
    APPLIERS[envelope.type](Resources(session, emit), envelope.payload, envelope.occurred_at)


def read_model_subscription(runtime: Runtime) -> Subscription:
    return Subscription(SUBSCRIPTION, (REFERRALS, SCHEDULING, NOTES,
                                       PATIENT_CONTACTS),
                        dict.fromkeys(APPLIERS, partial(_handle_with, runtime)))


def _handle_with(runtime: Runtime, session: Session, envelope: Envelope) -> None:
    handle(session, envelope, runtime)
