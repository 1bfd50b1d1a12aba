"""Events of the referrals service (topic referrals.events, keyed by referral id)."""

from marshmallow import Schema, fields, validate

from shared.events.envelope import register
from shared.events.vocabulary import (
    CHANNELS,
    CONDITIONS,
    DISCIPLINES,
    PRIORITIES,
    REFERRAL_STATUSES,
    SCREENING_TOOLS,
)

_id = fields.String(required=True, validate=validate.Length(min=1, max=64))


class PatientContact(Schema):
    """Who to tell and how; the notifier keeps it as its recipient directory."""

    patient_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    date_of_birth = fields.Date(required=True)
    email = fields.Email(load_default=None, allow_none=True)
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    preferred_channel = fields.String(load_default="email", validate=validate.OneOf(CHANNELS))
    language = fields.String(load_default="en", validate=validate.Length(min=2, max=10))


class Referrer(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    organisation = fields.String(load_default="", validate=validate.Length(max=200))


class PathwayStep(Schema):
    """One discipline's part of the care pathway."""

    discipline = fields.String(required=True, validate=validate.OneOf(DISCIPLINES))
    visit_minutes = fields.Integer(required=True, validate=validate.Range(min=10, max=240))
    sessions = fields.Integer(required=True, validate=validate.Range(min=1, max=52))
    interval_days = fields.Integer(required=True, validate=validate.Range(min=0, max=90))
    after = fields.List(fields.String(validate=validate.OneOf(DISCIPLINES)), load_default=list)


class Screening(Schema):
    tool = fields.String(required=True, validate=validate.OneOf(SCREENING_TOOLS))
    score = fields.Integer(required=True)


@register("referral.received", 1)
class ReferralReceivedV1(Schema):
    """Superseded by v2 (it carried contact details); still read from older messages."""

    referral_id = _id
    patient = fields.Nested(PatientContact, required=True)
    referrer = fields.Nested(Referrer, required=True)
    condition = fields.String(required=True, validate=validate.OneOf(CONDITIONS))
    received_at = fields.AwareDateTime(required=True)
    # What the referrer asked for; triage sets the priority later.
    urgency_requested = fields.String(load_default=None, allow_none=True,
                                      validate=validate.OneOf(PRIORITIES))
    due_by = fields.Date(load_default=None, allow_none=True)


@register("referral.received", 2)
class ReferralReceivedV2(Schema):
    """v2 carries the patient's PainCare id only: no name, date of birth or contacts
    (those travel once, as `patient.contact_changed` on the protected
    `patients.contacts`). Consumers still read v1 from older messages."""

    referral_id = _id
    patient_id = _id
    referrer = fields.Nested(Referrer, required=True)
    condition = fields.String(required=True, validate=validate.OneOf(CONDITIONS))
    received_at = fields.AwareDateTime(required=True)
    urgency_requested = fields.String(load_default=None, allow_none=True,
                                      validate=validate.OneOf(PRIORITIES))
    due_by = fields.Date(load_default=None, allow_none=True)


@register("referral.triaged", 1)
class ReferralTriagedV1(Schema):
    referral_id = _id
    patient_id = _id
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    target_days = fields.Integer(required=True, validate=validate.Range(min=0, max=365))
    screening = fields.Nested(Screening, load_default=None, allow_none=True)
    pathway = fields.List(fields.Nested(PathwayStep), required=True,
                          validate=validate.Length(min=1, max=4))
    triaged_by = _id


@register("referral.accepted", 1)
class ReferralAcceptedV1(Schema):
    """Carries the care pathway: scheduling proposes an itinerary from it."""

    referral_id = _id
    patient_id = _id
    patient_name = fields.String(load_default="", validate=validate.Length(max=200))
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    target_days = fields.Integer(required=True, validate=validate.Range(min=0, max=365))
    due_by = fields.Date(required=True)
    condition = fields.String(load_default="other", validate=validate.OneOf(CONDITIONS))
    pathway = fields.List(fields.Nested(PathwayStep), required=True,
                          validate=validate.Length(min=1, max=4))
    accepted_by = _id


class _Closed(Schema):
    referral_id = _id
    patient_id = _id
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))
    by = _id


@register("referral.rejected", 1)
class ReferralRejectedV1(_Closed):
    pass


@register("referral.cancelled", 1)
class ReferralCancelledV1(_Closed):
    pass


@register("referral.discharged", 1)
class ReferralDischargedV1(Schema):
    referral_id = _id
    patient_id = _id
    by = _id
    reason = fields.String(load_default="", validate=validate.Length(max=1000))


@register("referral.status_changed", 1)
class ReferralStatusChangedV1(Schema):
    """Every move of the workflow, for read models (the dashboard's referral figures)."""

    referral_id = _id
    patient_id = _id
    from_status = fields.String(required=True, allow_none=True,
                                validate=validate.OneOf(REFERRAL_STATUSES))
    to_status = fields.String(required=True, validate=validate.OneOf(REFERRAL_STATUSES))
    priority = fields.String(load_default=None, allow_none=True,
                             validate=validate.OneOf(PRIORITIES))
    condition = fields.String(required=True, validate=validate.OneOf(CONDITIONS))
    received_at = fields.AwareDateTime(required=True)
    due_by = fields.Date(load_default=None, allow_none=True)
    at = fields.AwareDateTime(required=True)


BREACH_REASONS = ("first_visit_after_due", "unscheduled_near_due")


@register("referral.breach_risk", 1)
class ReferralBreachRiskV1(Schema):
    """A referral is about to miss its target: its itinerary's first visit falls after
    `due_by`, or it is still unscheduled close to it. The triage lead is told."""

    referral_id = _id
    patient_id = _id
    priority = fields.String(load_default=None, allow_none=True,
                             validate=validate.OneOf(PRIORITIES))
    due_by = fields.Date(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(BREACH_REASONS))
    first_visit_at = fields.AwareDateTime(load_default=None, allow_none=True)
    detected_at = fields.AwareDateTime(required=True)
