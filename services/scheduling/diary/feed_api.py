"""The providers' private iCal feeds over HTTP.

`POST /providers/<id>/calendar-feed` (the provider themself, a scheduler or an admin)
answers the secret URL once; `DELETE` revokes it. `GET /calendar/<token>.ics` is the one
route of the clinic without a bearer token: calendar programs cannot send one, so the
secret URL is the credential (random, stored hashed, revocable, audited on every read).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, current_app, request
from flask_smorest import Blueprint
from marshmallow import fields

from services.scheduling.diary import feeds
from services.scheduling.diary.context import Diary
from shared.auth import Principal
from shared.errors import Forbidden, NotFound
from shared.web import current_principal, roles

blp = Blueprint("calendar_feeds", __name__, description="Providers' private iCal feeds")
TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def desk() -> Diary:
    return current_app.extensions["scheduling.diary"]


class FeedOut(ma.Schema):
    id = fields.String()
    provider_id = fields.String()
    url = fields.String(metadata={"description": "the secret feed URL, shown only now"})
    created_at = fields.DateTime()


def _may_manage(who: Principal, provider_id: str) -> None:
    """A specialist manages only their own feed (the provider_id claim of their token)."""
    if who.role == "specialist" and who.provider_id != provider_id:
        raise Forbidden("a specialist manages only their own calendar feed")


@blp.post("/providers/<provider_id>/calendar-feed")
@blp.response(201, FeedOut)
@roles("specialist", "scheduler")
def create_feed(provider_id: str) -> dict[str, Any]:
    """A new secret feed URL for the provider's diary; the one before stops working."""
    who = current_principal()
    _may_manage(who, provider_id)
    feed = desk().run(lambda s, now: feeds.create(desk(), s, who, now, provider_id))
    feed["url"] = request.host_url.rstrip("/") + feed.pop("path")
    return feed


@blp.delete("/providers/<provider_id>/calendar-feed")
@blp.response(204)
@roles("specialist", "scheduler")
def revoke_feed(provider_id: str) -> None:
    """Revoke the provider's feed: its URL answers 404 from now on."""
    who = current_principal()
    _may_manage(who, provider_id)
    desk().run(lambda s, now: feeds.revoke(desk(), s, who, now, provider_id))


@blp.route("/calendar/<string(minlength=20,maxlength=100):token>.ics", methods=["GET"])
@blp.doc(security=[], responses={
    "200": {"description": "the diary (RFC 5545)",
            "content": {"text/calendar": {"schema": {"type": "string"}}}},
    "404": {"description": "unknown or revoked feed"}})
def read_feed(token: str) -> Response:
    """The provider's diary, 30 days back to 180 ahead, for a calendar program; no bearer
    token (the URL is the credential)."""
    if not 20 <= len(token) <= 100 or not set(token) <= TOKEN_CHARS:
        feeds.refused(desk())
        raise NotFound("no such calendar feed")
    try:
        text = desk().run(lambda s, now: feeds.read(desk(), s, now, token))
    except NotFound:
        feeds.refused(desk())
        raise
    resp = Response(text, mimetype="text/calendar")
    resp.headers["Content-Type"] = "text/calendar; charset=utf-8"
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["Content-Disposition"] = 'inline; filename="diary.ics"'
    return resp
