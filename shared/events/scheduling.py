"""Events of the scheduling service (topic scheduling.events, keyed by patient id; the
provider events by provider id)."""

from marshmallow import Schema, fields, validate

from shared.events.envelope import register
from shared.events.vocabulary import DISCIPLINES

_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
_opt_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
_discipline = fields.String(required=True, validate=validate.OneOf(DISCIPLINES))


@register("provider.registered", 1)
class ProviderRegisteredV1(Schema):
    """A provider joins (or is changed); the notifier keeps their contact."""

    provider_id = _id
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    discipline = _discipline
    email = fields.Email(load_default=None, allow_none=True)
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    active = fields.Boolean(load_default=True)


class CapacityBlock(Schema):
    """One block of a weekly template, in the clinic's local wall time (0 = Monday)."""

    weekday = fields.Integer(required=True, validate=validate.Range(min=0, max=6))
    start = fields.Time(required=True)
    end = fields.Time(required=True)
    valid_from = fields.Date(load_default=None, allow_none=True)
    valid_until = fields.Date(load_default=None, allow_none=True)


class CapacityException(Schema):
    """Time off the template: the provider's leave, or a clinic closure (everyone's)."""

    exception_id = _id
    kind = fields.String(required=True, validate=validate.Length(min=1, max=20))
    clinic_wide = fields.Boolean(load_default=False)
    start = fields.AwareDateTime(required=True)
    end = fields.AwareDateTime(required=True)


@register("provider.capacity_changed", 1)
class ProviderCapacityChangedV1(Schema):
    """A provider's whole working capacity as scheduling now has it (keyed by provider id):
    the weekly template and the exceptions still current, so a consumer can count the
    minutes available in any window. Each event replaces the previous one."""

    provider_id = _id
    discipline = _discipline
    timezone = fields.String(required=True, validate=validate.Length(min=1, max=64))
    blocks = fields.List(fields.Nested(CapacityBlock), required=True,
                         validate=validate.Length(max=200))
    exceptions = fields.List(fields.Nested(CapacityException), required=True,
                             validate=validate.Length(max=1000))
    exceptions_since = fields.AwareDateTime(required=True)


class _Visit(Schema):
    appointment_id = _id
    patient_id = _id
    provider_id = _id
    provider_name = fields.String(load_default="", validate=validate.Length(max=200))
    discipline = _discipline
    room_id = _opt_id
    room_name = fields.String(load_default="", validate=validate.Length(max=200))
    start = fields.AwareDateTime(required=True)
    end = fields.AwareDateTime(required=True)
    referral_id = _opt_id
    itinerary_id = _opt_id
    series_id = _opt_id


@register("appointment.booked", 1)
class AppointmentBookedV1(_Visit):
    visit_type = fields.String(load_default="", validate=validate.Length(max=80))


@register("appointment.cancelled", 1)
class AppointmentCancelledV1(_Visit):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))
    by = _id


@register("appointment.rescheduled", 1)
class AppointmentRescheduledV1(_Visit):
    previous_start = fields.AwareDateTime(required=True)
    previous_end = fields.AwareDateTime(required=True)
    previous_provider_id = _opt_id
    by = _id


@register("appointment.checked_in", 1)
class AppointmentCheckedInV1(_Visit):
    pass


@register("appointment.completed", 1)
class AppointmentCompletedV1(_Visit):
    pass


@register("appointment.no_show", 1)
class AppointmentNoShowV1(_Visit):
    pass


@register("waitlist.offered", 1)
class WaitlistOfferedV1(Schema):
    waitlist_id = _id
    patient_id = _id
    discipline = _discipline
    provider_id = _id
    provider_name = fields.String(load_default="", validate=validate.Length(max=200))
    start = fields.AwareDateTime(required=True)
    end = fields.AwareDateTime(required=True)
    offer_expires_at = fields.AwareDateTime(required=True)


class PlannedVisit(Schema):
    appointment_id = _opt_id
    discipline = _discipline
    provider_id = _id
    provider_name = fields.String(load_default="", validate=validate.Length(max=200))
    room_id = _opt_id
    room_name = fields.String(load_default="", validate=validate.Length(max=200))
    start = fields.AwareDateTime(required=True)
    end = fields.AwareDateTime(required=True)


@register("itinerary.proposed", 1)
class ItineraryProposedV1(Schema):
    itinerary_id = _id
    referral_id = _opt_id
    patient_id = _id
    hold_expires_at = fields.AwareDateTime(required=True)
    visits = fields.List(fields.Nested(PlannedVisit), required=True)
    notes = fields.List(fields.String(validate=validate.Length(max=500)), load_default=list)


@register("itinerary.booked", 1)
class ItineraryBookedV1(Schema):
    itinerary_id = _id
    referral_id = _opt_id
    patient_id = _id
    visits = fields.List(fields.Nested(PlannedVisit), required=True,
                         validate=validate.Length(min=1))
    what_to_bring = fields.List(fields.String(validate=validate.Length(max=300)),
                                load_default=list)


@register("itinerary.unplaceable", 1)
class ItineraryUnplaceableV1(Schema):
    referral_id = _opt_id
    patient_id = _id
    reasons = fields.List(fields.String(validate=validate.Length(max=500)), required=True,
                          validate=validate.Length(min=1))


@register("itinerary.cancelled", 1)
class ItineraryCancelledV1(Schema):
    itinerary_id = _id
    referral_id = _opt_id
    patient_id = _id
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))
