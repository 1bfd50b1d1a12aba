"""A scheduler moves one visit of an itinerary: what the pathway's constraints say about
it (pure).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

from services.scheduling.itineraries.baseline import (
    baseline_earliest_each,
)
from services.scheduling.itineraries.calendar import (
    ClinicCalendar,
)
from services.scheduling.itineraries.model import (
    CLINICAL_ORDER,
    BusyTime,
    CarePathway,
    ClinicHours,
    FreeInterval,
    Itinerary,
    ObjectiveWeights,
    PathwayStep,
    Room,
    RoomFreeInterval,
    ScoreBreakdown,
    SearchRules,
    Unplaceable,
    Visit,
    _minutes,
)
from services.scheduling.itineraries.search import (
    _label,
    search_itineraries,
)


def check_move(itinerary: Itinerary, index: int, moved: Visit, *, pathway: CarePathway,
               calendar: ClinicCalendar, patient_busy: Iterable[BusyTime] = (),
               rules: SearchRules | None = None) -> list[str]:
    """Constraints broken if visit ``index`` of the itinerary becomes ``moved`` (empty: legal).

    ``calendar`` is the clinic's free time with this itinerary's holds taken out; the moved
    visit's old slot counts as free again for its provider and room.
    """
    rules = rules or SearchRules()
    problems: list[str] = []
    old = itinerary.visits[index]
    visits = list(itinerary.visits)
    visits[index] = moved
    a, b = _minutes(moved.start), _minutes(moved.end)
    when = moved.start.astimezone(calendar.tz).strftime("%Y-%m-%d %H:%M")
    disc = moved.discipline
    try:
        step = pathway.step(disc)
    except KeyError:
        return [f"{_label(disc)} is not part of the care pathway."]
    if disc != old.discipline or moved.session_index != old.session_index:
        problems.append("A move keeps the visit's discipline and session.")
    if b - a != step.visit_minutes:
        problems.append(f"A {_label(disc)} visit lasts {step.visit_minutes} min, not {b - a}.")
    day = calendar.day_of(a)
    bnd = calendar.bounds(day)
    if bnd is None or a < bnd[0] or b > bnd[1]:
        problems.append(f"{when} is outside clinic hours.")
    if calendar.discipline_of.get(moved.provider_id) != disc:
        problems.append(f"{moved.provider_id} is not a {_label(disc)} provider.")
    else:
        old_slot = ([(_minutes(old.start), _minutes(old.end))]
                    if old.provider_id == moved.provider_id else [])
        if not calendar.provider_is_free(moved.provider_id, a, b, old_slot):
            problems.append(f"{moved.provider_id} is not free at {when}.")
    if calendar.rooms:
        room = calendar.rooms.get(moved.room_id or "")
        if room is None or disc not in room.fit_for:
            problems.append(f"Room {moved.room_id} is not fit for {_label(disc)}.")
        else:
            old_slot = ([(_minutes(old.start), _minutes(old.end))]
                        if old.room_id == moved.room_id else [])
            if not calendar.room_is_free(room.room_id, a, b, old_slot):
                problems.append(f"Room {room.room_id} is not free at {when}.")
    for busy in patient_busy:
        if _minutes(busy.start) < b and a < _minutes(busy.end):
            problems.append(f"The patient is unavailable at {when}.")
            break
    # Same-day overlaps and gaps.
    same_day = sorted((v for v in visits if calendar.day_of(_minutes(v.start)) == day),
                      key=lambda v: v.start)
    for x, y in pairwise(same_day):
        gap = (_minutes(y.start) - _minutes(x.end))
        if moved not in (x, y):
            continue
        if gap < 0:
            problems.append(f"Overlaps the {_label(x.discipline if y is moved else y.discipline)}"
                            " visit that day.")
        elif gap < rules.min_gap_minutes or gap > rules.max_gap_minutes:
            problems.append(f"{gap} min between the {_label(x.discipline)} and "
                            f"{_label(y.discipline)} visits; allowed "
                            f"{rules.min_gap_minutes}-{rules.max_gap_minutes}.")
    # Clinical order of first visits.
    firsts = {v.discipline: v for v in visits if v.session_index == 1}
    for s in pathway.steps:
        for p in s.after:
            if s.discipline in firsts and p in firsts and \
                    firsts[s.discipline].start < firsts[p].end and disc in (s.discipline, p):
                problems.append(f"The first {_label(s.discipline)} visit must come after the "
                                f"first {_label(p)} visit.")
    # The series' interval.
    series = sorted((v for v in visits if v.discipline == disc), key=lambda v: v.session_index)
    tol = rules.interval_tolerance_days
    lo, hi = max(1, step.interval_days - tol), max(1, step.interval_days + tol)
    for x, y in pairwise(series):
        if moved not in (x, y):
            continue
        days = calendar.day_of(_minutes(y.start)) - calendar.day_of(_minutes(x.start))
        if not lo <= days <= hi:
            problems.append(f"{_label(disc)} sessions {x.session_index} and {y.session_index} "
                            f"are {days} days apart; allowed {lo}-{hi}.")
    if rules.same_provider_required and series and \
            any(v.provider_id != series[0].provider_id for v in series):
        problems.append(f"The {_label(disc)} series must stay with one provider.")
    return problems


__all__ = [
    "CLINICAL_ORDER", "BusyTime", "CarePathway", "ClinicCalendar", "ClinicHours",
    "FreeInterval", "Itinerary", "ObjectiveWeights", "PathwayStep", "Room",
    "RoomFreeInterval", "ScoreBreakdown", "SearchRules", "Unplaceable", "Visit",
    "baseline_earliest_each", "check_move", "search_itineraries",
]

