"""The scheduling HTTP API: thin routes that validate, check the caller's role and hand
the work to the desk inside one transaction.

Roles: schedulers book and change; specialists read their own diary (token claim
provider_id); admins do everything; service accounts read and book.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint
from marshmallow import fields, validate

from services.scheduling import domain
from services.scheduling.desk import Desk
from shared import availability as av
from shared.auth import Principal
from shared.errors import Forbidden
from shared.events.vocabulary import DISCIPLINES, PRIORITIES
from shared.web import PageArgs, current_principal, roles

blp = Blueprint("scheduling", __name__, description="Providers, rooms, availability, "
                "appointments, series and the waitlist")

READERS = ("scheduler", "specialist", "service")
_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
_opt_id = fields.String(load_default=None, allow_none=True,
                        validate=validate.Length(min=1, max=64))  # null, not "", for none


def desk() -> Desk:
    return current_app.extensions["scheduling.desk"]


# --- schemas ---------------------------------------------------------------------------


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


# --- providers and rooms -----------------------------------------------------------------


@blp.post("/providers")
@blp.arguments(ProviderIn)
@blp.response(201, ProviderOut)
@roles("admin")
def create_provider(body: dict) -> dict:
    """Register a provider (emits provider.registered)."""
    return desk().run(lambda s, now: desk().save_provider(s, body, now))


@blp.get("/providers")
@blp.arguments(ProviderQuery, location="query")
@blp.response(200, ProviderOut(many=True))
@roles(*READERS, "admin")
def list_providers(args: dict) -> list:
    return desk().run(lambda s, now: desk().list_providers(
        s, discipline=args.get("discipline"),
        active=None if args["include_inactive"] else True))


@blp.get("/providers/<provider_id>")
@blp.response(200, ProviderOut)
@roles(*READERS, "admin")
def get_provider(provider_id: str) -> dict:
    return desk().run(lambda s, now: desk().provider(s, provider_id))


@blp.patch("/providers/<provider_id>")
@blp.arguments(ProviderPatch(partial=True))
@blp.response(200, ProviderOut)
@roles("admin")
def change_provider(body: dict, provider_id: str) -> dict:
    """Change a provider (emits provider.registered with the new details)."""
    return desk().run(lambda s, now: desk().save_provider(s, body, now, provider_id))


@blp.put("/providers/<provider_id>/template")
@blp.arguments(TemplateIn)
@blp.response(200, TemplateOut)
@roles("admin")
def set_template(body: dict, provider_id: str) -> dict:
    """Replace the provider's weekly working template (local wall times)."""
    blocks = desk().run(
        lambda s, now: desk().set_template(s, provider_id, body["blocks"], now))
    return {"provider_id": provider_id, "timezone": str(desk().tz), "blocks": blocks}


@blp.get("/providers/<provider_id>/template")
@blp.response(200, TemplateOut)
@roles(*READERS, "admin")
def get_template(provider_id: str) -> dict:
    def work(s: Any, now: Any) -> list:
        desk().provider(s, provider_id)
        return desk().template(s, provider_id)

    return {"provider_id": provider_id, "timezone": str(desk().tz), "blocks": desk().run(work)}


@blp.post("/rooms")
@blp.arguments(RoomIn)
@blp.response(201, RoomOut)
@roles("admin")
def create_room(body: dict) -> dict:
    return desk().run(lambda s, now: desk().save_room(s, body, now))


@blp.get("/rooms")
@blp.response(200, RoomOut(many=True))
@roles(*READERS, "admin")
def list_rooms() -> list:
    return desk().run(lambda s, now: desk().list_rooms(s))


@blp.patch("/rooms/<room_id>")
@blp.arguments(RoomPatch(partial=True))
@blp.response(200, RoomOut)
@roles("admin")
def change_room(body: dict, room_id: str) -> dict:
    return desk().run(lambda s, now: desk().save_room(s, body, now, room_id))


# --- exceptions and availability ---------------------------------------------------------


@blp.post("/exceptions")
@blp.arguments(ExceptionIn)
@blp.response(201, ExceptionOut)
@roles("scheduler")
def add_exception(body: dict) -> dict:
    """Leave, training or sickness of a provider, or a clinic closure (no provider)."""
    who = current_principal()
    return desk().run(lambda s, now: desk().add_exception(s, who, body, now))


