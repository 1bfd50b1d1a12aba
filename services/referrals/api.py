"""The referrals HTTP API: intake, triage, decisions, queries and the clinic's targets.

Routes are thin: validate with marshmallow (422 names the field), turn the principal
into a domain Actor, run a use case in one transaction, audit patient-data access.
Schedulers create and read every referral's administrative fields (no clinical text);
a specialist reads the referrals of the patients whose care team they are on, the triage
lead also those waiting for triage; the triage lead triages; decisions (accept, reject,
hold, resume, cancel, discharge) are the triage lead's or the patient's pain-medicine
lead's; a referring system (role referrer) sends referrals and reads only the status of
those it sent; admin (operations) sets the clinic's targets only. A referral a reader may not
see answers 404 (its existence is health data), audited as refused.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import marshmallow as ma
from flask import current_app, request
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.referrals import domain, use_cases
from services.referrals.db import (
    HistoryRow,
    ListFilters,
    ReferralRow,
    Referrals,
    aware,
    to_domain,
)
from services.referrals.domain import Actor
from shared.errors import ClinicError, Forbidden, InvalidInput, NotFound
from shared.events.vocabulary import (
    CHANNELS,
    CONDITIONS,
    DISCIPLINES,
    PRIORITIES,
    REFERRAL_STATUSES,
    SCREENING_TOOLS,
)
from shared.runtime import Runtime
from shared.web import PageArgs, current_principal, roles

blp = Blueprint("referrals", __name__, url_prefix="/referrals",
                description="Referrals: intake, triage, decisions and their history")
targets_blp = Blueprint("priority_targets", __name__, url_prefix="/priority-targets",
                        description="Days from receipt to first visit, per priority")

# Each reader then sees only what domain.may_read allows (care team, triage lead's
# queue) and schedulers only the administrative fields (domain.sees_clinical_fields).
READERS = ("scheduler", "specialist", "triage_lead")
CLINICIANS = ("specialist", "triage_lead")
# Clinical text withheld from a reader who is not a clinician (a scheduler): named in
# the referral's `withheld`, so a client can say why it is not shown.
CLINICAL_FIELDS = ("condition_detail", "medications", "reason", "attachments", "screening",
                   "closed_reason")


class Text(fields.String):
    """Text a person typed: no control characters but line breaks and tabs, and nothing
    that cannot be stored as UTF-8 (PostgreSQL refuses NUL; a lone surrogate cannot be
    encoded). Refused here as 422 rather than failing in the database as 500."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not _printable(text):
            raise ma.ValidationError("contains control characters or invalid unicode")
        return text


def _printable(text: str) -> bool:
    return not any(unicodedata.category(c) in ("Cc", "Cs") and c not in "\n\r\t"
                   for c in text)


_text = validate.Length(min=1, max=200)
_PHONE = validate.Regexp(r"^\+?[0-9 ()\-]{6,40}$", error="not a phone number")


# --------------------------------------------------------------------------- input

class ContactIn(ma.Schema):
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=254))
    phone = Text(load_default=None, allow_none=True, validate=_PHONE)


class IdentifierIn(ma.Schema):
    system = Text(required=True, validate=validate.OneOf(("nhs_number", "mrn")))
    value = Text(required=True, validate=validate.Length(min=1, max=64))
    assigner = Text(load_default=None, allow_none=True, validate=validate.Length(max=200),
                    metadata={"description": "the hospital that assigned an MRN (required "
                                             "for an MRN)"})


class PatientIn(ma.Schema):
    id = Text(required=True, validate=validate.Length(min=1, max=64),
              metadata={"description": "the referrer's own id for the patient, qualified "
                                       "by the referrer's system (never matched alone)"})
    identifiers = fields.List(fields.Nested(IdentifierIn), load_default=list,
                              validate=validate.Length(max=5), metadata={
                                  "description": "NHS number (modulus-11 checked: 422 "
                                                 "naming the field) and hospital MRNs"})
    postcode = Text(load_default=None, allow_none=True, validate=validate.Length(max=12))
    details_as_of = fields.AwareDateTime(load_default=None, allow_none=True, metadata={
        "description": "when the referrer's details were true; older than the registry's "
                       "they change nothing"})
    name = Text(required=True, validate=_text)
    date_of_birth = fields.Date(required=True)
    contact = fields.Nested(ContactIn, load_default=dict)
    preferred_channel = Text(load_default="email", validate=validate.OneOf(CHANNELS))
    language = Text(load_default="en", validate=validate.Length(min=2, max=10))


