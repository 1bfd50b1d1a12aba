"""The scheduling HTTP API: thin routes that validate, check the caller's role and hand
the work to the diary's use cases inside one unit of work.

Roles: schedulers book and change; specialists read their own diary (token claim
provider_id); admins do everything; service accounts read and book.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from services.scheduling.diary import (
    booking,
    free_time,
    recurring,
    roster,
    templates,
    wishes,
)
from services.scheduling.diary.context import Diary
from services.scheduling.diary.schemas import (
    AnswerIn,
    AppointmentCancelIn,
    AppointmentOut,
    AppointmentQuery,
    AvailabilityOut,
    AvailabilityQuery,
    BookIn,
    ExceptionIn,
    ExceptionOut,
    ExceptionQuery,
    ProviderIn,
    ProviderOut,
    ProviderPatch,
    ProviderQuery,
    RescheduleIn,
    RoomIn,
    RoomOut,
    RoomPatch,
    SeriesIn,
    SeriesOut,
    TemplateIn,
    TemplateOut,
    WishIn,
    WishOut,
    WishQuery,
)
from shared import availability as av
from shared.auth import Principal
from shared.errors import Forbidden
from shared.web import current_principal, roles

blp = Blueprint("scheduling", __name__, description="Providers, rooms, availability, "
                "appointments, series and the waitlist")

READERS = ("scheduler", "specialist", "service")


def desk() -> Diary:
    return current_app.extensions["scheduling.diary"]


# --- providers and rooms -----------------------------------------------------------------


@blp.post("/providers")
@blp.arguments(ProviderIn)
@blp.response(201, ProviderOut)
@roles("admin")
def create_provider(body: dict) -> dict:
    """Register a provider (emits provider.registered)."""
    return desk().run(lambda s, now: roster.save_provider(desk(), s, body, now))


@blp.get("/providers")
@blp.arguments(ProviderQuery, location="query")
@blp.response(200, ProviderOut(many=True))
@roles(*READERS, "admin")
def list_providers(args: dict) -> list:
    return desk().run(lambda s, now: roster.list_providers(desk(),
        s, discipline=args.get("discipline"),
        active=None if args["include_inactive"] else True))


@blp.get("/providers/<provider_id>")
@blp.response(200, ProviderOut)
@roles(*READERS, "admin")
def get_provider(provider_id: str) -> dict:
    return desk().run(lambda s, now: roster.provider(desk(), s, provider_id))


@blp.patch("/providers/<provider_id>")
@blp.arguments(ProviderPatch(partial=True))
@blp.response(200, ProviderOut)
@roles("admin")
def change_provider(body: dict, provider_id: str) -> dict:
    """Change a provider (emits provider.registered with the new details)."""
    return desk().run(lambda s, now: roster.save_provider(desk(), s, body, now, provider_id))


@blp.put("/providers/<provider_id>/template")
@blp.arguments(TemplateIn)
@blp.response(200, TemplateOut)
@roles("admin")
def set_template(body: dict, provider_id: str) -> dict:
    """Replace the provider's weekly working template (local wall times)."""
    blocks = desk().run(
        lambda s, now: templates.set_template(desk(), s, provider_id, body["blocks"], now))
    return {"provider_id": provider_id, "timezone": str(desk().tz), "blocks": blocks}


@blp.get("/providers/<provider_id>/template")
@blp.response(200, TemplateOut)
@roles(*READERS, "admin")
def get_template(provider_id: str) -> dict:
    def work(s: Any, now: Any) -> list:
        roster.provider(desk(), s, provider_id)
        return templates.template(desk(), s, provider_id)

    return {"provider_id": provider_id, "timezone": str(desk().tz), "blocks": desk().run(work)}


@blp.post("/rooms")
@blp.arguments(RoomIn)
@blp.response(201, RoomOut)
@roles("admin")
def create_room(body: dict) -> dict:
    return desk().run(lambda s, now: roster.save_room(desk(), s, body, now))


@blp.get("/rooms")
@blp.response(200, RoomOut(many=True))
@roles(*READERS, "admin")
def list_rooms() -> list:
    return desk().run(lambda s, now: roster.list_rooms(desk(), s))


@blp.patch("/rooms/<room_id>")
@blp.arguments(RoomPatch(partial=True))
@blp.response(200, RoomOut)
@roles("admin")
def change_room(body: dict, room_id: str) -> dict:
    return desk().run(lambda s, now: roster.save_room(desk(), s, body, now, room_id))


# --- exceptions and availability ---------------------------------------------------------


