"""RFC 5545 calendar invitations for a patient's visits, pure (no Flask, SQL or SMTP).

Each appointment keeps one UID (`<appointment_id>@paincare`) for its whole life, so the
patient's calendar program files a change over the entry it already has (METHOD:REQUEST
with a higher SEQUENCE) and removes it on a cancellation (METHOD:CANCEL,
STATUS:CANCELLED). Times are in UTC. The event carries the discipline, the provider's name,
the room and the clinic: never a note, a reason or any other free text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from icalendar import Calendar, Event, vCalAddress, vText

PRODID = "-//PainCare//Visits//EN"
METHODS = ("REQUEST", "CANCEL")
# SEQUENCE of a change: seconds since this instant when it was planned, so each later
# change outranks the earlier ones without the notifier keeping a counter (fits in the
# 32-bit integer calendar programs store until 2092).
SEQUENCE_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def uid(appointment_id: str) -> str:
    """The appointment's stable calendar identity."""
    return f"{appointment_id}@paincare"


def sequence_at(now: datetime) -> int:
    return max(1, int((now - SEQUENCE_EPOCH).total_seconds()))


@dataclass(frozen=True)
class Visit:
    """What a calendar entry shows of one appointment."""

    appointment_id: str
    discipline: str  # in the reader's words ("Physical therapy")
    provider: str  # the provider's name (their id when unnamed)
    start: datetime
    end: datetime
    room: str = ""


def visit_from(payload: Mapping[str, Any], discipline_name: str) -> Visit:
    """A visit from an event's payload (appointment.* or one of itinerary.booked's)."""
    return Visit(appointment_id=str(payload["appointment_id"]), discipline=discipline_name,
                 provider=payload.get("provider_name") or payload.get("provider_id") or "",
                 start=_instant(payload["start"]), end=_instant(payload["end"]),
                 room=payload.get("room_name") or payload.get("room_id") or "")


def invitation(visits: Iterable[Visit], *, method: str, sequence: int, now: datetime,
               clinic: str, organizer: str, attendee: str | None = None) -> str:
    """One VCALENDAR with a VEVENT per visit: METHOD:REQUEST books or moves them,
    METHOD:CANCEL removes them. `organizer` and `attendee` are email addresses."""
    if method not in METHODS:
        raise ValueError(f"calendar method {method!r} is not one of {METHODS}")
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    for visit in visits:
        cal.add_component(_event(visit, method, sequence, now, clinic, organizer, attendee))
    return cal.to_ical().decode("utf-8")


def _event(visit: Visit, method: str, sequence: int, now: datetime, clinic: str,
           organizer: str, attendee: str | None) -> Event:
    event = Event()
    event.add("uid", uid(visit.appointment_id))
    event.add("sequence", sequence)
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", visit.start.astimezone(UTC))
    event.add("dtend", visit.end.astimezone(UTC))
    event.add("summary", f"{visit.discipline} with {visit.provider}" if visit.provider
              else visit.discipline)
    event.add("location", f"{clinic}, room {visit.room}" if visit.room else clinic)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    who = vCalAddress(f"mailto:{_bare(organizer)}")
    who.params["cn"] = vText(clinic)
    event.add("organizer", who)
    if attendee:
        guest = vCalAddress(f"mailto:{_bare(attendee)}")
        guest.params["role"] = vText("REQ-PARTICIPANT")
        guest.params["partstat"] = vText("ACCEPTED")
        event.add("attendee", guest)
    return event


def method_of(text: str) -> str:
    """The METHOD of a calendar text (the MIME part's `method=` parameter)."""
    return str(Calendar.from_ical(text).get("method", "PUBLISH"))


def _bare(address: str) -> str:
    """'PainCare <no-reply@x>' -> 'no-reply@x'."""
    if "<" in address and address.endswith(">"):
        return address[address.rindex("<") + 1:-1]
    return address


def _instant(at: str | datetime) -> datetime:
    return datetime.fromisoformat(at) if isinstance(at, str) else at