class ReferrerIn(ma.Schema):
    name = Text(required=True, validate=_text)
    system = Text(load_default=None, allow_none=True, validate=validate.Length(max=200),
                  metadata={"description": "whose numbering patient.id is in; omitted: "
                                           "the organisation's"})
    organisation = Text(required=True, validate=_text)
    contact = fields.Nested(ContactIn, load_default=dict)


class PainDurationIn(ma.Schema):
    value = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=1200))
    unit = Text(required=True,
                         validate=validate.OneOf(("days", "weeks", "months", "years")))


class MedicationIn(ma.Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=120))
    dose = Text(required=True, validate=validate.Length(min=1, max=120))
    frequency = Text(load_default=None, allow_none=True,
                              validate=validate.Length(max=120))


class AttachmentIn(ma.Schema):
    """What was sent with the referral (letters, scans); the files live elsewhere."""

    filename = Text(required=True, validate=validate.Length(min=1, max=255))
    content_type = Text(required=True, validate=validate.Length(min=3, max=100))
    size_bytes = fields.Integer(required=True, strict=True,
                                validate=validate.Range(min=0, max=50 * 1024 * 1024))
    description = Text(load_default=None, allow_none=True,
                                validate=validate.Length(max=500))
    reference = Text(load_default=None, allow_none=True,
                              validate=validate.Length(max=500))


class ReferralIn(ma.Schema):
    patient = fields.Nested(PatientIn, required=True)
    referrer = fields.Nested(ReferrerIn, required=True)
    condition = Text(required=True, validate=validate.OneOf(CONDITIONS))
    condition_detail = Text(load_default=None, allow_none=True,
                                     validate=validate.Length(max=500))
    pain_duration = fields.Nested(PainDurationIn, required=True)
    medications = fields.List(fields.Nested(MedicationIn), load_default=list,
                              validate=validate.Length(max=30))
    reason = Text(required=True, validate=validate.Length(min=1, max=4000))
    attachments = fields.List(fields.Nested(AttachmentIn), load_default=list,
                              validate=validate.Length(max=20))
    urgency_requested = Text(load_default=None, allow_none=True,
                                      validate=validate.OneOf(PRIORITIES))


class ScreeningIn(ma.Schema):
    tool = Text(required=True, validate=validate.OneOf(SCREENING_TOOLS))
    score = fields.Integer(required=True, strict=True)


class StepIn(ma.Schema):
    discipline = Text(required=True, validate=validate.OneOf(DISCIPLINES))
    visit_minutes = fields.Integer(required=True, strict=True,
                                   validate=validate.Range(min=10, max=240))
    sessions = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=52))
    interval_days = fields.Integer(required=True, strict=True,
                                   validate=validate.Range(min=0, max=90))
    after = fields.List(Text(validate=validate.OneOf(DISCIPLINES)),
                        load_default=None, allow_none=True,
                        metadata={"description": "disciplines to see first; omitted: "
                                                 "pain medicine first"})


class TriageIn(ma.Schema):
    priority = Text(required=True, validate=validate.OneOf(PRIORITIES))
    screening = fields.Nested(ScreeningIn, load_default=None, allow_none=True)
    pathway = fields.List(fields.Nested(StepIn), required=True,
                          validate=validate.Length(min=1, max=len(DISCIPLINES)))
    reason = Text(load_default=None, allow_none=True, validate=validate.Length(max=1000),
                  metadata={"description": "why this priority and pathway (history)"})


class ReasonIn(ma.Schema):
    reason = Text(required=True, validate=validate.Length(min=1, max=1000))


class OptionalReasonIn(ma.Schema):
    reason = Text(load_default=None, allow_none=True,
                           validate=validate.Length(max=1000))


