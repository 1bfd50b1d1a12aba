"""The scheduling rules, pure: appointment statuses and their moves, what blocks a
diary, recurring series and who on the waitlist is offered a freed slot.

No Flask, SQLAlchemy or Kafka here; `now` is always a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from shared.availability import Interval, local_to_utc
from shared.errors import Conflict, InvalidInput
from shared.events.vocabulary import DISCIPLINES, PRIORITIES

# FHIR Appointment.status, the subset a clinic diary needs.
STATUSES = ("proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow")
HOLD_STATUSES = ("proposed", "pending")
# Statuses whose time is taken: held (until the hold expires), booked, or used.
BLOCKING_STATUSES = ("proposed", "pending", "booked", "arrived", "fulfilled")
ACTIVE_STATUSES = ("proposed", "pending", "booked")

MOVES: dict[str, frozenset[str]] = {
    "proposed": frozenset({"pending", "booked", "cancelled"}),
    "pending": frozenset({"booked", "cancelled"}),
    "booked": frozenset({"arrived", "cancelled", "noshow"}),
    "arrived": frozenset({"fulfilled"}),
    "fulfilled": frozenset(),
    "cancelled": frozenset(),
    "noshow": frozenset(),
}

ROOM_KINDS = ("consulting_room", "pt_gym", "acupuncture_room", "psychology_room", "other")
EXCEPTION_KINDS = ("leave", "training", "closure", "sickness", "other")
PRIORITY_RANK = {p: i for i, p in enumerate(PRIORITIES)}  # urgent first


def move(current: str, target: str) -> str:
    """The new status, or Conflict if the clinic's workflow forbids the move."""
    if target not in MOVES.get(current, frozenset()):
        raise Conflict(f"an appointment that is {current} cannot become {target}")
    return target


# Check-in opens this long before a visit begins (SCHEDULING_CHECK_IN_HOURS): a patient
# may be checked in on the morning of an afternoon visit, never the evening before.
DEFAULT_CHECK_IN_HOURS = 12.0


def check_in_window(hours: float) -> timedelta:
    """The configured check-in window, refused at start-up if it makes no sense."""
    if not 0 < hours <= 24:
        raise ValueError(f"SCHEDULING_CHECK_IN_HOURS must be above 0 and at most 24, not {hours}")
    return timedelta(hours=hours)


def check_visit_moment(target: str, start: datetime, now: datetime, *,
                       check_in_opens: timedelta, tz: tzinfo) -> None:
    """A visit is checked in only once its check-in window has opened, and completed or
    recorded as missed only once it has begun: a record of care says what happened, never
    what is expected to. The 409 says when the step becomes possible."""
    def when(moment: datetime) -> str:
        return (f"{moment.astimezone(tz).strftime('%a %d %b %Y %H:%M')} clinic time "
                f"({moment.astimezone(UTC).isoformat()})")

    if target == "arrived" and now < start - check_in_opens:
        opens = (start - check_in_opens).astimezone(UTC)
        raise Conflict(f"check-in for this visit opens at {when(opens)}",
                       errors={"start": [f"check-in opens at {opens.isoformat()}"]})
    if target in ("fulfilled", "noshow") and now < start:
        what = "completed" if target == "fulfilled" else "recorded as a no-show"
        raise Conflict(f"a visit can be {what} only once it has begun, from {when(start)}",
                       errors={"start": [f"the visit begins at "
                                         f"{start.astimezone(UTC).isoformat()}"]})


def can_reschedule(status: str) -> bool:
    return status in ACTIVE_STATUSES


def is_blocking(status: str, hold_expires_at: datetime | None, now: datetime) -> bool:
    """Does this appointment take its time? A hold does until it expires."""
    if status in HOLD_STATUSES:
        return hold_expires_at is None or hold_expires_at > now
    return status in BLOCKING_STATUSES


def visit_interval(start: datetime, minutes: int) -> Interval:
    if start.tzinfo is None:
        raise InvalidInput("a start time must carry its UTC offset", field="start")
    if not 5 <= minutes <= 480:
        raise InvalidInput("a visit lasts between 5 and 480 minutes", field="minutes")
    start = start.astimezone(UTC)
    return Interval(start, start + timedelta(minutes=minutes))


