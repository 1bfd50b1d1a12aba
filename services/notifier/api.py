"""The notifier's HTTP API: the delivery log for the dashboard, retrying a failed
notification, the in-app feed, and recipients' preferences and opt-outs."""

from __future__ import annotations

from datetime import UTC, datetime

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint
from sqlalchemy import and_, case, func, select

from services.notifier import db
from services.notifier.db import Notification, Recipient, aware, current_details
from services.notifier.domain import (
    CHANNELS,
    PRIORITIES,
    PRIVACY_OFFICER,
    SCHEDULERS,
    STATUSES,
)
from shared.errors import Conflict, NotFound
from shared.runtime import Runtime
from shared.web import PageArgs, current_principal, roles

blp = Blueprint("notifications", __name__, url_prefix="/",
                description="Delivery log, retries, in-app feed, preferences")


def _runtime() -> Runtime:
    return current_app.extensions["paincare.runtime"]


class NotificationOut(ma.Schema):
    id = ma.fields.String()
    event_id = ma.fields.String()
    event_type = ma.fields.String()
    recipient_id = ma.fields.String()
    channel = ma.fields.String()
    template = ma.fields.String()
    language = ma.fields.String()
    subject = ma.fields.String()
    appointment_id = ma.fields.String(allow_none=True)
    priority = ma.fields.String()
    alert_id = ma.fields.String(allow_none=True)
    acknowledged_at = ma.fields.DateTime(allow_none=True)
    status = ma.fields.String()
    attempts = ma.fields.Integer()
    due_at = ma.fields.DateTime()
    next_attempt_at = ma.fields.DateTime()
    created_at = ma.fields.DateTime()
    sent_at = ma.fields.DateTime(allow_none=True)
    failed_at = ma.fields.DateTime(allow_none=True)
    dead_lettered_at = ma.fields.DateTime(allow_none=True)
    last_error = ma.fields.String(allow_none=True)


class FeedItemOut(ma.Schema):
    id = ma.fields.String()
    event_type = ma.fields.String()
    subject = ma.fields.String()
    body = ma.fields.String()
    sent_at = ma.fields.DateTime()
    priority = ma.fields.String(metadata={"description": "urgent: a safety alert or its "
                                          "escalation, listed first until acknowledged"})
    alert_id = ma.fields.String(allow_none=True)
    acknowledged_at = ma.fields.DateTime(allow_none=True)


class LogArgs(PageArgs):
    recipient_id = ma.fields.String()
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    event_id = ma.fields.String()
    event_type = ma.fields.String()
    channel = ma.fields.String(validate=ma.validate.OneOf(CHANNELS))
    template = ma.fields.String()
    priority = ma.fields.String(validate=ma.validate.OneOf(PRIORITIES))
    alert_id = ma.fields.String()


class LogOut(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(NotificationOut))
    total = ma.fields.Integer()
    counts = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())


class PreferencesIn(ma.Schema):
    preferred_channel = ma.fields.String(validate=ma.validate.OneOf(CHANNELS))
    language = ma.fields.String(validate=ma.validate.Length(min=2, max=10))
    opted_out = ma.fields.List(ma.fields.String(validate=ma.validate.OneOf(CHANNELS)))


class RecipientOut(ma.Schema):
    recipient_id = ma.fields.String()
    kind = ma.fields.String()
    preferred_channel = ma.fields.String()
    language = ma.fields.String()
    opted_out = ma.fields.List(ma.fields.String())
    has_email = ma.fields.Boolean()
    has_phone = ma.fields.Boolean()
    contacts_of = ma.fields.String(metadata={
        "description": "whose details are used: the recipient's own, or for a linked "
                       "patient the one with the newest change (no contact itself shown)"})
    contacts_as_of = ma.fields.DateTime(allow_none=True, metadata={
        "description": "when the registry last changed the details used"})


def _audit(session, action: str, resource: str, resource_id: str | None = None,  # type: ignore[no-untyped-def]
           patient_id: str | None = None) -> None:
    _runtime().audit.record(session, current_principal(), action, resource,
                            resource_id=resource_id, patient_id=patient_id)


@blp.get("/notifications")
@blp.arguments(LogArgs, location="query")
@blp.response(200, LogOut)
@roles("scheduler", "service", "admin")
def delivery_log(args: dict) -> dict:
    """The delivery log, newest first, filtered by recipient, status, event, channel,
    priority or safety alert (everything one alert caused, escalations included)."""
    n = Notification
    filters = [getattr(n, k) == args[k] for k in
               ("recipient_id", "status", "event_id", "event_type", "channel", "template",
                "priority", "alert_id") if k in args]
    with _runtime().db.transaction() as s:
        rows = s.scalars(select(n).where(*filters).order_by(n.created_at.desc(), n.id)
                         .limit(args["limit"]).offset(args["offset"])).all()
        total = s.execute(select(func.count()).select_from(n).where(*filters)).scalar_one()
        _audit(s, "read", "notification_log", patient_id=args.get("recipient_id"))
        return {"items": rows, "total": total, "counts": db.counts_by_status(s)}


