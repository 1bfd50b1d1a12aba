"""Routes every service has for operating it: a ping through the real pipe, the outbox
backlog, and whether this service has handled a given event."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint
from sqlalchemy import select

from shared.errors import NotFound
from shared.events import Envelope
from shared.kafka import Subscription
from shared.runtime import Runtime
from shared.topics import SYSTEM
from shared.web import roles

blp = Blueprint("ops", __name__, url_prefix="/ops", description="Operating the service")


class PingIn(ma.Schema):
    message = ma.fields.String(load_default="", validate=ma.validate.Length(max=200))


class PingOut(ma.Schema):
    event_id = ma.fields.String()
    ping_id = ma.fields.String()


class HandledOut(ma.Schema):
    event_id = ma.fields.String()
    consumer = ma.fields.String()
    event_type = ma.fields.String()
    handled_at = ma.fields.DateTime()


class BacklogOut(ma.Schema):
    service = ma.fields.String()
    outbox_backlog = ma.fields.Integer()


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["paincare.runtime"]
    return runtime


@blp.post("/pings")
@blp.arguments(PingIn)
@blp.response(202, PingOut)
@roles("admin", "service")
def send_ping(body: dict[str, Any]) -> dict[str, str]:
    """Stage a system.ping in the outbox; every service's worker records it on arrival."""
    from shared.correlation import new_id

    runtime = _runtime()
    ping_id = new_id()
    with runtime.db.transaction() as s:
        env = runtime.emit(s, "system.ping", {"ping_id": ping_id, "message": body["message"]},
                           key=ping_id, topic=SYSTEM)
    return {"event_id": env.id, "ping_id": ping_id}


@blp.get("/handled/<event_id>")
@blp.response(200, HandledOut(many=True))
@roles("admin", "service")
def handled(event_id: str) -> list[dict[str, Any]]:
    runtime = _runtime()
    inbox = runtime.tables.inbox
    with runtime.db.transaction() as s:
        rows = s.execute(select(inbox).where(inbox.c.event_id == event_id)).mappings().all()
    if not rows:
        raise NotFound(f"event {event_id} has not been handled by {runtime.settings.service}")
    return [dict(r) for r in rows]


@blp.get("/outbox")
@blp.response(200, BacklogOut)
@roles("admin", "service")
def outbox() -> dict[str, Any]:
    runtime = _runtime()
    with runtime.db.transaction() as s:
        return {"service": runtime.settings.service, "outbox_backlog": runtime.outbox.backlog(s)}


def _on_ping(_session: object, _event: Envelope) -> None:
    """Nothing to do: the inbox row written with it is the proof of arrival."""


def ping_subscription() -> Subscription:
    return Subscription("system", (SYSTEM,), {"system.ping": _on_ping})