class ListArgs(PageArgs):
    status = Text(validate=validate.OneOf(REFERRAL_STATUSES))
    priority = Text(validate=validate.OneOf(PRIORITIES))
    condition = Text(validate=validate.OneOf(CONDITIONS))
    referrer = Text(validate=validate.Length(min=1, max=200),
                             metadata={"description": "part of the referrer's name or "
                                                      "organisation"})
    patient_id = Text(validate=validate.Length(min=1, max=64))
    overdue = fields.Boolean(metadata={"description": "waiting past the target date"})
    breach_risk = fields.Boolean(metadata={"description": "at risk of missing the target "
                                                          "date (true) or not (false)"})


class QueueArgs(PageArgs):
    breach_risk = fields.Boolean(metadata={"description": "only those at breach risk (true) "
                                                          "or not (false)"})


class TargetsIn(ma.Schema):
    urgent = fields.Integer(strict=True, validate=validate.Range(min=0, max=365))
    soon = fields.Integer(strict=True, validate=validate.Range(min=0, max=365))
    routine = fields.Integer(strict=True, validate=validate.Range(min=0, max=365))


# -------------------------------------------------------------------------- output

class ContactOut(ma.Schema):
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)


class IdentifierOut(ma.Schema):
    system = fields.String(metadata={"description": "nhs_number, mrn:<assigner> or "
                                                    "local:<referrer's system>"})
    value = fields.String()


class PatientOut(ma.Schema):
    id = fields.String(metadata={"description": "PainCare's own patient id (the "
                                                "referrer's id is among identifiers)"})
    identifiers = fields.List(fields.Nested(IdentifierOut))
    name = fields.String()
    date_of_birth = fields.Date()
    contact = fields.Nested(ContactOut)
    preferred_channel = fields.String()
    language = fields.String()


class ReferrerOut(ma.Schema):
    name = fields.String()
    organisation = fields.String()
    contact = fields.Nested(ContactOut)


class StepOut(ma.Schema):
    discipline = fields.String()
    visit_minutes = fields.Integer()
    sessions = fields.Integer()
    interval_days = fields.Integer()
    after = fields.List(fields.String())


class HistoryOut(ma.Schema):
    action = fields.String()
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    at = fields.DateTime()
    by = fields.String()
    by_role = fields.String()
    reason = fields.String(allow_none=True)
    event_id = fields.String(allow_none=True)


class BreachRiskOut(ma.Schema):
    reason = fields.String(metadata={"description": "first_visit_after_due or "
                                                    "unscheduled_near_due"})
    detected_at = fields.DateTime()
    first_visit_at = fields.DateTime(allow_none=True, metadata={
        "description": "the first visit that falls after the due date"})


