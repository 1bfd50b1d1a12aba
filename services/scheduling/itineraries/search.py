"""The itinerary search itself: a same-day first-visit cluster (or its fallbacks), then a
beam search over the follow-up series and a local-improvement pass (pure). How it
searches and the objective: `model.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from itertools import pairwise

from services.scheduling.itineraries.calendar import (
    ClinicCalendar,
)
from services.scheduling.itineraries.model import (
    CLINICAL_ORDER,
    WIDENED_NOTE,
    BusyTime,
    CarePathway,
    Itinerary,
    ObjectiveWeights,
    ScoreBreakdown,
    SearchRules,
    Unplaceable,
    Visit,
    _bits,
    _ceil_div,
    _iter_bits,
    _low,
    _minutes,
    _minutes_up,
    _moment,
    _starts_mask,
    _subtract,
)

# ---------------------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------------------

# An internal visit: (discipline, provider, room, start minute, end minute, session, day)
_V = tuple[str, str, str | None, int, int, int, int]


def _label(d: str) -> str:
    return d.replace("_", " ")


def _clinical_order(pathway: CarePathway) -> tuple[list[str], dict[str, frozenset[str]]]:
    """A topological order of the disciplines (clinical order first) and each one's predecessors.

    Raises ValueError on a cycle.
    """
    names = [s.discipline for s in pathway.steps]
    rank = {d: (CLINICAL_ORDER.index(d) if d in CLINICAL_ORDER else 99, i)
            for i, d in enumerate(names)}
    preds = {s.discipline: frozenset(a for a in s.after if a in names and a != s.discipline)
             for s in pathway.steps}
    order: list[str] = []
    left = set(names)
    while left:
        ready = sorted((d for d in left if preds[d] <= set(order)), key=rank.__getitem__)
        if not ready:
            raise ValueError("the pathway's order constraints form a cycle: "
                             + ", ".join(sorted(left)))
        order.append(ready[0])
        left.discard(ready[0])
    return order, preds


@dataclass
class _State:
    """One partial itinerary in the follow-up beam."""

    visits: tuple[_V, ...]
    by_day: dict[int, tuple[tuple[int, int], ...]]
    series: dict[str, tuple[int, int, str]]  # discipline -> (next session, last day, provider)
    trips: int
    waiting: int
    changes: int = 0
    drift: int = 0
    cost: float = 0.0


@dataclass
class _Plan:
    visits: list[_V]
    notes: list[str]
    same_day: bool


@dataclass
class _Search:
    pathway: CarePathway
    cal: ClinicCalendar
    earliest: int
    latest: int
    busy: list[tuple[int, int]]
    rules: SearchRules
    weights: ObjectiveWeights
    order: list[str]
    preds: dict[str, frozenset[str]]
    due_day: int | None = None
    _pat: dict[tuple[int, int], int] = field(default_factory=dict)
    _av: dict[tuple[str, int], tuple[list[tuple[str, int]], int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.step = self.rules.slot_minutes
        self.first_day = self.cal.day_of(self.earliest)
        self.last_day = self.cal.day_of(self.latest - 1)
        self.steps = {s.discipline: s for s in self.pathway.steps}
        self.names = [s.discipline for s in self.pathway.steps]

    # -- availability ------------------------------------------------------------------
    def patient_mask(self, day: int, dur: int) -> int:
        key = (day, dur)
        if key not in self._pat:
            bnd = self.cal.bounds(day)
            if bnd is None:
                self._pat[key] = 0
            else:
                ivs = [(max(bnd[0], self.earliest), min(bnd[1], self.latest))]
                for a, b in self.busy:
                    if b > bnd[0] and a < bnd[1]:
                        ivs = _subtract(ivs, a, b)
                self._pat[key] = _starts_mask(ivs, bnd[0], dur, self.step)
        return self._pat[key]

    def avail(self, disc: str, day: int) -> tuple[list[tuple[str, int]], int]:
        """Providers of ``disc`` with their usable starts that day (room and patient free)."""
        key = (disc, day)
        if key not in self._av:
            dur = self.steps[disc].visit_minutes
            common = self.patient_mask(day, dur)
            if common:
                common &= self.cal.room_mask(disc, day, dur, self.step)
            out: list[tuple[str, int]] = []
            union = 0
            if common:
                for pid in self.cal.providers.get(disc, ()):
                    m = self.cal.provider_mask(pid, day, dur, self.step) & common
                    if m:
                        out.append((pid, m))
                        union |= m
            self._av[key] = (out, union)
        return self._av[key]

    def why_not(self, disc: str, day: int) -> str:
        """Why a discipline has no usable start on a day, in the clinic's words."""
        dur = self.steps[disc].visit_minutes
        when = date.fromordinal(day).isoformat()
        if self.cal.bounds(day) is None:
            return f"the clinic is closed on {when}"
        if not self.patient_mask(day, dur):
            return f"the patient is unavailable on {when}"
        free = 0
        for pid in self.cal.providers.get(disc, ()):
            free |= self.cal.provider_mask(pid, day, dur, self.step)
        if not free & self.patient_mask(day, dur):
            return f"no {_label(disc)} provider is free for {dur} min on {when}"
        return f"no room fit for {_label(disc)} is free when a provider is, on {when}"

    def opens(self, day: int) -> int:
        bnd = self.cal.bounds(day)
        assert bnd is not None
        return bnd[0]

    def materialise(self, disc: str, day: int, start: int, session: int,
                    prefer: str | None = None) -> _V:
        dur = self.steps[disc].visit_minutes
        bit = (start - self.opens(day)) // self.step
        providers = self.avail(disc, day)[0]
        pid = next((p for p, m in providers if p == prefer and m >> bit & 1), None)
        if pid is None:
            pid = next(p for p, m in providers if m >> bit & 1)
        # The room is chosen once the itinerary is final (see ``itinerary``): the room
        # mask already guarantees that some fit room is free at this start.
        return (disc, pid, None, start, start + dur, session, day)

    # -- first visit -------------------------------------------------------------------
    def chain(self, day: int, discs: Sequence[str], done: frozenset[str]
              ) -> tuple[list[tuple[str, int]], list[str]]:
        """Longest, then least-waiting, same-day chain of ``discs`` in clinical order.

        Returns [(discipline, start minute)] and, for those left out, why.
        """
        bnd = self.cal.bounds(day)
        if bnd is None or day < self.first_day or day > self.last_day:
            return [], []
        opens, step = bnd[0], self.step
        lo_gap, hi_gap = self.rules.min_gap_minutes, self.rules.max_gap_minutes
        index = {d: i for i, d in enumerate(discs)}
        need = {d: sum(1 << index[p] for p in self.preds[d] if p in index and p not in done)
                for d in discs}
        union = {d: self.avail(d, day)[1] for d in discs}
        dur = {d: self.steps[d].visit_minutes for d in discs}
        # state (seen-set bits, end minute) -> (waiting, first start, back key, disc, start)
        Key = tuple[int, int]
        level: dict[Key, tuple[int, int, Key | None, str, int]] = {}
        for d in discs:
            if need[d] == 0:
                for i in _iter_bits(union[d]):
                    s = opens + i * step
                    key = (1 << index[d], s + dur[d])
                    cand = (0, s, None, d, s)
                    if key not in level or cand[:2] < level[key][:2]:
                        level[key] = cand
        levels = [level] if level else []
        while level:
            nxt: dict[Key, tuple[int, int, Key | None, str, int]] = {}
            for (seen, end), (wait, first, _b, _d, _s) in level.items():
                window = _bits(_ceil_div(end + lo_gap - opens, step),
                               (end + hi_gap - opens) // step)
                for d in discs:
                    bit = 1 << index[d]
                    if seen & bit or need[d] & ~seen:
                        continue
                    for i in _iter_bits(union[d] & window):
                        s = opens + i * step
                        key = (seen | bit, s + dur[d])
                        cand = (wait + s - end, first, (seen, end), d, s)
                        if key not in nxt or cand[:2] < nxt[key][:2]:
                            nxt[key] = cand
            if nxt:
                levels.append(nxt)
            level = nxt
        if not levels:
            roots = [d for d in discs if need[d] == 0]
            return [], [f"{_label(d)}: {self.why_not(d, day)}" for d in roots]
        last = levels[-1]
        key = min(last, key=lambda k: last[k][:2])
        out: list[tuple[str, int]] = []
        for lvl in reversed(levels):
            _w, _f, back, d, s = lvl[key]
            out.append((d, s))
            if back is None:
                break
            key = back
        out.reverse()
        placed = {d for d, _ in out}
        why: list[str] = []
        for d in discs:
            if d in placed:
                continue
            if not union[d]:
                why.append(f"{_label(d)}: {self.why_not(d, day)}")
            else:
                why.append(f"{_label(d)}: no slot within {lo_gap}-{hi_gap} min of the other "
                           f"visits in clinical order on {date.fromordinal(day).isoformat()}")
        return out, why

    def first_visit_plans(self) -> tuple[list[_Plan], list[str]]:
        order = self.order
        everyone = frozenset()
        start_day = None
        first: list[tuple[str, int]] = []
        why: list[str] = []
        for day in range(self.first_day, self.last_day + 1):
            first, why = self.chain(day, order, everyone)
            if first:
                start_day = day
                break
        if start_day is None:
            roots = [d for d in order if not self.preds[d]]
            return [], [f"no {_label(d)} visit of {self.steps[d].visit_minutes} min can be "
                        f"placed between {date.fromordinal(self.first_day).isoformat()} and "
                        f"{date.fromordinal(self.last_day).isoformat()} (no free provider, "
                        "fit room or patient time)" for d in roots]
        when = date.fromordinal(start_day).isoformat()
        plans: list[_Plan] = []
        if len(first) == len(order):
            plans.append(_Plan(self._visits(start_day, first), [
                f"Same-day first visit on {when}: "
                + ", ".join(_label(d) for d, _ in first) + "."], True))
            return plans, []
        # Fallback 1: split the first visit over several days.
        visits = self._visits(start_day, first)
        done = frozenset(d for d, _ in first)
        parts = [f"{', '.join(_label(d) for d, _ in first)} on {when}"]
        day = start_day
        while len(done) < len(order):
            day += 1
            if day > self.last_day:
                break
            rest = [d for d in order if d not in done]
            more, _ = self.chain(day, rest, done)
            if more:
                visits += self._visits(day, more)
                done |= {d for d, _ in more}
                parts.append(f"{', '.join(_label(d) for d, _ in more)} on "
                             f"{date.fromordinal(day).isoformat()}")
        reason = (f"No same-day first visit across all {len(order)} disciplines on {when} "
                  f"({'; '.join(why)}).")
        if len(done) == len(order):
            plans.append(_Plan(visits, [reason, f"First visit split over {len(parts)} days: "
                                        + "; ".join(parts) + "."], False))
        # Fallback 2: the whole cluster on a later day.
        for day in range(start_day + 1,
                         min(self.last_day, start_day + self.rules.later_cluster_days) + 1):
            if self.cal.bounds(day) is None:
                continue
            if any(not self.avail(d, day)[1] for d in order):
                continue
            full, _ = self.chain(day, order, everyone)
            if len(full) == len(order):
                plans.append(_Plan(self._visits(day, full), [
                    reason, f"Same-day first visit on {date.fromordinal(day).isoformat()}, "
                    f"{day - start_day} day(s) after the earliest possible first visit."], True))
                break
        if not plans:
            return [], [reason, "The remaining disciplines find no first visit before "
                        f"{date.fromordinal(self.last_day).isoformat()}."]
        return plans, []

    def _visits(self, day: int, chain: list[tuple[str, int]]) -> list[_V]:
        return [self.materialise(d, day, s, 1) for d, s in chain]

    # -- follow-ups --------------------------------------------------------------------
    def window(self, disc: str, last: int) -> tuple[int, int, int]:
        """(first day, last day, ideal day) for a discipline's next session."""
        st = self.steps[disc]
        tol = self.rules.interval_tolerance_days
        ideal = last + max(1, st.interval_days)
        return (last + max(1, st.interval_days - tol), last + max(1, st.interval_days + tol),
                ideal)

    def place(self, state: _State, disc: str, day: int, main: str
              ) -> tuple[str, int, int] | None:
        """Best (provider, start, added waiting) for one session on a day, or None."""
        providers, union = self.avail(disc, day)
        if not union:
            return None
        dur = self.steps[disc].visit_minutes
        opens, step = self.opens(day), self.step
        lo_gap, hi_gap = self.rules.min_gap_minutes, self.rules.max_gap_minutes
        here = state.by_day.get(day, ())
        # options: (mask of allowed starts, take highest?, waiting function)
        options: list[tuple[int, bool, int]] = []
        if not here:
            options.append((-1, False, 0))
        else:
            s1, e_n = here[0][0], here[-1][1]
            options.append((_bits(_ceil_div(s1 - hi_gap - dur - opens, step),
                                  (s1 - lo_gap - dur - opens) // step), True, 0))
            options.append((_bits(_ceil_div(e_n + lo_gap - opens, step),
                                  (e_n + hi_gap - opens) // step), False, 1))
            for (_a, e), (s, _b) in pairwise(here):
                options.append((_bits(_ceil_div(e + lo_gap - opens, step),
                                      (s - lo_gap - dur - opens) // step), False, 2))
        best: tuple[int, int, str] | None = None
        ordered = sorted(providers, key=lambda pm: pm[0] != main)
        for pid, m in ordered:
            if self.rules.same_provider_required and pid != main:
                break
            for allowed, high, kind in options:
                x = m & allowed
                if not x:
                    continue
                i = x.bit_length() - 1 if high else _low(x)
                s = opens + i * step
                if kind == 0 and here:
                    wait = here[0][0] - (s + dur)
                elif kind == 1:
                    wait = s - here[-1][1]
                elif kind == 2:
                    wait = -dur
                else:
                    wait = 0
                if best is None or wait < best[0]:
                    best = (wait, s, pid)
            if best is not None and pid == main:
                break
        if best is None:
            return None
        return best[2], best[1], best[0]

    def cost(self, st: _State) -> float:
        """Objective so far plus a look-ahead: half a trip for each pending session whose
        window holds none of the patient's trip days yet (it will likely need a new trip)."""
        w = self.weights
        lonely = 0
        for d, (n, last, _p) in st.series.items():
            if n <= self.steps[d].sessions:
                lo, hi, _i = self.window(d, last)
                lonely += not any(lo <= day <= hi for day in st.by_day)
        return (w.trips * (st.trips + 0.5 * lonely) + w.waiting_minutes * st.waiting
                + w.provider_changes * st.changes + w.interval_drift_days * st.drift)

    def expand(self, st: _State) -> tuple[list[_State], str | None]:
        pending = [(self.window(d, last)[1], self.names.index(d), d)
                   for d, (n, last, _p) in st.series.items() if n <= self.steps[d].sessions]
        _hi, _i, disc = min(pending)
        n, last, main = st.series[disc]
        lo, hi, ideal = self.window(disc, last)
        hi = min(hi, self.last_day)
        others = [self.window(d, lst)[:2] for d, (k, lst, _p) in st.series.items()
                  if d != disc and k <= self.steps[d].sessions]
        existing = sorted((abs(d - ideal), d) for d in st.by_day if lo <= d <= hi)
        fresh = []
        for d in range(lo, hi + 1):
            if d in st.by_day or not self.avail(disc, d)[1]:
                continue
            cover = sum(1 for a, b in others if a <= d <= b)
            fresh.append((-cover, abs(d - ideal), d))
        fresh.sort()
        k = self.rules.day_choices
        days = [d for _, d in existing[:k]] + [d for *_, d in fresh[:k]]
        days += [d for _, d in existing[k:]] + [d for *_, d in fresh[k:]]
        kids: list[_State] = []
        for day in days:
            got = self.place(st, disc, day, main)
            if got is None:
                continue
            pid, s, wait = got
            v = self.materialise(disc, day, s, n, prefer=pid)
            by_day = dict(st.by_day)
            by_day[day] = tuple(sorted((*by_day.get(day, ()), (v[3], v[4]))))
            series = dict(st.series)
            series[disc] = (n + 1, day, main)
            kid = _State((*st.visits, v), by_day, series, st.trips + (day not in st.by_day),
                         st.waiting + wait, st.changes + (pid != main),
                         st.drift + abs(day - last - self.steps[disc].interval_days))
            kid.cost = self.cost(kid)
            kids.append(kid)
            if len(kids) >= 2 * k:
                break
        if kids:
            return kids, None
        if lo > hi:
            return [], (f"{_label(disc)} session {n} of {self.steps[disc].sessions} would fall "
                        f"after the search window ends on "
                        f"{date.fromordinal(self.last_day).isoformat()}")
        return [], (f"{_label(disc)} session {n} of {self.steps[disc].sessions}: no "
                    f"{_label(disc)} visit of {self.steps[disc].visit_minutes} min can be placed "
                    f"between {date.fromordinal(lo).isoformat()} and "
                    f"{date.fromordinal(hi).isoformat()} (every "
                    f"{self.steps[disc].interval_days} days, +/- "
                    f"{self.rules.interval_tolerance_days})"
                    + ("" if not self.rules.same_provider_required else
                       f" with the series provider {main}"))

    def follow_ups(self, plan: _Plan) -> tuple[list[_State], list[str]]:
        by_day: dict[int, tuple[tuple[int, int], ...]] = {}
        for v in plan.visits:
            by_day[v[6]] = tuple(sorted((*by_day.get(v[6], ()), (v[3], v[4]))))
        series = {v[0]: (2, v[6], v[1]) for v in plan.visits}
        waiting = sum(b[0] - a[1] for spans in by_day.values()
                      for a, b in pairwise(spans))
        beam = [_State(tuple(plan.visits), by_day, series, len(by_day), waiting)]
        todo = sum(s.sessions - 1 for s in self.pathway.steps)
        reasons: list[str] = []
        for _ in range(todo):
            best: dict[frozenset[tuple[str, int]], _State] = {}
            for st in beam:
                more, why = self.expand(st)
                if why and why not in reasons:
                    reasons.append(why)
                for kid in more:
                    # One state per pattern of days: the beam keeps different day plans,
                    # not the same plan with other providers or times.
                    sig = frozenset((v[0], v[6]) for v in kid.visits)
                    if sig not in best or kid.cost < best[sig].cost:
                        best[sig] = kid
            if not best:
                return [], reasons
            beam = sorted(best.values(), key=lambda s: s.cost)[: self.rules.beam_width]
        return beam, []

    def improve(self, visits: Sequence[_V]) -> list[_V]:
        """Local improvement: move a follow-up that is alone on its day onto another trip day
        when its series' intervals and that day's gaps allow it and the objective improves
        (one trip fewer each time)."""
        out = list(visits)
        moved = True
        while moved:
            moved = False
            by_day: dict[int, list[_V]] = {}
            for v in out:
                by_day.setdefault(v[6], []).append(v)
            for day in sorted(by_day):
                if len(by_day[day]) != 1 or by_day[day][0][5] == 1:
                    continue
                v = by_day[day][0]
                disc, n = v[0], v[5]
                mine = {x[5]: x for x in out if x[0] == disc}
                prev, nxt = mine[n - 1], mine.get(n + 1)
                lo, hi, ideal = self.window(disc, prev[6])
                targets = sorted(
                    (abs(d - ideal), d) for d in by_day
                    if d != day and lo <= d <= min(hi, self.last_day)
                    and (nxt is None or self.window(disc, d)[0] <= nxt[6]
                         <= self.window(disc, d)[1]))
                for _drift, target in targets:
                    spans = tuple(sorted((x[3], x[4]) for x in by_day[target]))
                    probe = _State((), {target: spans}, {}, 0, 0)
                    got = self.place(probe, disc, target, mine[1][1])
                    if got is None:
                        continue
                    pid, start, _w = got
                    trial = list(out)
                    trial[out.index(v)] = self.materialise(disc, target, start, n, prefer=pid)
                    if self.breakdown(trial).total < self.breakdown(out).total:
                        out = trial
                        moved = True
                        break
                if moved:
                    break
        return out

    # -- scoring -----------------------------------------------------------------------
    def breakdown(self, visits: Sequence[_V]) -> ScoreBreakdown:
        return _breakdown(visits, self.pathway, self.first_day, self.due_day, self.weights)

    def itinerary(self, visits: Sequence[_V], notes: list[str], same_day: bool) -> Itinerary:
        ordered = sorted(((v[0], v[1], self.cal.room_for(v[0], v[6], v[3], v[4] - v[3]),
                           *v[3:]) for v in visits), key=lambda v: (v[3], v[0]))
        extra = list(notes)
        main = {v[0]: v[1] for v in ordered if v[5] == 1}
        for disc in self.names:
            away = [v[5] for v in ordered if v[0] == disc and v[1] != main.get(disc)]
            if away:
                extra.append(f"{_label(disc)} session(s) {', '.join(map(str, away))} with "
                             f"another provider: {main.get(disc)} was not free in the window.")
        return Itinerary(tuple(Visit(v[0], v[1], v[2], _moment(v[3]), _moment(v[4]), v[5])
                               for v in ordered),
                         self.breakdown(visits), tuple(extra), same_day)


def _breakdown(visits: Sequence[_V], pathway: CarePathway, first_day: int,
               due_day: int | None, weights: ObjectiveWeights) -> ScoreBreakdown:
    days: dict[int, list[tuple[int, int]]] = {}
    for v in visits:
        days.setdefault(v[6], []).append((v[3], v[4]))
    waiting = 0
    for spans in days.values():
        spans.sort()
        waiting += sum(max(0, b[0] - a[1]) for a, b in pairwise(spans))
    first = min(days) if days else first_day
    changes = drift = 0
    for step in pathway.steps:
        mine = sorted((v for v in visits if v[0] == step.discipline), key=lambda v: v[3])
        if not mine:
            continue
        changes += sum(1 for v in mine[1:] if v[1] != mine[0][1])
        drift += sum(abs(b[6] - a[6] - step.interval_days)
                     for a, b in pairwise(mine))
    to_first = first - first_day
    breach = max(0, first - due_day) if due_day is not None else 0
    w = weights
    total = (w.days_to_first_visit * to_first + w.trips * len(days)
             + w.waiting_minutes * waiting + w.provider_changes * changes
             + w.target_breach_days * breach + w.interval_drift_days * drift)
    return ScoreBreakdown(to_first, len(days), waiting, changes, breach, drift, round(total, 3))


def _prepare(pathway: CarePathway, calendar: ClinicCalendar, earliest: datetime,
             latest: datetime, patient_busy: Iterable[BusyTime], due_by: date | None,
             rules: SearchRules, weights: ObjectiveWeights) -> _Search | Unplaceable:
    names = [s.discipline for s in pathway.steps]
    if len(set(names)) != len(names):
        return Unplaceable(("The care pathway names a discipline twice.",))
    try:
        order, preds = _clinical_order(pathway)
    except ValueError as exc:
        return Unplaceable((f"The care pathway cannot be ordered: {exc}.",))
    missing = [d for d in names if not calendar.providers.get(d)]
    if missing:
        return Unplaceable(tuple(f"The clinic has no {_label(d)} provider with free time."
                                 for d in missing))
    if calendar.rooms:
        unfit = [d for d in names if not any(d in r.fit_for for r in calendar.rooms.values())]
        if unfit:
            return Unplaceable(tuple(f"No room is fit for {_label(d)}." for d in unfit))
    return _Search(pathway, calendar, _minutes_up(earliest), _minutes(latest),
                   sorted((_minutes(b.start), _minutes(b.end)) for b in patient_busy),
                   rules, weights, order, preds,
                   due_by.toordinal() if due_by is not None else None)


def search_itineraries(pathway: CarePathway, calendar: ClinicCalendar, *, earliest: datetime,
                       latest: datetime, patient_busy: Iterable[BusyTime] = (),
                       due_by: date | None = None, rules: SearchRules | None = None,
                       weights: ObjectiveWeights | None = None,
                       top_k: int = 3) -> list[Itinerary] | Unplaceable:
    """The best ``top_k`` distinct itineraries for a pathway, best first, or why none fits.

    ``earliest``/``latest`` bound every visit; ``due_by`` is the referral's priority target
    for the first visit (its breach is penalised, not forbidden).
    """
    rules = rules or SearchRules()
    weights = weights or ObjectiveWeights()
    search = _prepare(pathway, calendar, earliest, latest, patient_busy, due_by, rules, weights)
    if isinstance(search, Unplaceable):
        return search
    plans, reasons = search.first_visit_plans()
    if not plans:
        return Unplaceable(tuple(reasons))
    finished: list[tuple[float, int, Itinerary]] = []
    why: list[str] = []
    tolerances = [rules.interval_tolerance_days]
    if (rules.fallback_tolerance_days or 0) > rules.interval_tolerance_days:
        tolerances.append(rules.fallback_tolerance_days or 0)
    for tolerance in tolerances:
        search.rules = replace(rules, interval_tolerance_days=tolerance)
        widened = ([] if tolerance == rules.interval_tolerance_days else [
            f"{WIDENED_NOTE} within +/- {rules.interval_tolerance_days} "
            f"days of its interval ({'; '.join(why)}); intervals widened to +/- {tolerance} "
            "days."])
        for plan in plans:
            beam, lost = search.follow_ups(plan)
            why += [r for r in lost if r not in why]
            for st in beam:
                # The improved itinerary and, as an alternative, the beam's own.
                for visits in (search.improve(st.visits), st.visits):
                    it = search.itinerary(visits, plan.notes + widened, plan.same_day)
                    finished.append((it.score.total, len(finished), it))
        if finished:
            break
    if not finished:
        notes = [n for plan in plans for n in plan.notes if not n.startswith("Same-day")]
        return Unplaceable(tuple(dict.fromkeys(notes + why)))
    finished.sort(key=lambda t: t[:2])
    out: list[Itinerary] = []
    seen: set[tuple[Visit, ...]] = set()
    for _t, _i, it in finished:
        if it.visits not in seen:
            seen.add(it.visits)
            out.append(it)
        if len(out) == top_k:
            break
    return out