@blp.get("/exceptions")
@blp.arguments(ExceptionQuery, location="query")
@blp.response(200, ExceptionOut(many=True))
@roles(*READERS)
def list_exceptions(args: dict) -> list:
    span = av.local_days(args["first_day"], args["last_day"], desk().tz)
    return desk().run(lambda s, now: desk().list_exceptions(
        s, provider_id=args.get("provider_id"), span=span))


@blp.delete("/exceptions/<exception_id>")
@blp.response(204)
@roles("scheduler")
def remove_exception(exception_id: str) -> None:
    desk().run(lambda s, now: desk().remove_exception(s, exception_id, now))


@blp.get("/availability")
@blp.arguments(AvailabilityQuery, location="query")
@blp.response(200, AvailabilityOut(many=True))
@roles(*READERS)
def availability(args: dict) -> list:
    """Free time per provider over local dates from..to (inclusive), and the slots where
    a visit of visit_minutes fits, on the local grid of step_minutes."""
    result = desk().run(lambda s, now: desk().availability(
        s, now, first_day=args["first_day"], last_day=args["last_day"],
        minutes=args["visit_minutes"], discipline=args.get("discipline"),
        provider_id=args.get("provider_id"), visit_type=args["visit_type"],
        step_minutes=args["step_minutes"], with_room=args["with_room"]))
    if not args["slots"]:
        for entry in result:
            entry["slots"] = []
    return result


# --- appointments ------------------------------------------------------------------------


def _refused(who: Principal, exc: Forbidden, *, resource_id: str | None = None,
             patient_id: str | None = None) -> Forbidden:
    """A refused look at a diary is audited in a transaction of its own (the request's
    own transaction rolls back)."""
    desk().units.refused(who, "read", "appointment", exc.detail, resource_id=resource_id,
                         patient_id=patient_id)
    return exc


def _own_diary(who: Principal, provider_id: str | None) -> str | None:
    """A specialist sees only their own diary (the provider_id claim of their token)."""
    if who.role != "specialist":
        return provider_id
    if not who.provider_id:
        raise Forbidden("a specialist's token must carry provider_id to read a diary")
    if provider_id and provider_id != who.provider_id:
        raise Forbidden("a specialist reads only their own diary")
    return who.provider_id


@blp.post("/appointments")
@blp.arguments(BookIn)
@blp.response(201, AppointmentOut)
@blp.alt_response(409, description="The provider, room or patient is taken then")
@roles("scheduler", "service")
def book(body: dict) -> dict:
    """Book a visit, or hold it (status proposed/pending, expiring after hold_minutes)."""
    who = current_principal()
    return desk().run(lambda s, now: desk().book(s, who, now, body))


@blp.get("/appointments")
@blp.arguments(AppointmentQuery, location="query")
@blp.response(200, AppointmentOut(many=True))
@roles(*READERS)
def list_appointments(args: dict) -> list:
    who = current_principal()
    try:
        provider_id = _own_diary(who, args.get("provider_id"))
    except Forbidden as exc:
        raise _refused(who, exc, resource_id=args.get("provider_id")) from None

    def work(s: Any, now: Any) -> list:
        rows = desk().list_appointments(
            s, provider_id=provider_id, patient_id=args.get("patient_id"),
            status=args.get("status"), start=args.get("start"), end=args.get("end"),
            limit=args["limit"], offset=args["offset"])
        desk().runtime.audit.record(s, who, "list", "appointment", resource_id=provider_id,
                                    patient_id=args.get("patient_id"))
        return rows

    return desk().run(work)


@blp.get("/appointments/<appointment_id>")
@blp.response(200, AppointmentOut)
@roles(*READERS)
def get_appointment(appointment_id: str) -> dict:
    who = current_principal()

    def work(s: Any, now: Any) -> dict:
        appt = desk().appointment(s, appointment_id)
        if who.role == "specialist" and appt["provider_id"] != who.provider_id:
            denied = Forbidden("a specialist reads only their own diary")
            denied.appointment = appt  # type: ignore[attr-defined]
            raise denied
        desk().runtime.audit.record(s, who, "read", "appointment", resource_id=appt["id"],
                                    patient_id=appt["patient_id"])
        return appt

    try:
        return desk().run(work)
    except Forbidden as exc:
        appt = getattr(exc, "appointment", {})
        raise _refused(who, exc, resource_id=appointment_id,
                       patient_id=appt.get("patient_id")) from None