@blp.post("/exceptions")
@blp.arguments(ExceptionIn)
@blp.response(201, ExceptionOut)
@roles("scheduler")
def add_exception(body: dict) -> dict:
    """Leave, training or sickness of a provider, or a clinic closure (no provider)."""
    who = current_principal()
    return desk().run(lambda s, now: templates.add_exception(desk(), s, who, body, now))


@blp.get("/exceptions")
@blp.arguments(ExceptionQuery, location="query")
@blp.response(200, ExceptionOut(many=True))
@roles(*READERS)
def list_exceptions(args: dict) -> list:
    span = av.local_days(args["first_day"], args["last_day"], desk().tz)
    return desk().run(lambda s, now: templates.list_exceptions(desk(),
        s, provider_id=args.get("provider_id"), span=span))


@blp.delete("/exceptions/<exception_id>")
@blp.response(204)
@roles("scheduler")
def remove_exception(exception_id: str) -> None:
    desk().run(lambda s, now: templates.remove_exception(desk(), s, exception_id, now))


@blp.get("/availability")
@blp.arguments(AvailabilityQuery, location="query")
@blp.response(200, AvailabilityOut(many=True))
@roles(*READERS)
def availability(args: dict) -> list:
    """Free time per provider over local dates from..to (inclusive), and the slots where
    a visit of visit_minutes fits, on the local grid of step_minutes."""
    result = desk().run(lambda s, now: free_time.availability(desk(),
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
    return desk().run(lambda s, now: booking.book(desk(), s, who, now, body))


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
        rows = booking.list_appointments(desk(),
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
        appt = booking.appointment(desk(), s, appointment_id)
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
    return desk().run(lambda s, now: booking.cancel(desk(), s, who, now, appointment_id,
                                                    body["reason"]))


@blp.post("/appointments/<appointment_id>/reschedule")
@blp.arguments(RescheduleIn)
@blp.response(200, AppointmentOut)
@roles("scheduler", "service")
def reschedule(body: dict, appointment_id: str) -> dict:
    who = current_principal()
    return desk().run(lambda s, now: booking.reschedule(desk(), s, who, now, appointment_id, body))


def _status_route(name: str, target: str, doc: str) -> None:
    @blp.post(f"/appointments/<appointment_id>/{name}", endpoint=f"appointment_{target}")
    @blp.response(200, AppointmentOut)
    @roles("scheduler", "service")
    def change(appointment_id: str) -> dict:
        who = current_principal()
        return desk().run(lambda s, now: booking.change_status(desk(), s, who, now, appointment_id,
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
    return desk().run(lambda s, now: recurring.book_series(desk(), s, who, now, body))


@blp.get("/series/<series_id>")
@blp.response(200, SeriesOut)
@roles("scheduler", "service")
def get_series(series_id: str) -> dict:
    return desk().run(lambda s, now: recurring.get_series(desk(), s, series_id))


# --- waitlist ----------------------------------------------------------------------------


@blp.post("/waitlist")
@blp.arguments(WishIn)
@blp.response(201, WishOut)
@roles("scheduler", "service")
def add_to_waitlist(body: dict) -> dict:
    who = current_principal()
    return desk().run(lambda s, now: wishes.add_wish(desk(), s, who, now, body))


@blp.get("/waitlist")
@blp.arguments(WishQuery, location="query")
@blp.response(200, WishOut(many=True))
@roles("scheduler", "service")
def list_waitlist(args: dict) -> list:
    return desk().run(lambda s, now: wishes.list_wishes(desk(), s, **args))


@blp.get("/waitlist/<wish_id>")
@blp.response(200, WishOut)
@roles("scheduler", "service")
def get_wish(wish_id: str) -> dict:
    return desk().run(lambda s, now: wishes.wish(desk(), s, wish_id))


@blp.post("/waitlist/<wish_id>/answer")
@blp.arguments(AnswerIn)
@blp.response(200, WishOut)
@roles("scheduler", "service")
def answer_offer(body: dict, wish_id: str) -> dict:
    """The patient accepts the offered slot (booked) or declines it (offered to the next)."""
    who = current_principal()
    return desk().run(lambda s, now: wishes.answer_offer(desk(), s, who, now, wish_id,
                                                         body["accept"]))


@blp.delete("/waitlist/<wish_id>")
@blp.response(204)
@roles("scheduler", "service")
def remove_from_waitlist(wish_id: str) -> None:
    who = current_principal()
    desk().run(lambda s, now: wishes.remove_wish(desk(), s, who, wish_id))
