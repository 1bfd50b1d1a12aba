"""HTTP routes of safety alerts and the duty rota. Thin: validate, call a use case in
`safety_alerts`, shape the answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint
from marshmallow import fields, validate

from services.notes import safety
from services.notes import safety_alerts as uc
from shared.events.notes import ALERT_ACK_ACTIONS, ALERT_CLOSE_REASONS, ALERT_RECIPIENT_ROLES
from shared.runtime import Runtime
from shared.web import PageArgs, current_principal, roles

safety_blp = Blueprint("safety", __name__,
                       description="Safety alerts (raised, routed, acknowledged, closed, "
                                   "escalated) and the duty rota that routes them")

# The alert use cases refuse, and audit with the alert's ids, anyone who may not (admins
# included: alerts are clinical detail), so the routes let every staff role reach them;
# admin (operations) may only read and keep the duty rota.
ANYONE = ("specialist", "scheduler", "service", "admin")
STAFF = ANYONE


def _runtime() -> Runtime:
    return current_app.extensions["paincare.runtime"]


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------- schemas

class FlagIn(ma.Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=safety.MAX_TEXT),
                           metadata={"description": "why you are concerned; stays in the "
                                                    "notes service, never in an event"})
    severity = fields.Integer(strict=True, load_default=safety.DEFAULT_FLAG_SEVERITY,
                              validate=validate.Range(min=1, max=3))


class AcknowledgeIn(ma.Schema):
    action = fields.String(required=True, validate=validate.OneOf(ALERT_ACK_ACTIONS))
    detail = fields.String(validate=validate.Length(max=safety.MAX_TEXT), allow_none=True,
                           metadata={"description": "what was done; required when the "
                                                    "action is 'other'"})


class CloseIn(ma.Schema):
    reason = fields.String(required=True, validate=validate.OneOf(ALERT_CLOSE_REASONS))
    detail = fields.String(validate=validate.Length(max=safety.MAX_TEXT), allow_none=True,
                           metadata={"description": "optional; required when the reason "
                                                    "is 'other'"})


class RecipientOut(ma.Schema):
    recipient_id = fields.String()
    role = fields.String(validate=validate.OneOf(ALERT_RECIPIENT_ROLES))


class AlertOut(ma.Schema):
    id = fields.String()
    patient_id = fields.String()
    note_id = fields.String(allow_none=True)
    source = fields.String()
    severity = fields.Integer()
    raised_by = fields.String()
    raised_at = fields.DateTime()
    last_raised_at = fields.DateTime(allow_none=True,
                                     metadata={"description": "when its severity was last "
                                                              "raised"})
    status = fields.String(validate=validate.OneOf(safety.STATUSES))
    recipients = fields.List(fields.Nested(RecipientOut))
    escalations = fields.Integer()
    next_escalation_at = fields.DateTime(allow_none=True)
    escalated_to = fields.List(fields.Nested(RecipientOut))
    flag_reason = fields.String(allow_none=True)
    acknowledged_by = fields.String(allow_none=True)
    acknowledged_at = fields.DateTime(allow_none=True)
    acknowledged_action = fields.String(allow_none=True)
    acknowledged_detail = fields.String(allow_none=True)
    closed_by = fields.String(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    closed_reason = fields.String(allow_none=True)
    closed_detail = fields.String(allow_none=True)


class AlertArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(safety.STATUSES),
                           metadata={"description": "every status if absent"})
    patient_id = fields.String(validate=validate.Length(min=1, max=64))


class RotaIn(ma.Schema):
    clinician_id = fields.String(required=True, validate=validate.Length(min=1, max=64),
                                 metadata={"description": "the duty clinician's provider id"})
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class RotaArgs(ma.Schema):
    first = fields.Date(data_key="from", metadata={"description": "first day (today)"})
    last = fields.Date(data_key="to", metadata={"description": "last day, included "
                                                               "(from + 27 days)"})


class RotaOut(ma.Schema):
    date = fields.Date()
    clinician_id = fields.String()
    name = fields.String()
    set_by = fields.String()
    set_at = fields.DateTime()


class DutyTodayOut(ma.Schema):
    date = fields.Date()
    on_rota = fields.Boolean()
    clinician_id = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    recipient = fields.Nested(RecipientOut, metadata={
        "description": "who a safety alert reaches as the duty clinician today: the "
                       "rota's clinician, or the triage lead when the day has none"})


def _shape(a: safety.Alert) -> dict[str, Any]:
    def people(rs: tuple[safety.Recipient, ...]) -> list[dict[str, str]]:
        return [{"recipient_id": r.recipient_id, "role": r.role} for r in rs]

    return {
        "id": a.id, "patient_id": a.patient_id, "note_id": a.note_id, "source": a.source,
        "severity": a.severity, "raised_by": a.raised_by, "raised_at": a.raised_at,
        "last_raised_at": a.last_raised_at, "status": a.status,
        "recipients": people(a.recipients), "escalations": a.escalations,
        "next_escalation_at": a.next_escalation_at, "escalated_to": people(a.escalated_to),
        "flag_reason": a.flag_reason, "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": a.acknowledged_at, "acknowledged_action": a.ack_action,
        "acknowledged_detail": a.ack_detail, "closed_by": a.closed_by,
        "closed_at": a.closed_at, "closed_reason": a.close_reason,
        "closed_detail": a.close_detail}


# ----------------------------------------------------------------------------- alerts

@safety_blp.post("/notes/<note_id>/safety-flag")
@safety_blp.arguments(FlagIn)
@safety_blp.response(201, AlertOut)
@roles(*ANYONE)
def flag_risk(body: dict, note_id: str) -> dict:
    """Flag a risk concern by hand on any note (the patient's care team): a safety
    alert, routed and escalated like a positive PHQ-9 item 9."""
    return _shape(uc.flag(_runtime(), current_principal(), note_id, reason=body["reason"],
                          severity=body["severity"], now=_now()))


@safety_blp.get("/safety-alerts")
@safety_blp.arguments(AlertArgs, location="query")
@safety_blp.response(200, AlertOut(many=True))
@roles(*ANYONE)
def list_alerts(args: dict) -> list:
    """Alerts you may see, newest first: your care-team patients', and every one not yet
    closed on a day you are on duty. Admins: 403 (clinical detail). Reads audited."""
    statuses = (args["status"],) if args.get("status") else safety.STATUSES
    found = uc.list_alerts(_runtime(), current_principal(), statuses=statuses,
                           patient_id=args.get("patient_id"), limit=args["limit"],
                           offset=args["offset"], now=_now())
    return [_shape(a) for a in found]


@safety_blp.get("/safety-alerts/mine")
@safety_blp.response(200, AlertOut(many=True))
@roles(*ANYONE)
def my_alerts() -> list:
    """Open (unacknowledged) alerts of your care-team patients, and all of them on the
    day you are on duty: the console's red banner."""
    return [_shape(a) for a in uc.my_alerts(_runtime(), current_principal(), _now())]


@safety_blp.get("/safety-alerts/<alert_id>")
@safety_blp.response(200, AlertOut)
@roles(*ANYONE)
def get_alert(alert_id: str) -> dict:
    """One alert: the patient's care team, or today's duty clinician while not closed."""
    return _shape(uc.read_alert(_runtime(), current_principal(), alert_id, _now()))


@safety_blp.post("/safety-alerts/<alert_id>/acknowledge")
@safety_blp.arguments(AcknowledgeIn)
@safety_blp.response(200, AlertOut)
@roles(*ANYONE)
def acknowledge(body: dict, alert_id: str) -> dict:
    """Acknowledge with the action taken (care team or today's duty clinician): the
    escalation stops; twice is 409."""
    return _shape(uc.acknowledge(_runtime(), current_principal(), alert_id,
                                 action=body["action"], detail=body.get("detail"),
                                 now=_now()))


@safety_blp.post("/safety-alerts/<alert_id>/close")
@safety_blp.arguments(CloseIn)
@safety_blp.response(200, AlertOut)
@roles(*ANYONE)
def close(body: dict, alert_id: str) -> dict:
    """Close with a reason, once acknowledged (at once only if raised in error)."""
    return _shape(uc.close(_runtime(), current_principal(), alert_id, reason=body["reason"],
                           detail=body.get("detail"), now=_now()))


# -------------------------------------------------------------------------- duty rota

@safety_blp.get("/duty-rota")
@safety_blp.arguments(RotaArgs, location="query")
@safety_blp.response(200, RotaOut(many=True))
@roles(*STAFF)
def rota(args: dict) -> list:
    """The duty rota between `from` and `to` (clinic days, both included)."""
    return uc.rota(_runtime(), args.get("first"), args.get("last"), _now())


@safety_blp.get("/duty-rota/today")
@safety_blp.response(200, DutyTodayOut)
@roles(*STAFF)
def duty_today() -> dict:
    """Who is on duty today (the clinic's day), and whom an alert reaches if no one is."""
    found = uc.duty_today(_runtime(), _now())
    entry = found.entry or {}
    r = found.recipient
    return {"date": found.date, "on_rota": found.entry is not None,
            "clinician_id": entry.get("clinician_id"), "name": entry.get("name"),
            "recipient": {"recipient_id": r.recipient_id, "role": r.role}}


@safety_blp.put("/duty-rota/<date>")
@safety_blp.arguments(RotaIn)
@safety_blp.response(200, RotaOut)
@roles("admin")
def set_duty(body: dict, date: str) -> dict:
    """Name a day's duty clinician (admins; audited). The day is YYYY-MM-DD."""
    entry, _created = uc.set_duty(_runtime(), current_principal(), date,
                                  clinician_id=body["clinician_id"], name=body["name"],
                                  now=_now())
    return entry


@safety_blp.delete("/duty-rota/<date>")
@safety_blp.response(204)
@roles("admin")
def clear_duty(date: str) -> None:
    """Take a day off the rota (admins; audited): alerts then reach the triage lead."""
    uc.clear_duty(_runtime(), current_principal(), date, _now())