@blp.post("/appointments/<appointment_id>/cancel")
@blp.arguments(AppointmentCancelIn)
@blp.response(200, AppointmentOut)
@roles("scheduler", "service")
def cancel(body: dict, appointment_id: str) -> dict:
    """Cancel with a reason; the freed slot is offered to the best waitlist match."""
    who = current_principal()
    return desk().run(lambda s, now: desk().cancel(s, who, now, appointment_id, body["reason"]))


@blp.post("/appointments/<appointment_id>/reschedule")
@blp.arguments(RescheduleIn)
@blp.response(200, AppointmentOut)
@roles("scheduler", "service")
def reschedule(body: dict, appointment_id: str) -> dict:
    who = current_principal()
    return desk().run(lambda s, now: desk().reschedule(s, who, now, appointment_id, body))


def _status_route(name: str, target: str, doc: str) -> None:
    @blp.post(f"/appointments/<appointment_id>/{name}", endpoint=f"appointment_{target}")
    @blp.response(200, AppointmentOut)
    @roles("scheduler", "service")
    def change(appointment_id: str) -> dict:
        who = current_principal()
        return desk().run(lambda s, now: desk().change_status(s, who, now, appointment_id,
                                                              target))

    change.__doc__ = doc


_status_route("confirm", "booked", "Confirm a held appointment (proposed/pending -> booked).")
_status_route("check-in", "arrived", "The patient has arrived (booked -> arrived).")
_status_route("complete", "fulfilled", "The visit took place (arrived -> fulfilled).")
_status_route("no-show", "noshow", "The patient did not come (booked -> noshow).")


# --- series ------------------------------------------------------------------------------


@blp.post("/series")
@blp.arguments(SeriesIn)
@blp.response(201, SeriesOut)
@roles("scheduler", "service")
def book_series(body: dict) -> dict:
    """Book a recurring series at the same local time; occurrences that cannot be placed
    are listed in `unplaced` (409 if none can)."""
    who = current_principal()
    return desk().run(lambda s, now: desk().book_series(s, who, now, body))


@blp.get("/series/<series_id>")
@blp.response(200, SeriesOut)
@roles("scheduler", "service")
def get_series(series_id: str) -> dict:
    return desk().run(lambda s, now: desk().get_series(s, series_id))


# --- waitlist ----------------------------------------------------------------------------


@blp.post("/waitlist")
@blp.arguments(WishIn)
@blp.response(201, WishOut)
@roles("scheduler", "service")
def add_to_waitlist(body: dict) -> dict:
    who = current_principal()
    return desk().run(lambda s, now: desk().add_wish(s, who, now, body))


@blp.get("/waitlist")
@blp.arguments(WishQuery, location="query")
@blp.response(200, WishOut(many=True))
@roles("scheduler", "service")
def list_waitlist(args: dict) -> list:
    return desk().run(lambda s, now: desk().list_wishes(s, **args))


@blp.get("/waitlist/<wish_id>")
@blp.response(200, WishOut)
@roles("scheduler", "service")
def get_wish(wish_id: str) -> dict:
    return desk().run(lambda s, now: desk().wish(s, wish_id))


@blp.post("/waitlist/<wish_id>/answer")
@blp.arguments(AnswerIn)
@blp.response(200, WishOut)
@roles("scheduler", "service")
def answer_offer(body: dict, wish_id: str) -> dict:
    """The patient accepts the offered slot (booked) or declines it (offered to the next)."""
    who = current_principal()
    return desk().run(lambda s, now: desk().answer_offer(s, who, now, wish_id, body["accept"]))


@blp.delete("/waitlist/<wish_id>")
@blp.response(204)
@roles("scheduler", "service")
def remove_from_waitlist(wish_id: str) -> None:
    who = current_principal()
    desk().run(lambda s, now: desk().remove_wish(s, who, wish_id))