def check_not_past(visit: Interval, now: datetime) -> None:
    if visit.start < now:
        raise Conflict("that time has already passed")


def check_provider_offers(discipline: str, visit_types: Sequence[str], visit_type: str) -> None:
    """A provider offers only their own visit types (any, if they list none)."""
    if visit_type and visit_types and visit_type not in visit_types:
        raise InvalidInput(f"this {discipline} provider does not offer {visit_type!r} visits; "
                           f"they offer {', '.join(visit_types)}", field="visit_type")


def room_fits(fit_for: Sequence[str], discipline: str, visit_type: str) -> bool:
    """A room is fit for the disciplines or visit types it lists (a PT gym for PT); a room
    that lists nothing suits anything."""
    return not fit_for or discipline in fit_for or bool(visit_type and visit_type in fit_for)


def check_room_fit(room_name: str, fit_for: Sequence[str], discipline: str,
                   visit_type: str) -> None:
    if not room_fits(fit_for, discipline, visit_type):
        raise InvalidInput(f"room {room_name!r} is not fit for {visit_type or discipline}",
                           field="room_id")


def check_discipline(discipline: str) -> str:
    if discipline not in DISCIPLINES:
        raise InvalidInput(f"unknown discipline {discipline!r}", field="discipline")
    return discipline


# --- recurring series --------------------------------------------------------------


def plan_series(first_start: datetime, minutes: int, interval_days: int, count: int,
                tz: tzinfo) -> list[Interval]:
    """Each occurrence at the same local wall time as the first (weekly PT at 10:00 stays
    at 10:00 across a daylight-saving change)."""
    if not 1 <= count <= 52:
        raise InvalidInput("a series has 1 to 52 occurrences", field="count")
    if not 1 <= interval_days <= 90:
        raise InvalidInput("occurrences are 1 to 90 days apart", field="interval_days")
    first = visit_interval(first_start, minutes)
    local = first.start.astimezone(tz)
    wall = local.timetz().replace(tzinfo=None)
    out = []
    for i in range(count):
        start = local_to_utc(local.date() + timedelta(days=i * interval_days), wall, tz)
        out.append(Interval(start, start + timedelta(minutes=minutes)))
    return out


# --- waitlist ------------------------------------------------------------------------


@dataclass(frozen=True)
class Wish:
    """A patient waiting for a discipline, with their constraints (local dates and times)."""

    id: str
    patient_id: str
    discipline: str
    visit_minutes: int
    priority: str
    created_at: datetime
    provider_id: str | None = None
    earliest: date | None = None
    latest: date | None = None
    weekdays: tuple[int, ...] = ()
    day_start: time | None = None
    day_end: time | None = None


def offer_for(wish: Wish, opening: Interval, discipline: str, provider_id: str,
              tz: tzinfo) -> Interval | None:
    """The visit this wish would be offered in the opening, or None if it does not fit."""
    if wish.discipline != discipline:
        return None
    if wish.provider_id and wish.provider_id != provider_id:
        return None
    visit = Interval(opening.start, opening.start + timedelta(minutes=wish.visit_minutes))
    if visit.end > opening.end:
        return None
    start_local, end_local = visit.start.astimezone(tz), visit.end.astimezone(tz)
    day = start_local.date()
    if wish.earliest and day < wish.earliest:
        return None
    if wish.latest and day > wish.latest:
        return None
    if wish.weekdays and day.weekday() not in wish.weekdays:
        return None
    if wish.day_start and start_local.time() < wish.day_start:
        return None
    if wish.day_end and (end_local.date() != day or end_local.time() > wish.day_end):
        return None
    return visit


def rank_waitlist(wishes: Iterable[Wish], opening: Interval, discipline: str,
                  provider_id: str, tz: tzinfo) -> list[tuple[Wish, Interval]]:
    """Who is offered a freed slot, best first: the most urgent, then those who asked for
    this very provider, then who has waited longest."""
    matches = []
    for wish in wishes:
        visit = offer_for(wish, opening, discipline, provider_id, tz)
        if visit is not None:
            matches.append((wish, visit))
    matches.sort(key=lambda m: (PRIORITY_RANK.get(m[0].priority, len(PRIORITY_RANK)),
                                0 if m[0].provider_id else 1, m[0].created_at, m[0].id))
    return matches
