"""Itineraries: the use cases that put the pure search (`itinerary.py`) on the clinic's
real diary.

- search: the clinic's free time (templates minus leave, closures, appointments and live
  holds, via the desk and `availability.py`) becomes a `ClinicCalendar`; the patient's
  own appointments and stated unavailable times become their busy time.
- propose: the best itinerary's visits are held as appointments with status "proposed",
  an `itinerary_id` and `hold_expires_at`. They are ordinary rows of the appointments
  table, so the database refuses the held time to everyone else exactly as it refuses a
  double booking (exclusion constraints on PostgreSQL; BEGIN IMMEDIATE on SQLite).
- confirm: every held visit becomes booked in one transaction, or none does. A visit
  whose slot was taken after its hold lapsed makes the whole itinerary be searched again
  and held anew; the caller is told what changed.
- cancel, move one visit (checked against the pathway's constraints), list the moves of
  a visit that the move would accept (one context, one check: what is offered is what is
  accepted), expire holds, and referral.accepted -> a proposal of our own (or
  itinerary.unplaceable + waitlist).

Every method runs inside the caller's transaction and takes `now` as a parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from services.scheduling import availability as av
from services.scheduling import domain
from services.scheduling.db import appointments, exceptions, patient_links
from services.scheduling.desk import Desk, new_id
from services.scheduling.itinerary import (
    WIDENED_NOTE,
    BusyTime,
    CarePathway,
    ClinicCalendar,
    ClinicHours,
    FreeInterval,
    Itinerary,
    ObjectiveWeights,
    Room,
    RoomFreeInterval,
    ScoreBreakdown,
    SearchRules,
    Unplaceable,
    Visit,
    check_move,
    search_itineraries,
)
from services.scheduling.itinerary_db import itineraries, itinerary_visits
from shared import patient_links as links
from shared.auth import Principal
from shared.errors import Conflict, InvalidInput, NotFound
from shared.events.vocabulary import DISCIPLINES

Row = dict[str, Any]
RULE_FIELDS = ("min_gap_minutes", "max_gap_minutes", "interval_tolerance_days",
               "fallback_tolerance_days", "same_provider_required")
WEIGHT_FIELDS = tuple(ObjectiveWeights.__dataclass_fields__)
# Told to the patient with the booked itinerary (by discipline, once each).
WHAT_TO_BRING = {
    "pain_medicine": "A list of your current medicines and any recent scan or test results.",
    "physical_therapy": "Loose, comfortable clothes and trainers for exercise.",
    "psychology": "Any pain or mood diary you keep.",
    "acupuncture": "Clothing that lets the practitioner reach your arms and lower legs.",
}


@dataclass
class Ask:
    """What the search is asked: kept on the itinerary so that a lost hold can be searched
    again, and a move checked, against the very same constraints."""

    patient_id: str
    pathway: list[Row]
    earliest: datetime
    latest: datetime
    referral_id: str | None = None
    priority: str = "routine"
    due_by: date | None = None
    patient_busy: list[tuple[datetime, datetime]] = field(default_factory=list)
    rules: Row = field(default_factory=dict)
    weights: Row = field(default_factory=dict)


@dataclass
class Confirmation:
    """The outcome of a confirm: booked, or searched again (what changed and why)."""

    itinerary: Row
    booked: bool
    changes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MoveContext:
    """One visit of an itinerary and everything a move of it is checked against: the
    clinic's free time, the patient's other time and the pathway's rules (the widened
    tolerance when the itinerary was placed at it)."""

    row: Row
    plan: list[Visit]
    index: int
    calendar: ClinicCalendar
    patient_busy: list[BusyTime]
    rules: SearchRules
    pathway: CarePathway

    @property
    def visit(self) -> Visit:
        return self.plan[self.index]

    def problems(self, moved: Visit) -> list[str]:
        """The pathway's constraints `moved` breaks (empty: the move is accepted)."""
        return check_move(Itinerary(tuple(self.plan), _NO_SCORE), self.index, moved,
                          pathway=self.pathway, calendar=self.calendar,
                          patient_busy=self.patient_busy, rules=self.rules)


def _minute(moment: datetime) -> int:
    return int(moment.timestamp()) // 60


