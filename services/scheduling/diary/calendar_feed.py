"""A provider's diary as an RFC 5545 feed, pure: what a calendar program subscribed to
the provider's secret URL shows. Each visit keeps the UID its patient's invitation has
(`<appointment_id>@paincare`); it shows the discipline and the room, never a patient's
name nor any clinical or free text (the feed leaves the clinic's systems)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from icalendar import Calendar, Event

PRODID = "-//PainCare//Provider diary//EN"
WINDOW_BEFORE = timedelta(days=30)
WINDOW_AFTER = timedelta(days=180)
SHOWN_STATUSES = ("booked", "checked_in", "completed")
DISCIPLINE_NAMES = {"pain_medicine": "Pain medicine", "physical_therapy": "Physical therapy",
                    "psychology": "Psychology", "acupuncture": "Acupuncture"}


def new_token() -> str:
    """A secret of 256 random bits, safe in a URL."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token: a high-entropy secret needs no slow hash, SHA-256 hides it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def window(now: datetime) -> tuple[datetime, datetime]:
    """The span a feed shows: a month back (what happened) to six months ahead."""
    return now - WINDOW_BEFORE, now + WINDOW_AFTER


def diary(provider_name: str, visits: Iterable[Mapping[str, Any]],
          rooms: Mapping[str, str], now: datetime, clinic: str = "Pain clinic") -> str:
    """The feed's text: one VEVENT per visit (id, discipline, start, end, room_id,
    updated_at); `rooms` maps room ids to names."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", f"PainCare: {provider_name}")
    cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT1H")
    for v in visits:
        event = Event()
        event.add("uid", f"{v['id']}@paincare")
        event.add("dtstamp", now.astimezone(UTC))
        event.add("dtstart", v["start_at"].astimezone(UTC))
        event.add("dtend", v["end_at"].astimezone(UTC))
        event.add("last-modified", v["updated_at"].astimezone(UTC))
        discipline = DISCIPLINE_NAMES.get(v["discipline"], v["discipline"])
        event.add("summary", f"{discipline} visit")
        room = rooms.get(v["room_id"] or "", "")
        event.add("location", f"{clinic}, room {room}" if room else clinic)
        event.add("status", "CONFIRMED")
        event.add("class", "PRIVATE")
        event.add("transp", "OPAQUE")
        cal.add_component(event)
    return cal.to_ical().decode("utf-8")