@blp.get("/notifications/<notification_id>")
@blp.response(200, NotificationOut)
@roles("scheduler", "service", "admin")
def one(notification_id: str) -> Notification:
    with _runtime().db.transaction() as s:
        row = s.get(Notification, notification_id)
        if row is None:
            raise NotFound(f"no notification {notification_id}")
        _audit(s, "read", "notification", notification_id, row.recipient_id)
        return row


@blp.post("/notifications/<notification_id>/retry")
@blp.response(202, NotificationOut)
@roles("scheduler", "admin")
def retry(notification_id: str) -> Notification:
    """Send a failed notification again, from a fresh set of attempts. It is due again
    at once (its due time is long past), whatever the delivery loop's clock says."""
    with _runtime().db.transaction() as s:
        row = s.get(Notification, notification_id)
        if row is None:
            raise NotFound(f"no notification {notification_id}")
        if row.status != "failed":
            raise Conflict(f"notification {notification_id} is {row.status}, not failed")
        row.status, row.attempts, row.next_attempt_at = "pending", 0, row.due_at
        row.last_error = None
        _audit(s, "retry", "notification", notification_id, row.recipient_id)
        return row


def _feed(recipient_id: str, args: dict) -> list:
    n = Notification
    with _runtime().db.transaction() as s:
        waiting = case((and_(n.priority == "urgent", n.acknowledged_at.is_(None)), 0),
                       else_=1)  # unacknowledged safety alerts at the top, at once
        rows = s.scalars(select(n).where(n.recipient_id == recipient_id, n.channel == "in_app",
                                         n.status == "sent")
                         .order_by(waiting, n.sent_at.desc(), n.id).limit(args["limit"])
                         .offset(args["offset"])).all()
        _audit(s, "read", "feed", recipient_id, recipient_id)
        return list(rows)


@blp.get("/feed/<recipient_id>")
@blp.arguments(PageArgs, location="query")
@blp.response(200, FeedItemOut(many=True))
@roles("scheduler", "service")
def feed(args: dict, recipient_id: str) -> list:
    """Anyone's in-app feed (role feeds: role:triage_lead, role:schedulers), for the
    front desk and the patient portal's service account."""
    return _feed(recipient_id, args)


@blp.get("/my/feed")
@blp.arguments(PageArgs, location="query")
@blp.response(200, FeedItemOut(many=True))
@roles("specialist", "scheduler", "privacy_officer")
def my_feed(args: dict) -> list:
    """The caller's own feed: a specialist's by their provider id, a scheduler's is the
    schedulers' feed, the privacy officer's the break-glass alerts."""
    who = current_principal()
    if who.role == "scheduler":
        return _feed(SCHEDULERS, args)
    if who.role == "privacy_officer":
        return _feed(PRIVACY_OFFICER, args)
    if who.role == "specialist" and who.provider_id:
        return _feed(who.provider_id, args)
    return []


def _recipient_out(row: Recipient) -> dict:
    return {"recipient_id": row.recipient_id, "kind": row.kind,
            "preferred_channel": row.preferred_channel, "language": row.language,
            "opted_out": [c for c in row.opted_out.split(",") if c],
            "has_email": bool(row.email), "has_phone": bool(row.phone)}


@blp.get("/recipients/<recipient_id>")
@blp.response(200, RecipientOut)
@roles("scheduler", "service")
def recipient(recipient_id: str) -> dict:
    with _runtime().db.transaction() as s:
        row = s.get(Recipient, recipient_id)
        if row is None:
            raise NotFound(f"no recipient {recipient_id}")
        _audit(s, "read", "recipient", recipient_id, recipient_id)
        used = current_details(s, row)
        return {**_recipient_out(row), "contacts_of": used.recipient_id,
                "contacts_as_of": aware(used.contacts_as_of)}


@blp.put("/recipients/<recipient_id>/preferences")
@blp.arguments(PreferencesIn)
@blp.response(200, RecipientOut)
@roles("scheduler", "service")
def preferences(body: dict, recipient_id: str) -> dict:
    """Channel, language and opt-outs; they apply to notifications planned from now on."""
    with _runtime().db.transaction() as s:
        row = s.get(Recipient, recipient_id)
        if row is None:
            raise NotFound(f"no recipient {recipient_id}")
        if "preferred_channel" in body:
            row.preferred_channel = body["preferred_channel"]
        if "language" in body:
            row.language = body["language"]
        if "opted_out" in body:
            row.opted_out = ",".join(sorted(set(body["opted_out"])))
        row.updated_at = datetime.now(UTC)
        _audit(s, "update", "recipient_preferences", recipient_id, recipient_id)
        return _recipient_out(row)
