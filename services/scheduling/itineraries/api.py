"""The itinerary API for schedulers: search, propose (and hold), confirm, cancel the whole
itinerary, move one visit and list the moves it would accept. Thin routes: validate,
check the role, hand the work to the itinerary use cases inside one unit of work."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint
from marshmallow import fields, validate

from services.scheduling.diary.context import Diary
from services.scheduling.itineraries.planner import Planner
from services.scheduling.itineraries.use_cases import (
    confirming,
    moving,
    proposing,
    reading,
    releasing,
    searching,
)
from shared.errors import Conflict
from shared.events.referrals import PathwayStep
from shared.events.vocabulary import PRIORITIES
from shared.web import PageArgs, current_principal, roles

blp = Blueprint("itineraries", __name__, url_prefix="/itineraries",
                description="Multi-specialty itineraries: search, hold, confirm, cancel, move")

WRITERS = ("scheduler", "service")
# Ids are printable: a NUL or a control character is refused here, not by the database.
_printable = validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="contains control characters")
_id = fields.String(required=True, validate=[validate.Length(min=1, max=64), _printable])
_opt_id = fields.String(load_default=None, allow_none=True,
                        validate=[validate.Length(max=64), _printable])
# Dates and instants the clinic can plan in (and that date arithmetic cannot overflow).
_days = validate.Range(min=date(2000, 1, 1), max=date(2100, 12, 31))
_moments = validate.Range(min=datetime(2000, 1, 1, tzinfo=UTC),
                          max=datetime(2100, 12, 31, tzinfo=UTC))


def itineraries() -> Planner:
    """One per app, over the app's diary (and so its clock)."""
    ext = current_app.extensions
    if "scheduling.itineraries" not in ext:
        diary: Diary = ext["scheduling.diary"]
        ext["scheduling.itineraries"] = Planner(diary)
    return ext["scheduling.itineraries"]


# --- schemas ---------------------------------------------------------------------------


class Unavailable(ma.Schema):
    start = fields.AwareDateTime(required=True, validate=_moments)
    end = fields.AwareDateTime(required=True, validate=_moments)

    @ma.validates_schema
    def _ordered(self, data: dict, **_kw: Any) -> None:
        if data["end"] <= data["start"]:
            raise ma.ValidationError("ends before it starts", "end")


class RulesIn(ma.Schema):
    min_gap_minutes = fields.Integer(validate=validate.Range(min=0, max=240))
    max_gap_minutes = fields.Integer(validate=validate.Range(min=0, max=480))
    interval_tolerance_days = fields.Integer(validate=validate.Range(min=0, max=30))
    fallback_tolerance_days = fields.Integer(allow_none=True,
                                             validate=validate.Range(min=0, max=60))
    same_provider_required = fields.Boolean()


class WeightsIn(ma.Schema):
    """The objective's weights (lower total ranks first); see itinerary.py."""

    days_to_first_visit = fields.Float(validate=validate.Range(min=0, max=1000))
    trips = fields.Float(validate=validate.Range(min=0, max=1000))
    waiting_minutes = fields.Float(validate=validate.Range(min=0, max=1000))
    provider_changes = fields.Float(validate=validate.Range(min=0, max=1000))
    target_breach_days = fields.Float(validate=validate.Range(min=0, max=1000))
    interval_drift_days = fields.Float(validate=validate.Range(min=0, max=1000))


class SearchIn(ma.Schema):
    patient_id = _id
    referral_id = _opt_id
    pathway = fields.List(fields.Nested(PathwayStep), required=True,
                          validate=validate.Length(min=1, max=4))
    first_day = fields.Date(load_default=None, allow_none=True, data_key="from", validate=_days,
                            metadata={"description": "first local date (default: today)"})
    last_day = fields.Date(load_default=None, allow_none=True, data_key="to", validate=_days,
                           metadata={"description": "last local date (default: the series)"})
    due_by = fields.Date(load_default=None, allow_none=True, validate=_days,
                         metadata={"description": "the referral's target for the first visit"})
    priority = fields.String(load_default="routine", validate=validate.OneOf(PRIORITIES))
    unavailable = fields.List(fields.Nested(Unavailable), load_default=list,
                              validate=validate.Length(max=200))
    rules = fields.Nested(RulesIn, load_default=dict)
    weights = fields.Nested(WeightsIn, load_default=dict)
    top_k = fields.Integer(load_default=3, validate=validate.Range(min=1, max=5))

    @ma.validates_schema
    def _gaps(self, data: dict, **_kw: Any) -> None:
        rules = data.get("rules") or {}
        if rules.get("min_gap_minutes", 0) > rules.get("max_gap_minutes", 60):
            raise ma.ValidationError("min_gap_minutes exceeds max_gap_minutes", "rules")


