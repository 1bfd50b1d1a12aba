"""The patient registry's HTTP API, for schedulers (who see demographics, never clinical
text): a patient's details and identifiers, a correction of their contacts, and the
possible-same tasks they settle by linking two patients or keeping them apart, and the
undoing of a link. Every read and write is audited with the patient's id.

Bad input is 422 problem+json naming the field, as everywhere in referrals (the schema's
and the registry's rules alike: an NHS number that fails its modulus-11 check is 422 on
`patient.identifiers.<i>.value`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint
from marshmallow import fields, validate

from services.referrals.api import Text
from services.referrals.db import aware
from services.referrals.patients import domain, use_cases
from services.referrals.patients.db import PatientRow, Patients, PossibleSameRow
from shared.events.vocabulary import CHANNELS
from shared.runtime import Runtime
from shared.web import PageArgs, current_principal, roles

patients_blp = Blueprint("patients", __name__, url_prefix="/patients",
                         description="The patient registry: one PainCare id per person, "
                                     "identifiers, contacts, possible-same tasks, links")
_PHONE = validate.Regexp(r"^\+?[0-9 ()\-]{6,40}$", error="not a phone number")
KEEPERS = ("scheduler",)


class ContactsIn(ma.Schema):
    name = Text(validate=validate.Length(min=1, max=200))
    date_of_birth = fields.Date()
    email = fields.Email(allow_none=True, validate=validate.Length(max=254))
    phone = Text(allow_none=True, validate=_PHONE)
    postcode = Text(allow_none=True, validate=validate.Length(max=12))
    preferred_channel = Text(validate=validate.OneOf(CHANNELS))
    language = Text(validate=validate.Length(min=2, max=10))


class UnlinkIn(ma.Schema):
    reason = Text(required=True, validate=validate.Length(min=1, max=1000))


class TaskArgs(PageArgs):
    status = fields.String(validate=validate.OneOf((domain.OPEN, domain.LINKED,
                                                    domain.KEPT_APART)))


class RegistryIdentifierOut(ma.Schema):
    system = fields.String()
    value = fields.String()


class RegisteredPatientOut(ma.Schema):
    id = fields.String(metadata={"description": "PainCare's own patient id"})
    identifiers = fields.List(fields.Nested(RegistryIdentifierOut))
    name = fields.String()
    date_of_birth = fields.Date()
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    postcode = fields.String(allow_none=True)
    preferred_channel = fields.String()
    language = fields.String()
    as_of = fields.DateTime(metadata={"description": "when the details last changed"})
    source = fields.String(metadata={"description": "referral:<id> or user:<subject>"})
    linked_to = fields.String(allow_none=True, metadata={
        "description": "the patient whose records this one's are read with"})
    linked = fields.List(fields.String(), metadata={"description": "patients linked into "
                                                                   "this one"})


class PossibleSameTaskOut(ma.Schema):
    id = fields.String()
    patient_id = fields.String()
    other_patient_id = fields.String()
    reason = fields.String()
    status = fields.String()
    opened_at = fields.DateTime()
    settled_by = fields.String(allow_none=True)
    settled_at = fields.DateTime(allow_none=True)


def _runtime() -> Runtime:
    return current_app.extensions["paincare.runtime"]


def _patient(repo: Patients, row: PatientRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "date_of_birth": row.date_of_birth,
            "email": row.email, "phone": row.phone, "postcode": row.postcode,
            "preferred_channel": row.preferred_channel, "language": row.language,
            "as_of": aware(row.as_of), "source": row.source, "linked_to": row.linked_to,
            "linked": repo.linked_into(row.id),
            "identifiers": [{"system": i.system, "value": i.value}
                            for i in repo.identifiers(row.id)]}


def _task(row: PossibleSameRow) -> dict[str, Any]:
    return {"id": row.id, "patient_id": row.patient_id,
            "other_patient_id": row.other_patient_id, "reason": row.reason,
            "status": row.status, "opened_at": aware(row.opened_at),
            "settled_by": row.settled_by, "settled_at": aware(row.settled_at)}


@patients_blp.route("/<patient_id>")
@patients_blp.response(200, RegisteredPatientOut)
@roles(*KEEPERS)
def read_patient(patient_id: str) -> dict[str, Any]:
    """A patient's details, identifiers and links (demographics only)."""
    runtime = _runtime()
    with runtime.db.transaction() as s:
        repo = Patients(s)
        out = _patient(repo, repo.get(patient_id))
        runtime.audit.record(s, current_principal(), "read", "patient",
                             resource_id=patient_id, patient_id=patient_id)
        return out


@patients_blp.route("/<patient_id>/contacts", methods=["PATCH"])
@patients_blp.arguments(ContactsIn)
@patients_blp.response(200, RegisteredPatientOut)
@roles(*KEEPERS)
def change_contacts(body: dict[str, Any], patient_id: str) -> dict[str, Any]:
    """Correct the patient's details: the newest change, told to the notifier at once
    (patient.contact_changed); an older referral arriving later does not undo it."""
    runtime = _runtime()
    with runtime.db.transaction() as s:
        row = use_cases.change_contacts(runtime, s, patient_id, body,
                                        principal=current_principal(), now=datetime.now(UTC))
        return _patient(Patients(s), row)


@patients_blp.route("/<patient_id>/unlink", methods=["POST"])
@patients_blp.arguments(UnlinkIn)
@patients_blp.response(200, RegisteredPatientOut)
@roles(*KEEPERS)
def unlink(body: dict[str, Any], patient_id: str) -> dict[str, Any]:
    """Undo a link (patient.unlinked): each patient's records are their own again."""
    runtime = _runtime()
    with runtime.db.transaction() as s:
        row = use_cases.unlink(runtime, s, patient_id, reason=body["reason"],
                               principal=current_principal(), now=datetime.now(UTC))
        return _patient(Patients(s), row)


@patients_blp.route("/possible-same")
@patients_blp.arguments(TaskArgs, location="query")
@patients_blp.response(200, PossibleSameTaskOut(many=True))
@roles(*KEEPERS)
def possible_same(args: dict[str, Any]) -> list[dict[str, Any]]:
    """Possible-same-patient tasks (open ones first in time), for a scheduler to settle."""
    runtime = _runtime()
    with runtime.db.transaction() as s:
        rows = Patients(s).tasks(args.get("status"), args["limit"], args["offset"])
        for row in rows:
            runtime.audit.record(s, current_principal(), "read", "possible_same",
                                 resource_id=row.id, patient_id=row.patient_id)
        return [_task(r) for r in rows]


def _settle(task_id: str, decision: str) -> dict[str, Any]:
    runtime = _runtime()
    with runtime.db.transaction() as s:
        row = use_cases.settle(runtime, s, task_id, decision, principal=current_principal(),
                               now=datetime.now(UTC))
        return _task(row)


@patients_blp.route("/possible-same/<task_id>/link", methods=["POST"])
@patients_blp.response(200, PossibleSameTaskOut)
@roles(*KEEPERS)
def link(task_id: str) -> dict[str, Any]:
    """The two are one person: link them (patient.linked; the one registered first
    survives). Nothing is merged or moved, so an unlink loses nothing."""
    return _settle(task_id, "link")


@patients_blp.route("/possible-same/<task_id>/keep-apart", methods=["POST"])
@patients_blp.response(200, PossibleSameTaskOut)
@roles(*KEEPERS)
def keep_apart(task_id: str) -> dict[str, Any]:
    """The two are different people: the task is closed and nothing changes."""
    return _settle(task_id, "keep_apart")