class Itineraries:
    """The itinerary use cases over the desk (which owns booking and its checks)."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.runtime = desk.runtime
        setting = self.runtime.settings.setting
        self.tz = desk.tz
        self.hold_minutes = float(setting("ITINERARY_HOLD_MINUTES", "15"))
        self.horizon_days = int(setting("ITINERARY_SEARCH_DAYS", "42"))
        self.hours = ClinicHours(
            self.runtime.settings.clinic_timezone,
            time.fromisoformat(setting("ITINERARY_CLINIC_OPENS", "08:00")),
            time.fromisoformat(setting("ITINERARY_CLINIC_CLOSES", "18:00")),
            frozenset(int(d) for d in setting("ITINERARY_CLINIC_WEEKDAYS", "0,1,2,3,4")
                      .split(",") if d.strip()))
        self.slot_minutes = int(setting("ITINERARY_SLOT_MINUTES", "15"))

    # --- asking ------------------------------------------------------------------------

    def ask(self, now: datetime, data: Row) -> Ask:
        """An Ask from an API body or an event payload: local dates from/to become the
        window (never before now); without `to` the window spans the longest series."""
        steps = [dict(s) for s in data["pathway"]]
        for step in steps:
            domain.check_discipline(step["discipline"])
            step["after"] = list(step.get("after") or [])
        first_day: date | None = data.get("first_day")
        last_day: date | None = data.get("last_day")
        earliest = now if first_day is None else max(
            now, av.local_to_utc(first_day, time(0), self.tz))
        if last_day is None:
            span = max(((s.get("sessions", 1) - 1) * (s.get("interval_days", 0) + 3)
                        for s in steps), default=0) + 14
            last_day = earliest.astimezone(self.tz).date() + timedelta(
                days=min(max(self.horizon_days, span), 190))
        latest = av.local_to_utc(last_day + timedelta(days=1), time(0), self.tz)
        if latest <= earliest:
            raise InvalidInput("the window ends before it starts (or has passed)", field="to")
        if (latest - earliest).days > 200:
            raise InvalidInput("search at most 200 days at a time", field="to")
        busy = [(b["start"].astimezone(UTC), b["end"].astimezone(UTC))
                for b in data.get("unavailable") or ()]
        return Ask(patient_id=data["patient_id"], pathway=steps, earliest=earliest,
                   latest=latest, referral_id=data.get("referral_id"),
                   priority=data.get("priority") or "routine", due_by=data.get("due_by"),
                   patient_busy=busy,
                   rules={k: v for k, v in (data.get("rules") or {}).items()
                          if k in RULE_FIELDS},
                   weights={k: v for k, v in (data.get("weights") or {}).items()
                            if k in WEIGHT_FIELDS})

    def _rules(self, ask: Ask) -> SearchRules:
        return SearchRules(**ask.rules, slot_minutes=self.slot_minutes)

    # --- the clinic's calendar ------------------------------------------------------------

    def calendar(self, s: Session, now: datetime, disciplines: list[str], earliest: datetime,
                 latest: datetime) -> ClinicCalendar:
        """Free time of the disciplines' active providers and of the active rooms, as the
        desk sees it now (live holds and bookings taken out)."""
        first = earliest.astimezone(self.tz).date()
        last = (latest - timedelta(microseconds=1)).astimezone(self.tz).date()
        span = av.local_days(first, last, self.tz)
        chosen = [p for p in self.desk.list_providers(s) if p["discipline"] in disciplines]
        ids = [p["id"] for p in chosen]
        free: list[FreeInterval] = []
        if ids:
            blocks = self.desk.blocks(s, ids)
            closed = self.desk.closed(s, ids, span)
            busy = self.desk.busy(s, ids, span, now)
            for p in chosen:
                for iv in av.free_time(blocks.get(p["id"], []), first, last, self.tz,
                                       closed=closed[p["id"]], busy=busy[p["id"]],
                                       not_before=now):
                    free.append(FreeInterval(p["id"], p["discipline"], iv.start, iv.end))
        room_rows = [r for r in self.desk.list_rooms(s) if r["active"]]
        room_list = [Room(r["id"], frozenset(d for d in (r["fit_for"] or DISCIPLINES)
                                             if d in DISCIPLINES)) for r in room_rows]
        room_free: list[RoomFreeInterval] = []
        if room_rows:
            e, a = exceptions.c, appointments.c
            closures = [av.Interval(x, y) for x, y in s.execute(
                select(e.start_at, e.end_at).where(
                    e.provider_id.is_(None), e.start_at < span.end, e.end_at > span.start))]
            taken: dict[str, list[av.Interval]] = {r["id"]: [] for r in room_rows}
            for rid, x, y in s.execute(select(a.room_id, a.start_at, a.end_at).where(
                    a.room_id.in_(list(taken)), a.start_at < span.end, a.end_at > span.start,
                    taking_time(now))):
                taken[rid].append(av.Interval(x, y))
            base = [av.Interval(max(span.start, now), span.end)] if span.end > now else []
            for rid, busy_room in taken.items():
                for iv in av.subtract(base, [*closures, *busy_room]):
                    room_free.append(RoomFreeInterval(rid, iv.start, iv.end))
        return ClinicCalendar(self.hours, free, room_list, room_free)

    def patient_busy(self, s: Session, now: datetime, ask: Ask, *,
                     except_itinerary: str | None = None) -> list[BusyTime]:
        """The patient's stated unavailable times and their own live appointments."""
        a = appointments.c
        q = select(a.start_at, a.end_at).where(
            a.patient_id == ask.patient_id, a.start_at < ask.latest, a.end_at > ask.earliest,
            taking_time(now))
        if except_itinerary:
            q = q.where(or_(a.itinerary_id.is_(None), a.itinerary_id != except_itinerary))
        return ([BusyTime(x, y) for x, y in ask.patient_busy]
                + [BusyTime(x, y) for x, y in s.execute(q)])

    # --- search ----------------------------------------------------------------------------

    def _search(self, s: Session, now: datetime, ask: Ask, top_k: int
                ) -> tuple[list[Itinerary] | Unplaceable, ClinicCalendar]:
        pathway = CarePathway.from_payload(ask.pathway)
        earliest = max(ask.earliest, now)
        if earliest >= ask.latest:
            return Unplaceable(("The search window has passed.",)), ClinicCalendar(self.hours, [])
        calendar = self.calendar(s, now, [st.discipline for st in pathway.steps], earliest,
                                 ask.latest)
        found = search_itineraries(
            pathway, calendar, earliest=earliest, latest=ask.latest,
            patient_busy=self.patient_busy(s, now, ask), due_by=ask.due_by,
            rules=self._rules(ask), weights=ObjectiveWeights(**ask.weights), top_k=top_k)
        return found, calendar

    def search(self, s: Session, now: datetime, ask: Ask, top_k: int = 3) -> Row:
        """The best few itineraries, best first, each with its score and notes (nothing is
        held), or the reasons none fits."""
        found, _cal = self._search(s, now, ask, top_k)
        if isinstance(found, Unplaceable):
            return {"itineraries": [], "unplaceable": list(found.reasons)}
        names = self._names(s)
        return {"itineraries": [self._plan_view(it, rank, names)
                                for rank, it in enumerate(found, 1)],
                "unplaceable": []}

    # --- propose and hold ------------------------------------------------------------------

    def propose(self, s: Session, who: Principal, now: datetime, ask: Ask, *,
                choice: int = 0, itinerary_id: str | None = None) -> Row:
        """Search, hold the chosen itinerary's slots and emit itinerary.proposed; Conflict
        with the reasons if none fits (nothing is written)."""
        held = self._search_and_hold(s, who, now, ask, choice, itinerary_id or new_id(),
                                     fresh=itinerary_id is None)
        if isinstance(held, Unplaceable):
            raise Conflict("no itinerary fits: " + " ".join(held.reasons),
                           errors={"reasons": list(held.reasons)})
        self.runtime.audit.record(s, who, "propose", "itinerary", resource_id=held["id"],
                                  patient_id=ask.patient_id)
        return held

    def _search_and_hold(self, s: Session, who: Principal, now: datetime, ask: Ask,
                         choice: int, itinerary_id: str, *, fresh: bool,
                         extra_notes: list[str] | None = None) -> Row | Unplaceable:
        for _attempt in range(4):
            found, _calendar = self._search(s, now, ask, max(3, choice + 1))
            if isinstance(found, Unplaceable):
                return found
            chosen = found[min(choice, len(found) - 1)]
            if fresh:
                s.execute(insert(itineraries).values(**self._new_row(
                    itinerary_id, ask, who, now)))
                fresh = False
            if self._hold(s, who, now, ask, itinerary_id, chosen):
                return self._proposed(s, now, ask, itinerary_id, chosen, extra_notes or [])
            # PostgreSQL only: a concurrent booking or hold committed between our read and
            # our insert (its exclusion constraint refused us; SQLite's BEGIN IMMEDIATE
            # cannot interleave). Search again: the next read sees what it took.
        raise Conflict("the clinic's diary is changing too fast; try again")

    def _hold(self, s: Session, who: Principal, now: datetime, ask: Ask, itinerary_id: str,
              chosen: Itinerary) -> bool:
        """Hold every visit (all in one savepoint), or none if one cannot be held."""
        rows: list[tuple[Visit, Row]] = []
        try:
            with s.begin_nested():
                for visit in chosen.visits:
                    rows.append((visit, self.desk.book(s, who, now, {
                        "patient_id": ask.patient_id, "provider_id": visit.provider_id,
                        "room_id": visit.room_id, "start": visit.start,
                        "minutes": int((visit.end - visit.start).total_seconds() // 60),
                        "status": "proposed", "hold_minutes": self.hold_minutes,
                        "referral_id": ask.referral_id, "itinerary_id": itinerary_id},
                        audit=False)))
        except Conflict:
            return False
        s.execute(insert(itinerary_visits), [
            {"itinerary_id": itinerary_id, "appointment_id": row["id"],
             "discipline": visit.discipline, "session_index": visit.session_index}
            for visit, row in rows])
        return True

    def _proposed(self, s: Session, now: datetime, ask: Ask, itinerary_id: str,
                  chosen: Itinerary, extra_notes: list[str]) -> Row:
        expires = now + timedelta(minutes=self.hold_minutes)
        notes = [*extra_notes, *chosen.notes]
        s.execute(update(itineraries).where(itineraries.c.id == itinerary_id).values(
            status="proposed", hold_expires_at=expires, notes=notes, reasons=[],
            score=asdict(chosen.score), updated_at=now))
        view = self.view(s, now, itinerary_id)
        self.runtime.emit(s, "itinerary.proposed", {
            "itinerary_id": itinerary_id, "referral_id": ask.referral_id,
            "patient_id": ask.patient_id, "hold_expires_at": expires.isoformat(),
            "visits": [_planned(v) for v in view["visits"]],
            "notes": [n[:500] for n in notes]}, key=ask.patient_id)
        return view

    def _new_row(self, itinerary_id: str, ask: Ask, who: Principal, now: datetime) -> Row:
        return {"id": itinerary_id, "patient_id": ask.patient_id,
                "referral_id": ask.referral_id, "status": "proposed",
                "priority": ask.priority, "due_by": ask.due_by, "pathway": ask.pathway,
                "rules": ask.rules, "weights": ask.weights,
                "patient_busy": [[a.isoformat(), b.isoformat()] for a, b in ask.patient_busy],
                "earliest": ask.earliest, "latest": ask.latest, "hold_expires_at": None,
                "notes": [], "reasons": [], "score": None, "revision": 1,
                "created_by": who.subject, "created_at": now, "updated_at": now}

    # --- reading ---------------------------------------------------------------------------

    def row(self, s: Session, itinerary_id: str, *, lock: bool = False) -> Row:
        q = select(itineraries).where(itineraries.c.id == itinerary_id)
        found = s.execute(q.with_for_update() if lock else q).mappings().first()
        if found is None:
            raise NotFound(f"no itinerary {itinerary_id}")
        return dict(found)

    def _visits(self, s: Session, itinerary_id: str, *, lock: bool = False
                ) -> list[tuple[Row, Row]]:
        """(itinerary visit, appointment) pairs, by start. `lock`: hold the appointment
        rows (PostgreSQL) so that a booking releasing a lapsed hold waits for us, or we
        see what it did."""
        iv, a = itinerary_visits.c, appointments.c
        q = select(itinerary_visits, appointments).join(
            appointments, a.id == iv.appointment_id).where(iv.itinerary_id == itinerary_id) \
            .order_by(a.start_at, iv.discipline)
        if lock:
            q = q.with_for_update()
        out = []
        for r in s.execute(q).mappings():
            out.append(({"discipline": r["discipline"], "session_index": r["session_index"],
                         "appointment_id": r["appointment_id"]},
                        {c.name: r[c] for c in appointments.c}))
        return out

    def _names(self, s: Session) -> dict[str, str]:
        names = {p["id"]: p["name"] for p in self.desk.list_providers(s, active=None)}
        names.update({r["id"]: r["name"] for r in self.desk.list_rooms(s)})
        return names

    def view(self, s: Session, now: datetime, itinerary_id: str) -> Row:
        """The itinerary as the API shows it; a hold past its time reads as expired even
        before the expiry loop has released it."""
        row = self.row(s, itinerary_id)
        names = self._names(s)
        status = row["status"]
        if status == "proposed" and row["hold_expires_at"] and row["hold_expires_at"] <= now:
            status = "expired"
        visits = [{"appointment_id": appt["id"], "discipline": visit["discipline"],
                   "session_index": visit["session_index"],
                   "provider_id": appt["provider_id"],
                   "provider_name": names.get(appt["provider_id"], ""),
                   "room_id": appt["room_id"], "room_name": names.get(appt["room_id"] or "", ""),
                   "start": appt["start_at"], "end": appt["end_at"], "status": appt["status"]}
                  for visit, appt in self._visits(s, itinerary_id)]
        return {**row, "status": status, "visits": visits}

    def find(self, s: Session, now: datetime, *, patient_id: str | None = None,
             referral_id: str | None = None, limit: int = 50, offset: int = 0) -> list[Row]:
        q = select(itineraries.c.id).order_by(itineraries.c.created_at, itineraries.c.id)
        if patient_id:
            q = q.where(itineraries.c.patient_id.in_(links.group(s, patient_links, patient_id)))
        if referral_id:
            q = q.where(itineraries.c.referral_id == referral_id)
        ids = s.execute(q.limit(limit).offset(offset)).scalars().all()
        return [self.view(s, now, i) for i in ids]

    def _plan_view(self, it: Itinerary, rank: int, names: dict[str, str]) -> Row:
        return {"rank": rank, "score": asdict(it.score), "notes": list(it.notes),
                "first_visit_same_day": it.first_visit_same_day,
                "visits": [{"discipline": v.discipline, "session_index": v.session_index,
                            "provider_id": v.provider_id,
                            "provider_name": names.get(v.provider_id, ""),
                            "room_id": v.room_id, "room_name": names.get(v.room_id or "", ""),
                            "start": v.start, "end": v.end} for v in it.visits]}

    def _ask_of(self, row: Row) -> Ask:
        return Ask(patient_id=row["patient_id"], pathway=row["pathway"],
                   earliest=row["earliest"], latest=row["latest"],
                   referral_id=row["referral_id"], priority=row["priority"],
                   due_by=row["due_by"],
                   patient_busy=[(datetime.fromisoformat(a), datetime.fromisoformat(b))
                                 for a, b in row["patient_busy"]],
                   rules=row["rules"], weights=row["weights"])

    # --- confirm ---------------------------------------------------------------------------

    def confirm(self, s: Session, who: Principal, now: datetime, itinerary_id: str
                ) -> Confirmation:
        """Book every visit in this transaction, or none. A held slot still held is ours
        even after the hold lapsed (nobody could book over it without releasing it); one
        that was released is taken back if still free. If any is gone, the itinerary is
        searched again and held anew, and the caller is told what changed."""
        row = self.row(s, itinerary_id, lock=True)
        if row["status"] not in ("proposed", "expired"):
            raise Conflict(f"this itinerary is {row['status']}; only a proposed one can be "
                           "confirmed")
        pairs = self._visits(s, itinerary_id, lock=True)
        lost: list[tuple[Row, Row, str]] = []
        secured: list[str] = []
        for visit, appt in pairs:
            if appt["status"] in domain.HOLD_STATUSES:
                secured.append(appt["id"])
                continue
            retaken, why = self._retake(s, who, now, row, appt)
            if retaken is None:
                lost.append((visit, appt, why))
            else:
                secured.append(retaken)
        if lost:
            return self._research(s, who, now, row, pairs, lost)
        s.execute(update(appointments).where(
            appointments.c.id.in_(secured), appointments.c.status.in_(domain.HOLD_STATUSES))
            .values(hold_expires_at=now + timedelta(minutes=1)))  # confirmed now: not lapsed
        for appt_id in secured:
            self.desk.change_status(s, who, now, appt_id, "booked")
        s.execute(update(itineraries).where(itineraries.c.id == itinerary_id).values(
            status="booked", hold_expires_at=None, updated_at=now))
        view = self.view(s, now, itinerary_id)
        disciplines = list(dict.fromkeys(v["discipline"] for v in view["visits"]))
        self.runtime.emit(s, "itinerary.booked", {
            "itinerary_id": itinerary_id, "referral_id": row["referral_id"],
            "patient_id": row["patient_id"], "visits": [_planned(v) for v in view["visits"]],
            "what_to_bring": [WHAT_TO_BRING[d] for d in disciplines if d in WHAT_TO_BRING]},
            key=row["patient_id"])
        self.runtime.audit.record(s, who, "confirm", "itinerary", resource_id=itinerary_id,
                                  patient_id=row["patient_id"])
        return Confirmation(view, True)

    def _retake(self, s: Session, who: Principal, now: datetime, row: Row, appt: Row
                ) -> tuple[str | None, str]:
        """Hold a released slot again: (the new appointment id, "") or (None, why the
        slot is gone)."""
        if appt["status"] != "cancelled":
            return None, f"it is {appt['status']}"
        try:
            with s.begin_nested():
                again = self.desk.book(s, who, now, {
                    "patient_id": appt["patient_id"], "provider_id": appt["provider_id"],
                    "room_id": appt["room_id"], "start": appt["start_at"],
                    "minutes": int((appt["end_at"] - appt["start_at"]).total_seconds() // 60),
                    "status": "proposed", "hold_minutes": self.hold_minutes,
                    "referral_id": row["referral_id"], "itinerary_id": row["id"]},
                    audit=False)
        except (Conflict, InvalidInput) as exc:
            return None, exc.detail
        s.execute(update(itinerary_visits).where(
            itinerary_visits.c.appointment_id == appt["id"]).values(appointment_id=again["id"]))
        return again["id"], ""

    def _research(self, s: Session, who: Principal, now: datetime, row: Row,
                  pairs: list[tuple[Row, Row]], lost: list[tuple[Row, Row, str]]
                  ) -> Confirmation:
        names = self._names(s)
        changes = [f"{_label(v['discipline'])} session {v['session_index']} "
                   f"({self.desk.local(a['start_at'])} with {names.get(a['provider_id'], '')}) "
                   f"was lost: {why}." for v, a, why in lost]
        before = {(v["discipline"], v["session_index"]): a for v, a in pairs}
        self._release(s, now, row["id"], "itinerary searched again")
        s.execute(delete(itinerary_visits).where(itinerary_visits.c.itinerary_id == row["id"]))
        ask = self._ask_of(row)
        held = self._search_and_hold(s, who, now, ask, 0, row["id"], fresh=False,
                                     extra_notes=changes)
        s.execute(update(itineraries).where(itineraries.c.id == row["id"]).values(
            revision=row["revision"] + 1))
        if isinstance(held, Unplaceable):
            self._unplaceable(s, who, now, ask, row["id"], [*changes, *held.reasons])
            view = self.view(s, now, row["id"])
            return Confirmation(view, False, [*changes, "No other itinerary fits: "
                                              + " ".join(held.reasons)])
        for v in held["visits"]:
            old = before.get((v["discipline"], v["session_index"]))
            if old and (old["start_at"], old["provider_id"]) != (v["start"], v["provider_id"]):
                changes.append(
                    f"{_label(v['discipline'])} session {v['session_index']} moves from "
                    f"{self.desk.local(old['start_at'])} with "
                    f"{names.get(old['provider_id'], '')} to {self.desk.local(v['start'])} "
                    f"with {v['provider_name']}.")
        self.runtime.audit.record(s, who, "research", "itinerary", resource_id=row["id"],
                                  patient_id=row["patient_id"])
        return Confirmation(held, False, changes)

    # --- cancel, expire, unplaceable -------------------------------------------------------

    def _release(self, s: Session, now: datetime, itinerary_id: str, reason: str) -> int:
        """Cancel the itinerary's holds (not its bookings): their time is free again."""
        a = appointments.c
        return s.execute(update(appointments).where(
            a.itinerary_id == itinerary_id, a.status.in_(domain.HOLD_STATUSES)).values(
            status="cancelled", cancel_reason=reason, updated_at=now)).rowcount

    def cancel(self, s: Session, who: Principal, now: datetime, itinerary_id: str,
               reason: str) -> Row:
        """Cancel the whole itinerary: holds are released, booked visits cancelled (each
        emits appointment.cancelled and its slot goes to the waitlist)."""
        row = self.row(s, itinerary_id, lock=True)
        if row["status"] in ("cancelled", "unplaceable"):
            raise Conflict(f"this itinerary is already {row['status']}")
        for _visit, appt in self._visits(s, itinerary_id):
            if appt["status"] in domain.ACTIVE_STATUSES:
                self.desk.cancel(s, who, now, appt["id"], reason)
        s.execute(update(itineraries).where(itineraries.c.id == itinerary_id).values(
            status="cancelled", hold_expires_at=None, updated_at=now))
        self.runtime.emit(s, "itinerary.cancelled", {
            "itinerary_id": itinerary_id, "referral_id": row["referral_id"],
            "patient_id": row["patient_id"], "reason": reason}, key=row["patient_id"])
        self.runtime.audit.record(s, who, "cancel", "itinerary", resource_id=itinerary_id,
                                  patient_id=row["patient_id"])
        return self.view(s, now, itinerary_id)

    def expire_holds(self, s: Session, now: datetime) -> int:
        """Release every itinerary whose hold has run out; how many were released."""
        i = itineraries.c
        ids = s.execute(select(i.id).where(i.status == "proposed", i.hold_expires_at <= now)
                        .with_for_update(skip_locked=True)).scalars().all()
        for itinerary_id in ids:
            self._release(s, now, itinerary_id, "itinerary hold expired")
            s.execute(update(itineraries).where(itineraries.c.id == itinerary_id).values(
                status="expired", updated_at=now))
        return len(ids)

    def _unplaceable(self, s: Session, who: Principal, now: datetime, ask: Ask,
                     itinerary_id: str, reasons: list[str]) -> None:
        """Say so (itinerary.unplaceable) and put the patient on the waitlist for each
        discipline of the pathway."""
        reasons = [r[:500] for r in dict.fromkeys(reasons)] or ["no itinerary fits"]
        s.execute(update(itineraries).where(itineraries.c.id == itinerary_id).values(
            status="unplaceable", reasons=reasons, hold_expires_at=None, updated_at=now))
        self.runtime.emit(s, "itinerary.unplaceable", {
            "referral_id": ask.referral_id, "patient_id": ask.patient_id, "reasons": reasons},
            key=ask.patient_id)
        for step in ask.pathway:
            self.desk.add_wish(s, who, now, {
                "patient_id": ask.patient_id, "discipline": step["discipline"],
                "visit_minutes": step["visit_minutes"], "priority": ask.priority,
                "earliest": max(ask.earliest, now).astimezone(self.tz).date(),
                "referral_id": ask.referral_id})

    # --- move one visit --------------------------------------------------------------------

    def _move_context(self, s: Session, now: datetime, itinerary_id: str, appointment_id: str,
                      reach: Callable[[Visit], list[datetime]], *, lock: bool = False
                      ) -> MoveContext:
        """What a move of one visit is checked against, built once: the single place both
        the move and the offered moves take their rules from, so the console can never
        offer a slot the move then refuses. `reach(visit)`: the moments the move may go
        to (the calendar and the patient's time are read over them and the plan)."""
        row = self.row(s, itinerary_id, lock=lock)
        if row["status"] not in ("proposed", "booked"):
            raise Conflict(f"a visit of a {row['status']} itinerary cannot be moved")
        pairs = self._visits(s, itinerary_id)
        plan = [Visit(v["discipline"], a["provider_id"], a["room_id"], a["start_at"],
                      a["end_at"], v["session_index"]) for v, a in pairs]
        index = next((k for k, (_v, a) in enumerate(pairs) if a["id"] == appointment_id), None)
        if index is None:
            raise NotFound(f"appointment {appointment_id} is not part of itinerary "
                           f"{itinerary_id}")
        ask = self._ask_of(row)
        moments = [v.start for v in plan] + reach(plan[index])
        calendar = self.calendar(s, now, [st["discipline"] for st in ask.pathway],
                                 max(now, min(moments)), max(moments) + timedelta(days=1))
        busy = self.patient_busy(s, now, replace_window(ask, moments),
                                 except_itinerary=itinerary_id)
        rules = self._rules(ask)
        if rules.fallback_tolerance_days and any(
                n.startswith(WIDENED_NOTE) for n in row["notes"]):
            # it was placed at the wider tolerance: check the move against that one
            rules = replace(rules, interval_tolerance_days=rules.fallback_tolerance_days)
        return MoveContext(row, plan, index, calendar, busy, rules,
                           CarePathway.from_payload(ask.pathway))

    def _moved(self, ctx: MoveContext, start: datetime, provider_id: str | None,
               room_id: str | None) -> Visit:
        """The visit as it would be at `start` (with this provider), in the room the move
        would take."""
        old = ctx.visit
        start = start.astimezone(UTC)
        moved = Visit(old.discipline, provider_id or old.provider_id, old.room_id, start,
                      start + (old.end - old.start), old.session_index)
        if ctx.calendar.rooms:
            moved = replace(moved, room_id=self._room_for(ctx.calendar, old, moved, room_id))
        return moved

    def move(self, s: Session, who: Principal, now: datetime, itinerary_id: str,
             appointment_id: str, cmd: Row) -> Row:
        """Move one visit (time, provider, room) only where the pathway's constraints still
        hold: order, gaps, intervals, continuity, room fitness, the patient's time."""
        start = cmd["start"].astimezone(UTC)
        ctx = self._move_context(s, now, itinerary_id, appointment_id, lambda _old: [start],
                                 lock=True)
        moved = self._moved(ctx, start, cmd.get("provider_id"), cmd.get("room_id"))
        problems = ctx.problems(moved)
        if problems:
            raise Conflict("the move breaks the itinerary's constraints: " + " ".join(problems),
                           errors={"start": problems})
        self.desk.reschedule(s, who, now, appointment_id, {
            "start": moved.start, "provider_id": moved.provider_id, "room_id": moved.room_id})
        s.execute(update(itineraries).where(itineraries.c.id == itinerary_id).values(
            updated_at=now))
        return self.view(s, now, itinerary_id)

    def moves(self, s: Session, who: Principal, now: datetime, itinerary_id: str,
              appointment_id: str, *, provider_id: str | None = None, days: int = 2,
              step_minutes: int = 30) -> list[Row]:
        """The moves of one visit that `move` would accept, within `days` of its day, on a
        grid of `step_minutes` from each clinic day's opening: what the console offers."""
        tz = self.tz

        def reach(old: Visit) -> list[datetime]:
            day = old.start.astimezone(tz).date()
            return [av.local_to_utc(day - timedelta(days=days), time(0), tz),
                    max(now, av.local_to_utc(day + timedelta(days=days), time(0), tz))]

        ctx = self._move_context(s, now, itinerary_id, appointment_id, reach)
        old = ctx.visit
        provider = provider_id or old.provider_id
        if provider != old.provider_id and not any(
                p["id"] == provider for p in self.desk.list_providers(
                    s, discipline=old.discipline)):
            raise InvalidInput(f"{provider} is not an active {_label(old.discipline)} "
                               "provider", field="query.provider_id")
        length = old.end - old.start
        first = old.start.astimezone(tz).date() - timedelta(days=days)
        options: list[Row] = []
        for k in range(2 * days + 1):
            bounds = ctx.calendar.bounds((first + timedelta(days=k)).toordinal())
            if bounds is None:
                continue
            opens, closes = (datetime.fromtimestamp(m * 60, UTC) for m in bounds)
            start = opens
            while start + length <= closes:
                if start > now and not (start == old.start and provider == old.provider_id):
                    moved = self._moved(ctx, start, provider, None)
                    if not ctx.problems(moved):
                        options.append({"start": moved.start, "end": moved.end,
                                        "provider_id": moved.provider_id,
                                        "room_id": moved.room_id})
                start += timedelta(minutes=step_minutes)
        self.runtime.audit.record(s, who, "moves", "itinerary", resource_id=itinerary_id,
                                  patient_id=ctx.row["patient_id"])
        return options

    def _room_for(self, calendar: ClinicCalendar, old: Visit, moved: Visit,
                  asked: str | None) -> str | None:
        """The room asked for; else the visit's own room if it is still free then; else
        the first fit free room."""
        if asked:
            return asked
        a, b = _minute(moved.start), _minute(moved.end)
        if old.room_id in calendar.rooms:
            also = [(_minute(old.start), _minute(old.end))]
            if moved.discipline in calendar.rooms[old.room_id].fit_for and \
                    calendar.room_is_free(old.room_id, a, b, also):
                return old.room_id
        return calendar.room_for(moved.discipline, calendar.day_of(a), a, b - a) or old.room_id

    # --- events in -------------------------------------------------------------------------

    def on_referral_accepted(self, s: Session, now: datetime, payload: Row) -> Row:
        """Propose an itinerary for an accepted referral by ourselves; if none fits, say so
        and waitlist the patient. A referral already proposed or booked is left alone."""
        i = itineraries.c
        existing = s.execute(select(i.id).where(
            i.referral_id == payload["referral_id"],
            i.status.in_(("proposed", "booked")))).scalar()
        if existing:
            return self.view(s, now, existing)
        who = Principal(subject=self.runtime.settings.service, role="service")
        ask = self.ask(now, {**payload, "due_by": _as_date(payload.get("due_by"))})
        itinerary_id = new_id()
        held = self._search_and_hold(s, who, now, ask, 0, itinerary_id, fresh=True)
        self.runtime.audit.record(s, who, "propose", "itinerary", resource_id=itinerary_id,
                                  patient_id=ask.patient_id)
        if isinstance(held, Unplaceable):
            if not s.execute(select(i.id).where(i.id == itinerary_id)).first():
                s.execute(insert(itineraries).values(**self._new_row(
                    itinerary_id, ask, who, now)))
            self._unplaceable(s, who, now, ask, itinerary_id, list(held.reasons))
        return self.view(s, now, itinerary_id)


_NO_SCORE = ScoreBreakdown(0, 0, 0, 0, 0, 0, 0.0)


def replace_window(ask: Ask, moments: list[datetime]) -> Ask:
    """The same ask over a window that covers the given moments (for the patient's time)."""
    return replace(ask, earliest=min([ask.earliest, *moments]),
                   latest=max([ask.latest, *moments]) + timedelta(days=1))


def taking_time(now: datetime) -> Any:
    """SQL: an appointment that takes its time now (booked or used, or held and the hold
    has not run out): the same rule as the desk's double-booking check."""
    a = appointments.c
    return or_(a.status.in_([st for st in domain.BLOCKING_STATUSES
                             if st not in domain.HOLD_STATUSES]),
               and_(a.status.in_(domain.HOLD_STATUSES),
                    or_(a.hold_expires_at.is_(None), a.hold_expires_at > now)))


def _planned(v: Row) -> Row:
    return {"appointment_id": v["appointment_id"], "discipline": v["discipline"],
            "provider_id": v["provider_id"], "provider_name": v["provider_name"],
            "room_id": v["room_id"], "room_name": v["room_name"],
            "start": v["start"].isoformat(), "end": v["end"].isoformat()}


def _label(discipline: str) -> str:
    return discipline.replace("_", " ").capitalize()


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


__all__ = ["Ask", "Confirmation", "Itineraries", "taking_time"]