class ProposeIn(SearchIn):
    choice = fields.Integer(load_default=0, validate=validate.Range(min=0, max=4),
                            metadata={"description": "which of the ranked itineraries (0: best)"})


class PlannedVisitOut(ma.Schema):
    discipline = fields.String()
    session_index = fields.Integer()
    provider_id = fields.String()
    provider_name = fields.String()
    room_id = fields.String(allow_none=True)
    room_name = fields.String()
    start = fields.DateTime()
    end = fields.DateTime()


class CandidateOut(ma.Schema):
    rank = fields.Integer()
    score = fields.Dict(metadata={"description": "each term of the objective and the total"})
    notes = fields.List(fields.String())
    first_visit_same_day = fields.Boolean()
    visits = fields.List(fields.Nested(PlannedVisitOut))


class SearchOut(ma.Schema):
    itineraries = fields.List(fields.Nested(CandidateOut))
    unplaceable = fields.List(fields.String(), metadata={"description": "why none fits"})


class VisitOut(PlannedVisitOut):
    appointment_id = fields.String()
    status = fields.String()


class ItineraryOut(ma.Schema):
    id = fields.String()
    patient_id = fields.String()
    referral_id = fields.String(allow_none=True)
    status = fields.String()
    hold_expires_at = fields.DateTime(allow_none=True)
    revision = fields.Integer()
    notes = fields.List(fields.String())
    reasons = fields.List(fields.String())
    score = fields.Dict(allow_none=True)
    visits = fields.List(fields.Nested(VisitOut))


class ItineraryQuery(PageArgs):
    patient_id = fields.String(validate=[validate.Length(max=64), _printable])
    referral_id = fields.String(validate=[validate.Length(max=64), _printable])


class CancelIn(ma.Schema):
    reason = fields.String(required=True, validate=[
        validate.Length(min=1, max=1000),
        validate.Regexp(r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$",
                        error="contains control characters")])


class MoveIn(ma.Schema):
    start = fields.AwareDateTime(required=True, validate=_moments)
    provider_id = fields.String(validate=[validate.Length(min=1, max=64), _printable])
    room_id = fields.String(validate=[validate.Length(min=1, max=64), _printable])


class MovesQuery(ma.Schema):
    provider_id = fields.String(load_default=None, validate=[
        validate.Length(min=1, max=64), _printable],
        metadata={"description": "another provider of the discipline (default: the visit's)"})
    days = fields.Integer(load_default=2, validate=validate.Range(min=0, max=7), metadata={
        "description": "how many days either side of the visit's day"})
    step_minutes = fields.Integer(load_default=30, validate=validate.Range(min=5, max=240),
                                  metadata={"description": "the grid, from each clinic day's "
                                            "opening"})


class MoveOptionOut(ma.Schema):
    start = fields.DateTime()
    end = fields.DateTime()
    provider_id = fields.String()
    room_id = fields.String(allow_none=True, metadata={"description": "the room the move "
                                                       "would take"})


# --- routes ----------------------------------------------------------------------------


@blp.post("/search")
@blp.arguments(SearchIn)
@blp.response(200, SearchOut)
@roles(*WRITERS)
def search(body: dict) -> dict:
    """The best few itineraries for a pathway, ranked by the objective, with each term of
    the score and notes explaining any fallback; nothing is held."""
    who, its = current_principal(), itineraries()

    def work(s: Any, now: Any) -> dict:
        its.runtime.audit.record(s, who, "search", "itinerary", patient_id=body["patient_id"])
        return searching.search(its, s, now, searching.ask(its, now, body), body["top_k"])

    return its.diary.run(work)


