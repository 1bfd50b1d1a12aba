"""The baseline the search is measured against: each discipline's earliest slot on its own,
as a scheduler booking them one at a time would find them (pure).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time

from services.scheduling.itineraries.calendar import (
    ClinicCalendar,
)
from services.scheduling.itineraries.model import (
    BusyTime,
    CarePathway,
    Itinerary,
    ObjectiveWeights,
    SearchRules,
    Unplaceable,
    _bits,
    _ceil_div,
    _low,
    _minutes,
)
from services.scheduling.itineraries.search import (
    _V,
    _label,
    _prepare,
)


def baseline_earliest_each(pathway: CarePathway, calendar: ClinicCalendar, *,
                           earliest: datetime, latest: datetime,
                           patient_busy: Iterable[BusyTime] = (), due_by: date | None = None,
                           rules: SearchRules | None = None,
                           weights: ObjectiveWeights | None = None) -> Itinerary | Unplaceable:
    """What a scheduler on the phone does: each session at its discipline's earliest free slot.

    First visits in clinical order (each after its predecessors end), each follow-up at the
    earliest slot from ``interval_days`` after the previous session, never overlapping the
    patient's other visits (min_gap apart); no grouping of days, no continuity.
    """
    rules = rules or SearchRules()
    weights = weights or ObjectiveWeights()
    search = _prepare(pathway, calendar, earliest, latest, patient_busy, due_by, rules, weights)
    if isinstance(search, Unplaceable):
        return search
    gap = rules.min_gap_minutes
    visits: list[_V] = []
    first_end: dict[str, int] = {}

    def earliest_slot(disc: str, not_before: int, session: int) -> _V | None:
        dur = search.steps[disc].visit_minutes
        for day in range(max(search.first_day, calendar.day_of(not_before)),
                         search.last_day + 1):
            bnd = calendar.bounds(day)
            if bnd is None:
                continue
            _p, union = search.avail(disc, day)
            if not union:
                continue
            opens, step = bnd[0], search.step
            allowed = union & ~_bits(0, _ceil_div(not_before - opens, step) - 1)
            for v in visits:
                if v[6] == day:
                    allowed &= ~_bits(_ceil_div(v[3] - gap - dur + 1 - opens, step),
                                      (v[4] + gap - 1 - opens) // step)
            if allowed:
                return search.materialise(disc, day, opens + _low(allowed) * step, session)
        return None

    for disc in search.order:
        after = [first_end[p] + gap for p in search.preds[disc]]
        v = earliest_slot(disc, max([search.earliest, *after]), 1)
        if v is None:
            return Unplaceable((f"{_label(disc)}: no first visit in the window.",))
        visits.append(v)
        first_end[disc] = v[4]
    for disc in search.order:
        step = search.steps[disc]
        last = next(v for v in visits if v[0] == disc)
        for n in range(2, step.sessions + 1):
            bnd = calendar.bounds(last[6] + max(1, step.interval_days))
            start_day = date.fromordinal(last[6] + max(1, step.interval_days))
            not_before = bnd[0] if bnd else _minutes(
                datetime.combine(start_day, time(0), tzinfo=calendar.tz))
            v = earliest_slot(disc, not_before, n)
            if v is None:
                return Unplaceable((f"{_label(disc)} session {n}: no slot in the window.",))
            visits.append(v)
            last = v
    return search.itinerary(visits, ["Baseline: each session at its earliest free slot."],
                            len({v[6] for v in visits if v[5] == 1}) == 1)