class ReferralOut(ma.Schema):
    id = fields.String()
    status = fields.String()
    allowed_moves = fields.List(fields.String())
    patient = fields.Nested(PatientOut)
    referrer = fields.Nested(ReferrerOut)
    condition = fields.String()
    condition_detail = fields.String(allow_none=True)
    pain_duration = fields.Dict()
    medications = fields.List(fields.Dict())
    reason = fields.String()
    attachments = fields.List(fields.Dict())
    urgency_requested = fields.String(allow_none=True)
    received_at = fields.DateTime()
    updated_at = fields.DateTime()
    priority = fields.String(allow_none=True)
    target_days = fields.Integer(allow_none=True)
    due_by = fields.Date(allow_none=True)
    overdue = fields.Boolean()
    waiting_days = fields.Integer()
    screening = fields.Dict(allow_none=True)
    pathway = fields.List(fields.Nested(StepOut))
    triaged_by = fields.String(allow_none=True)
    triaged_at = fields.DateTime(allow_none=True)
    decided_by = fields.String(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    held_from = fields.String(allow_none=True)
    closed_reason = fields.String(allow_none=True)
    first_visit_at = fields.DateTime(allow_none=True)
    at_breach_risk = fields.Boolean(metadata={"description": "about to miss its target"})
    breach_risk = fields.Nested(BreachRiskOut, allow_none=True)
    history = fields.List(fields.Nested(HistoryOut))
    withheld = fields.List(fields.String(), metadata={
        "description": "clinical fields not shown to this reader (schedulers)"})


class ReferralSummaryOut(ReferralOut):
    """A referral in a list: everything but its history."""

    class Meta:
        exclude = ("history",)


class ReferralPage(ma.Schema):
    items = fields.List(fields.Nested(ReferralSummaryOut))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()


class QueueItem(ma.Schema):
    position = fields.Integer()
    next_action = fields.String(metadata={"description": "triage or decide"})
    referral = fields.Nested(ReferralSummaryOut)


class QueuePage(ma.Schema):
    items = fields.List(fields.Nested(QueueItem))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()


class TargetsOut(ma.Schema):
    urgent = fields.Integer()
    soon = fields.Integer()
    routine = fields.Integer()


# ------------------------------------------------------------------------- helpers

def _runtime() -> Runtime:
    return current_app.extensions["paincare.runtime"]


def _now() -> datetime:
    return datetime.now(UTC)


def _actor() -> Actor:
    p = current_principal()
    return Actor(id=p.subject, role=p.role, discipline=p.discipline, roles=p.roles,
                 provider_id=p.provider_id)


class _Hidden(NotFound):
    """A referral this reader may not see answers as if it did not exist (its existence
    is itself health data); the refusal is still audited."""


def _readable(s: Session, referral_id: str) -> None:
    repo = Referrals(s)
    row = repo.find(referral_id)
    if row is not None and not domain.may_read(_actor(), row.status,
                                               repo.team_of(row.patient_id),
                                               held_from=row.held_from,
                                               created_by=row.created_by):
        raise _Hidden(f"no referral {referral_id}")


def shown(out: dict[str, Any]) -> dict[str, Any]:
    """The referral as this reader may see it: a scheduler gets no clinical text, a
    referring system only the status of what it sent."""
    actor = _actor()
    if actor.role == domain.REFERRER:
        status = {k: out[k] for k in domain.STATUS_FIELDS}
        return {**status, "withheld": sorted(set(out) - set(domain.STATUS_FIELDS))}
    if domain.sees_clinical_fields(actor):
        return out
    for name in CLINICAL_FIELDS:
        out.pop(name, None)
    for step in out.get("history") or []:
        if step["by_role"] not in ("service", "scheduler"):  # a clinician's words
            step.pop("reason", None)
    out["withheld"] = [*CLINICAL_FIELDS, "history.reason"]
    return out


def view(row: ReferralRow, *, today: date, history: list[HistoryRow] | None = None
         ) -> dict[str, Any]:
    """A referral as the API shows it (with its history when asked for one)."""
    referral = to_domain(row)
    received = aware(row.received_at)
    out: dict[str, Any] = {
        "id": row.id, "status": row.status, "allowed_moves": domain.allowed_moves(row.status),
        "patient": {"id": row.patient_id, "identifiers": row.patient_identifiers or [],
                    "name": row.patient_name,
                    "date_of_birth": row.patient_date_of_birth,
                    "contact": {"email": row.patient_email, "phone": row.patient_phone},
                    "preferred_channel": row.preferred_channel, "language": row.language},
        "referrer": {"name": row.referrer_name, "organisation": row.referrer_organisation,
                     "contact": {"email": row.referrer_email, "phone": row.referrer_phone}},
        "condition": row.condition, "condition_detail": row.condition_detail,
        "pain_duration": {"value": row.pain_duration_value, "unit": row.pain_duration_unit},
        "medications": row.medications, "reason": row.reason, "attachments": row.attachments,
        "urgency_requested": row.urgency_requested, "received_at": received,
        "updated_at": aware(row.updated_at), "priority": row.priority,
        "target_days": row.target_days, "due_by": row.due_by,
        "overdue": domain.is_overdue(referral, today=today),
        "waiting_days": (today - received.date()).days if received else 0,
        "screening": ({"tool": row.screening_tool, "score": row.screening_score}
                      if row.screening_tool else None),
        "pathway": row.pathway or [], "triaged_by": row.triaged_by,
        "triaged_at": aware(row.triaged_at), "decided_by": row.decided_by,
        "decided_at": aware(row.decided_at), "held_from": row.held_from,
        "closed_reason": row.closed_reason, "first_visit_at": aware(row.first_visit_at),
        "at_breach_risk": row.breach_reason is not None,
        "breach_risk": ({"reason": row.breach_reason,
                         "detected_at": aware(row.breach_detected_at),
                         "first_visit_at": aware(row.breach_first_visit_at)}
                        if row.breach_reason else None),
    }
    if history is not None:
        out["history"] = [{"action": h.action, "from_status": h.from_status,
                           "to_status": h.to_status, "at": aware(h.at), "by": h.actor,
                           "by_role": h.actor_role, "reason": h.reason,
                           "event_id": h.event_id} for h in history]
    return shown(out)


def _refused(action: str, referral_id: str | None, exc: ClinicError) -> None:
    """A refused attempt leaves its trace even though the request's work rolls back."""
    runtime = _runtime()
    with runtime.db.transaction() as s:
        runtime.audit.record(s, current_principal(), action, "referral",
                             resource_id=referral_id, outcome="refused", reason=exc.detail)


def _detail(referral_id: str, action: str,
            run: Callable[[Runtime, Session, datetime], ReferralRow]) -> dict[str, Any]:
    """Run a move in one transaction, audit it, answer with the referral and history."""
    runtime = _runtime()
    now = _now()
    try:
        with runtime.db.transaction() as s:
            _readable(s, referral_id)
            row = run(runtime, s, now)
            runtime.audit.record(s, current_principal(), action, "referral",
                                 resource_id=row.id, patient_id=row.patient_id)
            return view(row, today=now.date(), history=Referrals(s).history(row.id))
    except (Forbidden, _Hidden) as exc:
        _refused(action, referral_id, exc)
        raise


# --------------------------------------------------------------------------- routes

IDEMPOTENCY_DOC = {"parameters": [{
    "in": "header", "name": "Idempotency-Key", "required": False,
    "schema": {"type": "string", "maxLength": 200},
    "description": "The same key again returns the referral it created."}]}


@blp.post("")
@blp.arguments(ReferralIn)
@blp.response(201, ReferralOut)
@blp.alt_response(200, schema=ReferralOut, description="A duplicate: the existing referral")
@blp.doc(**IDEMPOTENCY_DOC)
@roles("scheduler", "referrer")
def create_referral(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Record a referral; a duplicate (same key, or same patient, referrer and condition
    within the window) answers 200 with the referral it repeats."""
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and (len(key) > 200 or not key.isprintable()):
        raise InvalidInput("at most 200 printable characters", field="Idempotency-Key")
    runtime, now = _runtime(), _now()
    for attempt in (1, 2):
        try:
            with runtime.db.transaction() as s:
                row, created = use_cases.receive(runtime, s, body, actor=_actor(), now=now,
                                                 idempotency_key=key)
                runtime.audit.record(s, current_principal(),
                                     "create" if created else "read_duplicate", "referral",
                                     resource_id=row.id, patient_id=row.patient_id)
                out = view(row, today=now.date(), history=Referrals(s).history(row.id))
            break
        except IntegrityError:  # the same key raced in from another request: read it
            if attempt == 2:
                raise
    return out, 201 if created else 200


@blp.get("")
@blp.arguments(ListArgs, location="query")
@blp.response(200, ReferralPage)
@roles(*READERS)
def list_referrals(args: dict[str, Any]) -> dict[str, Any]:
    """Referrals, newest first, filtered by status, priority, condition, referrer,
    patient, overdue against their target, or at breach risk."""
    runtime, now = _runtime(), _now()
    filters = ListFilters(**{k: args.get(k) for k in (
        "status", "priority", "condition", "referrer", "patient_id", "overdue",
        "breach_risk")})
    with runtime.db.transaction() as s:
        rows, total = Referrals(s).page(filters, today=now.date(), limit=args["limit"],
                                        offset=args["offset"], reader=_actor())
        for row in rows:
            runtime.audit.record(s, current_principal(), "list", "referral",
                                 resource_id=row.id, patient_id=row.patient_id)
        return {"items": [view(r, today=now.date()) for r in rows], "total": total,
                "limit": args["limit"], "offset": args["offset"]}


@blp.get("/queue")
@blp.arguments(QueueArgs, location="query")
@blp.response(200, QueuePage)
@roles(*READERS)
def triage_queue(args: dict[str, Any]) -> dict[str, Any]:
    """The specialists' work: referrals to triage or to decide on, most urgent first,
    then longest waiting; `breach_risk` narrows it to those about to miss their target."""
    runtime, now = _runtime(), _now()
    with runtime.db.transaction() as s:
        rows, total = Referrals(s).triage_queue(limit=args["limit"], offset=args["offset"],
                                                breach_risk=args.get("breach_risk"),
                                                reader=_actor())
        for row in rows:
            runtime.audit.record(s, current_principal(), "list", "referral",
                                 resource_id=row.id, patient_id=row.patient_id)
        items = [{"position": args["offset"] + i + 1,
                  "next_action": "triage" if r.status == domain.RECEIVED else "decide",
                  "referral": view(r, today=now.date())} for i, r in enumerate(rows)]
    return {"items": items, "total": total, "limit": args["limit"], "offset": args["offset"]}


@blp.get("/<referral_id>")
@blp.response(200, ReferralOut)
@blp.alt_response(404, description="No such referral")
@roles(*READERS, "referrer")
def get_referral(referral_id: str) -> dict[str, Any]:
    """One referral with its whole history."""
    return _detail(referral_id, "read", lambda runtime, s, now: Referrals(s).get(referral_id))


@blp.post("/<referral_id>/triage")
@blp.arguments(TriageIn)
@blp.response(200, ReferralOut)
@blp.alt_response(403, description="Not a pain-medicine specialist")
@blp.alt_response(404, description="No such referral")
@blp.alt_response(409, description="The referral's status does not allow triage")
@roles(*CLINICIANS)
def triage_referral(body: dict[str, Any], referral_id: str) -> dict[str, Any]:
    """Priority, screening score and care pathway (pain-medicine specialists)."""
    return _detail(referral_id, "triage", lambda runtime, s, now: use_cases.triage(
        runtime, s, referral_id, body, actor=_actor(), now=now))


def _move_route(action: str, schema: type[ma.Schema], doc: str) -> None:
    def route(body: dict[str, Any], referral_id: str) -> dict[str, Any]:
        return _detail(referral_id, action, lambda runtime, s, now: use_cases.make_move(
            runtime, s, referral_id, action, actor=_actor(), now=now,
            reason=body.get("reason")))

    route.__name__ = f"{action}_referral"
    route.__doc__ = doc
    decorated = roles(*CLINICIANS)(route)
    decorated = blp.alt_response(409, description=f"The status does not allow {action}")(
        decorated)
    decorated = blp.alt_response(404, description="No such referral")(decorated)
    decorated = blp.response(200, ReferralOut)(decorated)
    decorated = blp.arguments(schema)(decorated)
    blp.post(f"/<referral_id>/{action}")(decorated)


_move_route("accept", OptionalReasonIn,
            "Accept a triaged referral; referral.accepted carries its care pathway.")
_move_route("reject", ReasonIn, "Reject a referral, saying why (pain-medicine specialists).")
_move_route("cancel", ReasonIn, "Cancel a referral, saying why.")
_move_route("hold", ReasonIn, "Put a referral on hold, saying why.")
_move_route("resume", OptionalReasonIn, "Take a referral off hold, back where it was.")
_move_route("discharge", OptionalReasonIn, "Discharge a patient in care.")


@targets_blp.get("")
@targets_blp.response(200, TargetsOut)
@roles(*READERS)
def get_targets() -> dict[str, int]:
    """Days from receipt to first visit for each priority."""
    runtime = _runtime()
    with runtime.db.transaction() as s:
        return dict(use_cases.targets(runtime, s).days)


@targets_blp.put("")
@targets_blp.arguments(TargetsIn)
@targets_blp.response(200, TargetsOut)
@roles("admin")
def set_targets(body: dict[str, int]) -> dict[str, int]:
    """Set the clinic's targets; referrals triaged from now on use them."""
    runtime, now = _runtime(), _now()
    with runtime.db.transaction() as s:
        repo = Referrals(s)
        for priority, days in body.items():
            repo.set_target(priority, days, by=current_principal().subject, now=now)
        return dict(use_cases.targets(runtime, s).days)
