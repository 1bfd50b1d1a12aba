"""What the registry does, one function per use case, in the caller's transaction: find
or register the patient a referral is about, change their contacts, and settle a
possible-same task by linking the two patients or keeping them apart (and undo a link).
Every change that others must know is an event staged in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.referrals.db import Referrals
from services.referrals.patients import domain
from services.referrals.patients.db import (
    PatientRow,
    Patients,
    PossibleSameRow,
    contacts_of,
    set_contacts,
)
from services.referrals.patients.domain import Contacts, Identifier
from shared import topics
from shared.auth import Principal
from shared.correlation import new_id
from shared.errors import Conflict, InvalidInput
from shared.runtime import Runtime

# The strongest identifier decides when two point at different patients.
_STRENGTH = {domain.NHS_NUMBER: 0, domain.MRN: 1, domain.LOCAL: 2}


def intake(runtime: Runtime, session: Session, patient: dict[str, Any], *,
           referrer_sys: str, referral_id: str, now: datetime) -> tuple[str, list[Identifier]]:
    """The PainCare patient a referral is about: the one its identifiers already belong
    to (the same system and value), else a new one; a new one alike in name, date of
    birth and postcode or phone to another opens a possible-same task. Returns the
    patient id and the referral's identifiers."""
    idents = domain.identifiers(patient["id"], referrer_sys, patient.get("identifiers") or [])
    contact = patient.get("contact") or {}
    incoming = Contacts(
        name=patient["name"], date_of_birth=patient["date_of_birth"],
        email=contact.get("email"), phone=contact.get("phone"),
        postcode=domain.postcode(patient.get("postcode")),
        preferred_channel=patient["preferred_channel"], language=patient["language"],
        as_of=patient.get("details_as_of") or now, source=f"referral:{referral_id}")
    if incoming.as_of > now:
        raise InvalidInput("the details cannot be dated in the future",
                           field="patient.details_as_of")
    repo = Patients(session)
    referrals = Referrals(session)
    for ident in sorted(idents, key=lambda i: (i.system, i.value)):
        referrals.lock_duplicates(f"patient|{ident.system}|{ident.value}")
    owners = _owners(repo, idents)
    if owners:
        patient_id = owners[0]
        for other in owners[1:]:  # e.g. an NHS number on one, the local id on another
            _open_task(repo, patient_id, other, "their identifiers name both", now)
        row = repo.get(patient_id, for_update=True)
        if domain.newer(contacts_of(row), incoming) and domain.changed(contacts_of(row),
                                                                       incoming):
            set_contacts(row, incoming)
            _contact_changed(runtime, session, row)
    else:
        patient_id = new_id()
        row = PatientRow(id=patient_id, created_at=now, linked_to=None)
        set_contacts(row, incoming)
        repo.add(row)
        _contact_changed(runtime, session, row)
        for alike in repo.alike(incoming, besides=patient_id):
            _open_task(repo, alike.id, patient_id,
                       "same name and date of birth, and postcode or phone", now)
    repo.add_identifiers(patient_id, idents, source=f"referral:{referral_id}", at=now)
    return patient_id, idents


def _owners(repo: Patients, idents: list[Identifier]) -> list[str]:
    """The patients the identifiers belong to, strongest identifier first."""
    found: list[str] = []
    for ident in sorted(idents, key=lambda i: _STRENGTH.get(i.kind, 9)):
        for pid in repo.by_identifiers([ident]):
            if pid not in found:
                found.append(pid)
    return found


def _open_task(repo: Patients, a: str, b: str, reason: str, now: datetime) -> None:
    if a != b:
        repo.open_task(new_id(), a, b, reason, now)