@blp.post("")
@blp.arguments(ProposeIn)
@blp.response(201, ItineraryOut)
@blp.alt_response(409, description="No itinerary fits (the reasons are listed)")
@roles(*WRITERS)
def propose(body: dict) -> dict:
    """Search and hold the chosen itinerary's slots for ITINERARY_HOLD_MINUTES (emits
    itinerary.proposed). Held slots are refused to every other booking."""
    who, its = current_principal(), itineraries()
    return its.diary.run(lambda s, now: proposing.propose(
        its, s, who, now, searching.ask(its, now, body), choice=body["choice"]))


@blp.get("")
@blp.arguments(ItineraryQuery, location="query")
@blp.response(200, ItineraryOut(many=True))
@roles(*WRITERS)
def list_itineraries(args: dict) -> list:
    who, its = current_principal(), itineraries()

    def work(s: Any, now: Any) -> list:
        its.runtime.audit.record(s, who, "list", "itinerary", patient_id=args.get("patient_id"))
        return reading.find(its, s, now, patient_id=args.get("patient_id"),
                        referral_id=args.get("referral_id"), limit=args["limit"],
                        offset=args["offset"])

    return its.diary.run(work)


@blp.get("/<itinerary_id>")
@blp.response(200, ItineraryOut)
@roles(*WRITERS)
def get_itinerary(itinerary_id: str) -> dict:
    who, its = current_principal(), itineraries()

    def work(s: Any, now: Any) -> dict:
        view = reading.view(its, s, now, itinerary_id)
        its.runtime.audit.record(s, who, "read", "itinerary", resource_id=itinerary_id,
                                 patient_id=view["patient_id"])
        return view

    return its.diary.run(work)


@blp.post("/<itinerary_id>/confirm")
@blp.response(200, ItineraryOut)
@blp.alt_response(409, description="A held slot was lost: the itinerary was searched again "
                  "and is held anew; `errors.changes` says what changed")
@roles(*WRITERS)
def confirm(itinerary_id: str) -> dict:
    """Book every visit in one transaction, or none (emits itinerary.booked and
    appointment.booked for each visit)."""
    who, its = current_principal(), itineraries()
    outcome = its.diary.run(lambda s, now: confirming.confirm(its, s, who, now, itinerary_id))
    if not outcome.booked:
        # The new proposal is committed; the caller must look at it and confirm again.
        raise Conflict("a slot of this itinerary was taken after its hold lapsed; it was "
                       f"searched again and is now {outcome.itinerary['status']}: "
                       + " ".join(outcome.changes),
                       errors={"changes": outcome.changes})
    return outcome.itinerary


@blp.post("/<itinerary_id>/cancel")
@blp.arguments(CancelIn)
@blp.response(200, ItineraryOut)
@roles(*WRITERS)
def cancel(body: dict, itinerary_id: str) -> dict:
    """Cancel the whole itinerary: holds released, booked visits cancelled (emits
    itinerary.cancelled, appointment.cancelled for each booked visit)."""
    who, its = current_principal(), itineraries()
    return its.diary.run(lambda s, now: releasing.cancel(its, s, who, now, itinerary_id,
                                                         body["reason"]))


@blp.post("/<itinerary_id>/visits/<appointment_id>/move")
@blp.arguments(MoveIn)
@blp.response(200, ItineraryOut)
@blp.alt_response(409, description="The move breaks the pathway's constraints (listed)")
@roles(*WRITERS)
def move(body: dict, itinerary_id: str, appointment_id: str) -> dict:
    """Move one visit to another time (provider, room) if order, gaps, intervals,
    continuity, room fitness and the patient's time all still hold."""
    who, its = current_principal(), itineraries()
    return its.diary.run(lambda s, now: moving.move(its, s, who, now, itinerary_id, appointment_id,
                                                body))


@blp.get("/<itinerary_id>/visits/<appointment_id>/moves")
@blp.arguments(MovesQuery, location="query")
@blp.response(200, MoveOptionOut(many=True))
@blp.alt_response(409, description="The itinerary is not proposed or booked")
@roles(*WRITERS)
def moves(args: dict, itinerary_id: str, appointment_id: str) -> list:
    """The moves of one visit the move route would accept (the same check, the same rules),
    within `days` of its day: what the console offers. The same roles as the move, which
    is the only use of the answer (and every itinerary read is the schedulers' too)."""
    who, its = current_principal(), itineraries()
    return its.diary.run(lambda s, now: moving.moves(its,
        s, who, now, itinerary_id, appointment_id, provider_id=args["provider_id"],
        days=args["days"], step_minutes=args["step_minutes"]))
