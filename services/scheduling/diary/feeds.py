"""Use cases of the providers' iCal feeds: create (or replace) one, revoke it, read it by
its secret token. Only the token's hash is stored; the token is shown once, on creation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from services.scheduling.diary import calendar_feed, roster
from services.scheduling.diary.context import Diary, new_id
from services.scheduling.diary.db import appointments, calendar_feeds, rooms
from shared.auth import Principal
from shared.errors import NotFound

FEED_PATH = "/calendar/"


def _active(s: Session, provider_id: str) -> Any:
    f = calendar_feeds.c
    return select(calendar_feeds).where(f.provider_id == provider_id, f.revoked_at.is_(None))


def create(desk: Diary, s: Session, who: Principal, now: datetime,
           provider_id: str) -> dict[str, Any]:
    """A new secret URL for the provider; one they had before stops working (a
    provider who fears theirs leaked makes a new one)."""
    provider = roster.provider(desk, s, provider_id)
    _revoke_all(s, who, now, provider_id)
    token = calendar_feed.new_token()
    feed_id = new_id()
    s.execute(insert(calendar_feeds).values(
        id=feed_id, provider_id=provider["id"], token_hash=calendar_feed.token_hash(token),
        created_by=who.subject, created_at=now))
    desk.runtime.audit.record(s, who, "create", "calendar_feed", resource_id=provider["id"])
    return {"id": feed_id, "provider_id": provider["id"], "token": token,
            "path": f"{FEED_PATH}{token}.ics", "created_at": now}


def revoke(desk: Diary, s: Session, who: Principal, now: datetime, provider_id: str) -> None:
    roster.provider(desk, s, provider_id)
    if not _revoke_all(s, who, now, provider_id):
        raise NotFound(f"provider {provider_id} has no calendar feed")
    desk.runtime.audit.record(s, who, "revoke", "calendar_feed", resource_id=provider_id)


def _revoke_all(s: Session, who: Principal, now: datetime, provider_id: str) -> int:
    f = calendar_feeds.c
    done = s.execute(update(calendar_feeds).where(
        f.provider_id == provider_id, f.revoked_at.is_(None)).values(
        revoked_at=now, revoked_by=who.subject))
    return done.rowcount or 0


def read(desk: Diary, s: Session, now: datetime, token: str) -> str:
    """The diary for a live token; an unknown or revoked one is a 404 (as if there were
    no such URL), audited either way."""
    f = calendar_feeds.c
    feed = s.execute(select(calendar_feeds).where(
        f.token_hash == calendar_feed.token_hash(token), f.revoked_at.is_(None))
    ).mappings().first()
    if feed is None:
        raise NotFound("no such calendar feed")
    provider = roster.provider(desk, s, feed["provider_id"])
    reader = Principal(subject=f"calendar-feed:{feed['id']}", role="calendar_feed",
                       provider_id=provider["id"])
    start, end = calendar_feed.window(now)
    a = appointments.c
    visits = s.execute(select(a.id, a.discipline, a.start_at, a.end_at, a.room_id,
                              a.updated_at).where(
        a.provider_id == provider["id"], a.status.in_(calendar_feed.SHOWN_STATUSES),
        a.end_at > start, a.start_at < end).order_by(a.start_at, a.id)).mappings().all()
    room_names = {r.id: r.name for r in s.execute(select(rooms.c.id, rooms.c.name))}
    desk.runtime.audit.record(s, reader, "read", "calendar_feed", resource_id=provider["id"])
    return calendar_feed.diary(provider["name"], visits, room_names, now)


def refused(desk: Diary) -> None:
    """An unknown or revoked token, audited in a transaction of its own (the request's
    rolls back); the token itself is never written down."""
    desk.units.refused(Principal("anonymous", "calendar_feed"), "read", "calendar_feed",
                       "unknown or revoked calendar feed token")
