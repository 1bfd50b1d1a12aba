"""The diary's request and response bodies (marshmallow): what a route accepts, named
field by field, so a bad input is a 400 naming its field before any use case runs."""

from __future__ import annotations

from datetime import date
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from services.scheduling.diary import domain
from shared.events.vocabulary import DISCIPLINES, PRIORITIES
from shared.web import PageArgs

_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
_opt_id = fields.String(load_default=None, allow_none=True,
                        validate=validate.Length(min=1, max=64))  # null, not "", for none

class ProviderIn(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    discipline = fields.String(required=True, validate=validate.OneOf(DISCIPLINES))
    visit_types = fields.List(fields.String(validate=validate.Length(min=1, max=80)),
                              validate=validate.Length(max=20))
    email = fields.Email(allow_none=True)
    phone = fields.String(allow_none=True, validate=validate.Length(max=40))
    active = fields.Boolean()


class ProviderPatch(ProviderIn):
    """Any fields of a provider to change."""


class ProviderOut(ma.Schema):
    id = fields.String()
    name = fields.String()
    discipline = fields.String()
    visit_types = fields.List(fields.String())
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    active = fields.Boolean()


class ProviderQuery(ma.Schema):
    discipline = fields.String(validate=validate.OneOf(DISCIPLINES))
    include_inactive = fields.Boolean(load_default=False)


class Block(ma.Schema):
    weekday = fields.Integer(required=True, validate=validate.Range(min=0, max=6),
                             metadata={"description": "0 = Monday"})
    start = fields.Time(required=True, metadata={"description": "local wall time"})
    end = fields.Time(required=True)
    valid_from = fields.Date(load_default=None, allow_none=True)
    valid_until = fields.Date(load_default=None, allow_none=True)


class TemplateIn(ma.Schema):
    blocks = fields.List(fields.Nested(Block), required=True, validate=validate.Length(max=50))


class TemplateOut(ma.Schema):
    provider_id = fields.String()
    timezone = fields.String()
    blocks = fields.List(fields.Nested(Block))


class RoomIn(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(required=True, validate=validate.OneOf(domain.ROOM_KINDS))
    fit_for = fields.List(fields.String(validate=validate.Length(min=1, max=80)),
                          metadata={"description": "disciplines or visit types it suits"})
    active = fields.Boolean()


class RoomPatch(RoomIn):
    """Any fields of a room to change."""


class RoomOut(RoomIn):
    id = fields.String()


class ExceptionIn(ma.Schema):
    provider_id = _opt_id
    kind = fields.String(required=True, validate=validate.OneOf(domain.EXCEPTION_KINDS))
    start = fields.AwareDateTime(load_default=None, allow_none=True)
    end = fields.AwareDateTime(load_default=None, allow_none=True)
    first_day = fields.Date(load_default=None, allow_none=True,
                            metadata={"description": "whole local days, instead of start/end"})
    last_day = fields.Date(load_default=None, allow_none=True)
    note = fields.String(load_default="", validate=validate.Length(max=500))


class ExceptionOut(ma.Schema):
    id = fields.String()
    provider_id = fields.String(allow_none=True)
    kind = fields.String()
    start = fields.DateTime(attribute="start_at")
    end = fields.DateTime(attribute="end_at")
    note = fields.String()


CALENDAR = (date(1900, 1, 1), date(2999, 12, 31))


class DaysQuery(ma.Schema):
    first_day = fields.Date(required=True, data_key="from",
                            validate=validate.Range(*CALENDAR))
    last_day = fields.Date(required=True, data_key="to", validate=validate.Range(*CALENDAR))

    @ma.validates_schema
    def _days_in_order(self, data: dict, **_: Any) -> None:
        """A clinic's calendar, in order: a year like 9999 has no local midnight after it
        to convert, and a window that ends before it starts is a mistake, not empty."""
        if "first_day" in data and "last_day" in data and data["last_day"] < data["first_day"]:
            raise ma.ValidationError("must not be before `from`", "to")


class ExceptionQuery(DaysQuery):
    provider_id = fields.String(validate=validate.Length(max=64))


class AvailabilityQuery(DaysQuery):
    discipline = fields.String(validate=validate.OneOf(DISCIPLINES))
    provider_id = fields.String(validate=validate.Length(max=64))
    visit_type = fields.String(load_default="", validate=validate.Length(max=80))
    visit_minutes = fields.Integer(load_default=30, validate=validate.Range(min=5, max=480))
    step_minutes = fields.Integer(load_default=15, validate=validate.Range(min=5, max=240))
    slots = fields.Boolean(load_default=True, metadata={"description": "list the slots"})
    with_room = fields.Boolean(load_default=False, metadata={
        "description": "only slots where a room fit for the visit is free as well"})


class IntervalOut(ma.Schema):
    start = fields.DateTime()
    end = fields.DateTime()


class Intervals(fields.List):
    """A list of IntervalOut, serialised directly: 90 days of 40 diaries is ~60,000 slots,
    and field-by-field dumping would cost more than computing them."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(fields.Nested(IntervalOut), **kw)

    def _serialize(self, value: Any, attr: Any, obj: Any, **kw: Any) -> Any:
        if value is None:
            return None
        return [{"start": i.start.isoformat(), "end": i.end.isoformat()} for i in value]


class AvailabilityOut(ma.Schema):
    provider_id = fields.String()
    provider_name = fields.String()
    discipline = fields.String()
    free = Intervals()
    slots = Intervals()


class BookIn(ma.Schema):
    patient_id = _id
    provider_id = _id
    start = fields.AwareDateTime(required=True)
    minutes = fields.Integer(required=True, validate=validate.Range(min=5, max=480))
    room_id = _opt_id
    assign_room = fields.Boolean(load_default=False, metadata={
        "description": "without room_id: take the first free room fit for the visit"})
    visit_type = fields.String(load_default="", validate=validate.Length(max=80))
    referral_id = _opt_id
    itinerary_id = _opt_id
    status = fields.String(load_default="booked",
                           validate=validate.OneOf(("booked", *domain.HOLD_STATUSES)),
                           metadata={"description": "proposed/pending hold the slot"})
    hold_minutes = fields.Integer(load_default=30, validate=validate.Range(min=1, max=10080))


class AppointmentOut(ma.Schema):
    id = fields.String()
    patient_id = fields.String()
    provider_id = fields.String()
    room_id = fields.String(allow_none=True)
    discipline = fields.String()
    visit_type = fields.String()
    start = fields.DateTime(attribute="start_at")
    end = fields.DateTime(attribute="end_at")
    status = fields.String()
    hold_expires_at = fields.DateTime(allow_none=True)
    series_id = fields.String(allow_none=True)
    referral_id = fields.String(allow_none=True)
    itinerary_id = fields.String(allow_none=True)
    waitlist_id = fields.String(allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    updated_at = fields.DateTime()


class AppointmentQuery(PageArgs):
    provider_id = fields.String(validate=validate.Length(max=64))
    patient_id = fields.String(validate=validate.Length(max=64))
    status = fields.String(validate=validate.OneOf(domain.STATUSES))
    start = fields.AwareDateTime(data_key="from")
    end = fields.AwareDateTime(data_key="to")


class AppointmentCancelIn(ma.Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class RescheduleIn(ma.Schema):
    start = fields.AwareDateTime(required=True)
    minutes = fields.Integer(validate=validate.Range(min=5, max=480))
    provider_id = fields.String(validate=validate.Length(min=1, max=64))
    room_id = fields.String(allow_none=True, validate=validate.Length(max=64))


class SeriesIn(ma.Schema):
    patient_id = _id
    provider_id = _id
    first_start = fields.AwareDateTime(required=True)
    minutes = fields.Integer(required=True, validate=validate.Range(min=5, max=480))
    interval_days = fields.Integer(load_default=7, validate=validate.Range(min=1, max=90))
    count = fields.Integer(required=True, validate=validate.Range(min=1, max=52))
    room_id = _opt_id
    assign_room = fields.Boolean(load_default=False)
    visit_type = fields.String(load_default="", validate=validate.Length(max=80))
    referral_id = _opt_id


class Unplaced(ma.Schema):
    occurrence = fields.Integer()
    start = fields.String()
    end = fields.String()
    reason = fields.String()


class SeriesOut(ma.Schema):
    id = fields.String()
    patient_id = fields.String()
    provider_id = fields.String()
    booked = fields.List(fields.Nested(AppointmentOut))
    unplaced = fields.List(fields.Nested(Unplaced))


class WishIn(ma.Schema):
    patient_id = _id
    discipline = fields.String(required=True, validate=validate.OneOf(DISCIPLINES))
    provider_id = _opt_id
    visit_minutes = fields.Integer(required=True, validate=validate.Range(min=5, max=480))
    visit_type = fields.String(load_default="", validate=validate.Length(max=80))
    priority = fields.String(load_default="routine", validate=validate.OneOf(PRIORITIES))
    earliest = fields.Date(load_default=None, allow_none=True)
    latest = fields.Date(load_default=None, allow_none=True)
    weekdays = fields.List(fields.Integer(validate=validate.Range(min=0, max=6)),
                           load_default=list)
    day_start = fields.Time(load_default=None, allow_none=True)
    day_end = fields.Time(load_default=None, allow_none=True)
    referral_id = _opt_id


class WishOut(WishIn):
    id = fields.String()
    status = fields.String()
    offered_appointment_id = fields.String(allow_none=True)
    offer_expires_at = fields.DateTime(allow_none=True)


class WishQuery(ma.Schema):
    discipline = fields.String(validate=validate.OneOf(DISCIPLINES))
    status = fields.String(validate=validate.OneOf(("waiting", "offered", "booked", "removed")))


class AnswerIn(ma.Schema):
    accept = fields.Boolean(required=True)