def change_contacts(runtime: Runtime, session: Session, patient_id: str,
                    body: dict[str, Any], *, principal: Principal, now: datetime) -> PatientRow:
    """A person corrects the patient's details: they are the newest, so they stand until
    a later change (an older referral arriving after this one leaves them be)."""
    row = Patients(session).get(patient_id, for_update=True)
    current = contacts_of(row)
    merged = {k: body.get(k, getattr(current, k)) for k in (
        "name", "date_of_birth", "email", "phone", "preferred_channel", "language")}
    incoming = Contacts(**merged, postcode=domain.postcode(body.get("postcode",
                                                                    current.postcode)),
                        as_of=now, source=f"user:{principal.subject}"[:200])
    domain.check_reachable(incoming)
    if incoming.date_of_birth > now.date():
        raise InvalidInput("a date of birth cannot be in the future", field="date_of_birth")
    if domain.changed(current, incoming):
        set_contacts(row, incoming)
        _contact_changed(runtime, session, row)
    runtime.audit.record(session, principal, "change_contacts", "patient",
                         resource_id=patient_id, patient_id=patient_id)
    return row


def settle(runtime: Runtime, session: Session, task_id: str, decision: str, *,
           principal: Principal, now: datetime) -> PossibleSameRow:
    """Link the task's two patients (the one registered first survives) or keep them
    apart. A link is an event every service applies; nothing is moved or merged."""
    repo = Patients(session)
    task = repo.task(task_id, for_update=True)
    status = domain.settle(task.status, decision)
    if status == domain.LINKED:
        first, second = sorted((repo.get(task.patient_id, for_update=True),
                                repo.get(task.other_patient_id, for_update=True)),
                               key=lambda r: (r.created_at, r.id))
        domain.check_link(first.id, second.id, {first.id: first.linked_to,
                                                second.id: second.linked_to})
        if repo.linked_into(second.id):
            raise Conflict(f"patient {second.id} has others linked to them; link them "
                           f"the other way round", errors={"patient_id": ["has links"]})
        second.linked_to = first.id
        runtime.emit(session, "patient.linked", {
            "patient_id": first.id, "linked_patient_id": second.id, "task_id": task.id,
            "by": principal.subject, "at": now}, key=first.id, topic=topics.PATIENTS)
    task.status, task.settled_by, task.settled_at = status, principal.subject[:120], now
    for pid in (task.patient_id, task.other_patient_id):
        runtime.audit.record(session, principal, f"possible_same_{decision}", "patient",
                             resource_id=task.id, patient_id=pid)
    return task


def unlink(runtime: Runtime, session: Session, patient_id: str, *, reason: str,
           principal: Principal, now: datetime) -> PatientRow:
    """Undo a link: the patient's records are their own again, everywhere."""
    repo = Patients(session)
    row = repo.get(patient_id, for_update=True)
    if not row.linked_to:
        raise Conflict(f"patient {patient_id} is not linked to anyone",
                       errors={"patient_id": ["not linked"]})
    surviving, row.linked_to = row.linked_to, None
    runtime.emit(session, "patient.unlinked", {
        "patient_id": surviving, "linked_patient_id": row.id, "by": principal.subject,
        "reason": reason, "at": now}, key=surviving, topic=topics.PATIENTS)
    for task in repo.tasks_between(surviving, row.id):
        task.status, task.settled_by, task.settled_at = (domain.KEPT_APART,
                                                         principal.subject[:120], now)
    for pid in (surviving, row.id):
        runtime.audit.record(session, principal, "unlink", "patient", resource_id=row.id,
                             patient_id=pid, reason=reason)
    return row


def _contact_changed(runtime: Runtime, session: Session, row: PatientRow) -> None:
    """The patient's current details, to the protected topic (personal data)."""
    c = contacts_of(row)
    runtime.emit(session, "patient.contact_changed", {
        "patient_id": row.id, "name": c.name, "date_of_birth": c.date_of_birth,
        "email": c.email, "phone": c.phone, "preferred_channel": c.preferred_channel,
        "language": c.language, "as_of": c.as_of, "source": c.source},
        key=row.id, topic=topics.PATIENT_CONTACTS)
