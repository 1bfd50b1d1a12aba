"""The scheduling desk: the use cases (register a provider, book, cancel, move, offer a
freed slot to the waitlist) over the service's tables. Each runs inside the caller's
transaction; the rules themselves live in `domain.py` and `availability.py`.

Double booking: the overlap check below runs after any expired holds in the way are
cancelled and before the insert, in one transaction. On SQLite that transaction holds
the write lock from its first statement (BEGIN IMMEDIATE), so the check cannot go stale;
on PostgreSQL a concurrent insert may slip past the check, and the exclusion constraints
refuse it (translated to the same 409).
"""

from __future__ import annotations

import logging
import random
import time as _time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from services.scheduling import availability as av
from services.scheduling import domain
from services.scheduling.db import (
    EXCLUSIONS,
    appointments,
    exceptions,
    patient_links,
    providers,
    rooms,
    series,
    template_blocks,
    waitlist,
)
from shared import patient_links as links
from shared.auth import Principal
from shared.errors import Conflict, InvalidInput, NotFound
from shared.runtime import Runtime

T = TypeVar("T")
log = logging.getLogger(__name__)
SYSTEM = Principal(subject="scheduling", role="service", name="scheduling service")
Row = dict[str, Any]
RETRYABLE_SQLSTATES = ("40P01", "40001")  # deadlock detected, serialization failure
# Exceptions ended longer ago than this leave provider.capacity_changed: a consumer's
# window (the dashboard's week) starts at most a week before the event is read.
CAPACITY_HISTORY = timedelta(days=14)
CAPACITY_MAX_EXCEPTIONS = 1000


def new_id() -> str:
    return str(uuid.uuid4())


class Desk:
    """The use cases, bound to one service's runtime, clinic time zone and clock."""

    def __init__(self, runtime: Runtime, *, clock: Callable[[], datetime] | None = None) -> None:
        self.runtime = runtime
        self.tz = ZoneInfo(runtime.settings.clinic_timezone)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.offer_hours = float(runtime.settings.setting("SCHEDULING_OFFER_HOURS", "24"))
        self.check_in_opens = domain.check_in_window(float(runtime.settings.setting(
            "SCHEDULING_CHECK_IN_HOURS", str(domain.DEFAULT_CHECK_IN_HOURS))))

    # --- transactions ------------------------------------------------------------------

    def run(self, work: Callable[[Session, datetime], T], *, attempts: int = 8) -> T:
        """One transaction with a fixed `now`; retried when PostgreSQL picks it as a
        deadlock victim (two bookings waiting on each other's constraint checks). Fifty
        clients racing for one slot can make the same transaction a victim several
        times, so the waits grow and are jittered (four quick fixed retries ran out in
        CI and answered 503)."""
        for attempt in range(attempts):
            try:
                with self.runtime.db.transaction() as session:
                    return work(session, self.clock())
            except DBAPIError as exc:
                code = getattr(getattr(exc, "orig", None), "sqlstate", None)
                if code not in RETRYABLE_SQLSTATES or attempt == attempts - 1:
                    raise
                log.info("transaction retried", extra={"sqlstate": code,
                                                       "attempt": attempt + 1})
                _time.sleep(random.uniform(0.005, min(0.5, 0.01 * 2 ** attempt)))
        raise AssertionError("unreachable")

    def _emit(self, s: Session, event_type: str, payload: Row, key: str) -> None:
        self.runtime.emit(s, event_type, payload, key=key)

    def _audit(self, s: Session, who: Principal, action: str, appt: Row | None = None, *,
               patient_id: str | None = None, resource: str = "appointment") -> None:
        self.runtime.audit.record(s, who, action, resource,
                                  resource_id=appt["id"] if appt else None,
                                  patient_id=patient_id or (appt or {}).get("patient_id"))

    def local(self, moment: datetime) -> str:
        return moment.astimezone(self.tz).strftime("%a %d %b %Y %H:%M")

    # --- providers and rooms -----------------------------------------------------------

    def provider(self, s: Session, provider_id: str) -> Row:
        row = s.execute(select(providers).where(providers.c.id == provider_id)).mappings().first()
        if row is None:
            raise NotFound(f"no provider {provider_id}")
        return dict(row)

    def list_providers(self, s: Session, *, discipline: str | None = None,
                       active: bool | None = True) -> list[Row]:
        q = select(providers).order_by(providers.c.name)
        if discipline:
            q = q.where(providers.c.discipline == discipline)
        if active is not None:
            q = q.where(providers.c.active.is_(active))
        return [dict(r) for r in s.execute(q).mappings()]

    def save_provider(self, s: Session, data: Row, now: datetime,
                      provider_id: str | None = None) -> Row:
        """Create or change a provider; the notifier learns their contact either way."""
        if provider_id is None:
            row = {"id": new_id(), "visit_types": [], "email": None, "phone": None,
                   "active": True, "created_at": now, **data, "updated_at": now}
            domain.check_discipline(row["discipline"])
            s.execute(insert(providers).values(**row))
        else:
            row = {**self.provider(s, provider_id), **data, "updated_at": now}
            domain.check_discipline(row["discipline"])
            s.execute(update(providers).where(providers.c.id == provider_id).values(
                **{k: v for k, v in row.items() if k != "id"}))
        self._emit(s, "provider.registered", {
            "provider_id": row["id"], "name": row["name"], "discipline": row["discipline"],
            "email": row["email"], "phone": row["phone"], "active": row["active"]},
            key=row["id"])
        return row

    def room(self, s: Session, room_id: str) -> Row:
        row = s.execute(select(rooms).where(rooms.c.id == room_id)).mappings().first()
        if row is None:
            raise NotFound(f"no room {room_id}")
        return dict(row)

    def list_rooms(self, s: Session) -> list[Row]:
        return [dict(r) for r in s.execute(select(rooms).order_by(rooms.c.name)).mappings()]

    def save_room(self, s: Session, data: Row, now: datetime, room_id: str | None = None) -> Row:
        if room_id is None:
            row = {"id": new_id(), "active": True, "fit_for": [], "created_at": now, **data}
            taken = s.execute(select(rooms.c.id).where(rooms.c.name == row["name"])).first()
            if taken:
                raise Conflict(f"there is already a room called {row['name']!r}")
            s.execute(insert(rooms).values(**row))
            return row
        row = {**self.room(s, room_id), **data}
        s.execute(update(rooms).where(rooms.c.id == room_id).values(
            **{k: v for k, v in row.items() if k != "id"}))
        return row

    # --- templates and exceptions ------------------------------------------------------

    def set_template(self, s: Session, provider_id: str, blocks: Sequence[Row],
                     now: datetime | None = None) -> list[Row]:
        """Replace a provider's weekly template; blocks of one weekday may not overlap.
        Publishes the provider's capacity in the same transaction."""
        provider = self.provider(s, provider_id)
        parsed = [av.WeeklyBlock(b["weekday"], b["start"], b["end"], b.get("valid_from"),
                                 b.get("valid_until")) for b in blocks]
        for i, a in enumerate(parsed):
            if a.end <= a.start:
                raise InvalidInput("a block ends after it starts", field=f"blocks.{i}")
            for b in parsed[:i]:
                if (a.weekday == b.weekday and a.start < b.end and b.start < a.end
                        and _validity_overlaps(a, b)):
                    raise InvalidInput("two blocks of one weekday overlap", field=f"blocks.{i}")
        s.execute(delete(template_blocks).where(template_blocks.c.provider_id == provider_id))
        if parsed:
            s.execute(insert(template_blocks), [
                {"provider_id": provider_id, "weekday": b.weekday, "start_time": b.start,
                 "end_time": b.end, "valid_from": b.valid_from, "valid_until": b.valid_until}
                for b in parsed])
        self.publish_capacity(s, [provider], now or self.clock())
        return self.template(s, provider_id)

    def template(self, s: Session, provider_id: str) -> list[Row]:
        blocks = self.blocks(s, [provider_id]).get(provider_id, [])
        return [{"weekday": b.weekday, "start": b.start, "end": b.end,
                 "valid_from": b.valid_from, "valid_until": b.valid_until} for b in blocks]

    def blocks(self, s: Session, provider_ids: Sequence[str]) -> dict[str, list[av.WeeklyBlock]]:
        q = select(template_blocks).where(template_blocks.c.provider_id.in_(provider_ids)) \
            .order_by(template_blocks.c.weekday, template_blocks.c.start_time)
        out: dict[str, list[av.WeeklyBlock]] = {}
        for r in s.execute(q).mappings():
            out.setdefault(r["provider_id"], []).append(av.WeeklyBlock(
                r["weekday"], r["start_time"], r["end_time"], r["valid_from"], r["valid_until"]))
        return out

    def add_exception(self, s: Session, who: Principal, data: Row, now: datetime) -> Row:
        """Leave, training or sickness of one provider, or a closure of the whole clinic;
        given as instants, or as whole local days (first_day..last_day)."""
        if data.get("provider_id"):
            self.provider(s, data["provider_id"])
        elif data["kind"] != "closure":
            raise InvalidInput("only a clinic closure has no provider", field="provider_id")
        if data.get("first_day"):
            last_day = data.get("last_day") or data["first_day"]
            if last_day < data["first_day"]:
                raise InvalidInput("last_day is before first_day", field="last_day")
            span = av.local_days(data["first_day"], last_day, self.tz)
        elif data.get("start") and data.get("end"):
            if data["end"] <= data["start"]:  # before an Interval, which refuses it too
                raise InvalidInput("an exception ends after it starts", field="end")
            span = av.Interval(data["start"].astimezone(UTC), data["end"].astimezone(UTC))
        else:
            raise InvalidInput("give first_day (and last_day), or start and end", field="start")
        row = {"id": new_id(), "provider_id": data.get("provider_id"), "kind": data["kind"],
               "start_at": span.start, "end_at": span.end, "note": data.get("note", ""),
               "created_by": who.subject, "created_at": now}
        s.execute(insert(exceptions).values(**row))
        self._capacity_changed(s, row["provider_id"], now)
        return row

    def list_exceptions(self, s: Session, *, provider_id: str | None, span: av.Interval
                        ) -> list[Row]:
        q = select(exceptions).where(exceptions.c.start_at < span.end,
                                     exceptions.c.end_at > span.start)
        if provider_id:
            q = q.where(or_(exceptions.c.provider_id == provider_id,
                            exceptions.c.provider_id.is_(None)))
        return [dict(r) for r in s.execute(q.order_by(exceptions.c.start_at)).mappings()]

    def remove_exception(self, s: Session, exception_id: str,
                         now: datetime | None = None) -> None:
        found = s.execute(select(exceptions.c.provider_id).where(
            exceptions.c.id == exception_id)).first()
        if found is None or not s.execute(
                delete(exceptions).where(exceptions.c.id == exception_id)).rowcount:
            raise NotFound(f"no exception {exception_id}")
        self._capacity_changed(s, found[0], now or self.clock())

    def _capacity_changed(self, s: Session, provider_id: str | None, now: datetime) -> None:
        """A provider's leave changes their capacity; a clinic closure everyone's."""
        if provider_id:
            self.publish_capacity(s, [self.provider(s, provider_id)], now)
        else:
            self.publish_capacity(s, self.list_providers(s, active=None), now)

    def publish_capacity(self, s: Session, provider_rows: Sequence[Row], now: datetime
                         ) -> None:
        """Emit provider.capacity_changed (keyed by provider id) for each provider: the
        whole weekly template and every exception (own leave and clinic closures) that
        ends after CAPACITY_HISTORY before now, so the dashboard can count the minutes
        available in any window from now on without reading this service's tables."""
        if not provider_rows:
            return
        since = now - CAPACITY_HISTORY
        ids = [p["id"] for p in provider_rows]
        blocks = self.blocks(s, ids)
        q = select(exceptions).where(
            exceptions.c.end_at > since,
            or_(exceptions.c.provider_id.in_(ids), exceptions.c.provider_id.is_(None))
        ).order_by(exceptions.c.start_at, exceptions.c.id)
        time_off: dict[str | None, list[Row]] = {}
        for r in s.execute(q).mappings():
            time_off.setdefault(r["provider_id"], []).append(
                {"exception_id": r["id"], "kind": r["kind"],
                 "clinic_wide": r["provider_id"] is None,
                 "start": r["start_at"], "end": r["end_at"]})
        for p in provider_rows:
            own = sorted([*time_off.get(p["id"], []), *time_off.get(None, [])],
                         key=lambda e: (e["start"], e["exception_id"]))
            self._emit(s, "provider.capacity_changed", {
                "provider_id": p["id"], "discipline": p["discipline"],
                "timezone": str(self.tz),
                "blocks": [{"weekday": b.weekday, "start": b.start, "end": b.end,
                            "valid_from": b.valid_from, "valid_until": b.valid_until}
                           for b in blocks.get(p["id"], [])],
                "exceptions": own[:CAPACITY_MAX_EXCEPTIONS],
                "exceptions_since": since}, key=p["id"])

    def closed(self, s: Session, provider_ids: Sequence[str], span: av.Interval
               ) -> dict[str, list[av.Interval]]:
        """Each provider's leave, plus clinic closures for everyone."""
        q = select(exceptions.c.provider_id, exceptions.c.start_at, exceptions.c.end_at).where(
            exceptions.c.start_at < span.end, exceptions.c.end_at > span.start,
            or_(exceptions.c.provider_id.in_(provider_ids), exceptions.c.provider_id.is_(None)))
        out: dict[str, list[av.Interval]] = {p: [] for p in provider_ids}
        for pid, start, end in s.execute(q):
            for target in ([pid] if pid else provider_ids):
                out.setdefault(target, []).append(av.Interval(start, end))
        return out

    def busy(self, s: Session, provider_ids: Sequence[str], span: av.Interval, now: datetime
             ) -> dict[str, list[av.Interval]]:
        a = appointments.c
        q = select(a.provider_id, a.start_at, a.end_at).where(
            a.provider_id.in_(provider_ids), a.start_at < span.end, a.end_at > span.start,
            _blocking(now))
        out: dict[str, list[av.Interval]] = {p: [] for p in provider_ids}
        for pid, start, end in s.execute(q):
            out[pid].append(av.Interval(start, end))
        return out

    # --- availability ------------------------------------------------------------------

    def availability(self, s: Session, now: datetime, *, first_day: date, last_day: date,
                     minutes: int, discipline: str | None = None,
                     provider_id: str | None = None, visit_type: str = "",
                     step_minutes: int = 15, with_room: bool = False) -> list[Row]:
        """Free time and fitting slots per provider over local dates first..last; with
        `with_room`, only the slots where a room fit for the visit is free too."""
        if last_day < first_day:
            raise InvalidInput("to is before from", field="to")
        if (last_day - first_day).days > 184:
            raise InvalidInput("ask for at most six months at a time", field="to")
        if provider_id:
            chosen = [self.provider(s, provider_id)]
        else:
            chosen = self.list_providers(s, discipline=discipline)
        if discipline:
            chosen = [p for p in chosen if p["discipline"] == discipline]
        if visit_type:
            chosen = [p for p in chosen if not p["visit_types"] or visit_type in p["visit_types"]]
        ids = [p["id"] for p in chosen]
        if not ids:
            return []
        span = av.local_days(first_day, last_day, self.tz)
        blocks, closed, busy = (self.blocks(s, ids), self.closed(s, ids, span),
                                self.busy(s, ids, span, now))
        all_rooms = [r for r in self.list_rooms(s) if r["active"]] if with_room else []
        room_busy = self.room_busy(s, [r["id"] for r in all_rooms], span, now)
        out = []
        for p in chosen:
            free = av.free_time(blocks.get(p["id"], []), first_day, last_day, self.tz,
                                closed=closed[p["id"]], busy=busy[p["id"]], not_before=now)
            if with_room:
                fitting = [r["id"] for r in all_rooms
                           if domain.room_fits(r["fit_for"], p["discipline"], visit_type)]
                found = {slot for rid in fitting for slot in av.slots(
                    av.subtract(free, room_busy[rid]), minutes, self.tz,
                    step_minutes=step_minutes)}
                fitting_slots = sorted(found)
            else:
                fitting_slots = av.slots(free, minutes, self.tz, step_minutes=step_minutes)
            out.append({"provider_id": p["id"], "provider_name": p["name"],
                        "discipline": p["discipline"], "free": free, "slots": fitting_slots})
        return out

    def room_busy(self, s: Session, room_ids: Sequence[str], span: av.Interval,
                  now: datetime) -> dict[str, list[av.Interval]]:
        a = appointments.c
        out: dict[str, list[av.Interval]] = {r: [] for r in room_ids}
        if not room_ids:
            return out
        q = select(a.room_id, a.start_at, a.end_at).where(
            a.room_id.in_(room_ids), a.start_at < span.end, a.end_at > span.start,
            _blocking(now))
        for rid, start, end in s.execute(q):
            out[rid].append(av.Interval(start, end))
        return out

    def free_room(self, s: Session, now: datetime, visit: av.Interval, discipline: str,
                  visit_type: str) -> Row:
        """The first room (by name) fit for the visit and free for all of it."""
        candidates = [r for r in self.list_rooms(s) if r["active"]
                      and domain.room_fits(r["fit_for"], discipline, visit_type)]
        busy = self.room_busy(s, [r["id"] for r in candidates], visit, now)
        for room in candidates:
            if not any(b.overlaps(visit) for b in busy[room["id"]]):
                return room
        raise Conflict(f"no room fit for {visit_type or discipline} is free from "
                       f"{self.local(visit.start)} to {visit.end.astimezone(self.tz):%H:%M}")

    def working_free(self, s: Session, provider_id: str, visit: av.Interval) -> list[av.Interval]:
        """The provider's working time around a visit, minus leave and closures."""
        first = visit.start.astimezone(self.tz).date()
        last = visit.end.astimezone(self.tz).date()
        span = av.local_days(first, last, self.tz)
        return av.free_time(self.blocks(s, [provider_id]).get(provider_id, []), first, last,
                            self.tz, closed=self.closed(s, [provider_id], span)[provider_id])

    # --- booking -----------------------------------------------------------------------

    def appointment(self, s: Session, appointment_id: str, *, lock: bool = False) -> Row:
        q = select(appointments).where(appointments.c.id == appointment_id)
        row = s.execute(q.with_for_update() if lock else q).mappings().first()
        if row is None:
            raise NotFound(f"no appointment {appointment_id}")
        return dict(row)

    def _place(self, s: Session, now: datetime, *, provider: Row, visit: av.Interval,
               patient_id: str, room: Row | None, visit_type: str,
               moving: str | None = None) -> None:
        """Refuse (409) unless the provider works then and provider, room and patient
        are all free; the caller's insert or update follows in the same transaction."""
        domain.check_not_past(visit, now)
        if not provider["active"]:
            raise Conflict(f"provider {provider['name']} is not taking appointments")
        domain.check_provider_offers(provider["discipline"], provider["visit_types"], visit_type)
        if room is not None:
            if not room["active"]:
                raise Conflict(f"room {room['name']} is out of use")
            domain.check_room_fit(room["name"], room["fit_for"], provider["discipline"],
                                  visit_type)
        if not av.fits(self.working_free(s, provider["id"], visit), visit.start, visit.end):
            raise Conflict(f"{provider['name']} is not working from {self.local(visit.start)} "
                           f"to {self.local(visit.end)} (outside their template, on leave or "
                           "the clinic is closed)")
        self._release_expired_holds(s, now, visit, provider["id"],
                                    room["id"] if room else None, patient_id)
        clash = self._clash(s, now, visit, provider["id"], room["id"] if room else None,
                            patient_id, exclude=moving)
        if clash:
            raise Conflict(clash)

    def _release_expired_holds(self, s: Session, now: datetime, visit: av.Interval,
                               provider_id: str, room_id: str | None, patient_id: str) -> None:
        a = appointments.c
        s.execute(update(appointments).where(
            a.status.in_(domain.HOLD_STATUSES), a.hold_expires_at.is_not(None),
            a.hold_expires_at <= now, a.start_at < visit.end, a.end_at > visit.start,
            _any_resource(provider_id, room_id, patient_id),
        ).values(status="cancelled", cancel_reason="hold expired", updated_at=now))

    def _clash(self, s: Session, now: datetime, visit: av.Interval, provider_id: str,
               room_id: str | None, patient_id: str, exclude: str | None) -> str | None:
        a = appointments.c
        q = select(a.provider_id, a.room_id, a.patient_id, a.start_at, a.end_at).where(
            a.start_at < visit.end, a.end_at > visit.start, _blocking(now),
            _any_resource(provider_id, room_id, patient_id))
        if exclude:
            q = q.where(a.id != exclude)
        for pid, rid, pat, start, end in s.execute(q.limit(5)):
            when = f"{self.local(start)}-{end.astimezone(self.tz):%H:%M}"
            if pid == provider_id:
                return f"the provider is already booked {when}"
            if room_id and rid == room_id:
                return f"the room is already in use {when}"
            if pat == patient_id:
                return f"the patient already has an appointment {when}"
        return None

    def _write(self, s: Session, stmt: Any) -> None:
        """Run an insert/update under a savepoint; an exclusion violation is a 409."""
        try:
            with s.begin_nested():
                s.execute(stmt)
        except IntegrityError as exc:
            name = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
            if name in EXCLUSIONS:
                raise Conflict(f"the {EXCLUSIONS[name]} already has an appointment overlapping "
                               "that time") from None
            raise

    def book(self, s: Session, who: Principal, now: datetime, cmd: Row, *,
             series_id: str | None = None, waitlist_id: str | None = None,
             audit: bool = True) -> Row:
        """Book (or hold, status proposed/pending with an expiry) one visit."""
        provider = self.provider(s, cmd["provider_id"])
        visit = domain.visit_interval(cmd["start"], cmd["minutes"])
        if cmd.get("room_id"):
            room = self.room(s, cmd["room_id"])
        elif cmd.get("assign_room"):
            room = self.free_room(s, now, visit, provider["discipline"],
                                  cmd.get("visit_type", ""))
        else:
            room = None
        status = cmd.get("status", "booked")
        if status not in ("booked", *domain.HOLD_STATUSES):
            raise InvalidInput("a new appointment is booked, proposed or pending", field="status")
        hold_until = None
        if status in domain.HOLD_STATUSES:
            hold_until = now + timedelta(minutes=cmd.get("hold_minutes") or 30)
        self._place(s, now, provider=provider, visit=visit, patient_id=cmd["patient_id"],
                    room=room, visit_type=cmd.get("visit_type", ""))
        row = {"id": new_id(), "patient_id": cmd["patient_id"], "provider_id": provider["id"],
               "room_id": room["id"] if room else None, "discipline": provider["discipline"],
               "visit_type": cmd.get("visit_type", ""), "start_at": visit.start,
               "end_at": visit.end, "status": status, "hold_expires_at": hold_until,
               "series_id": series_id, "referral_id": cmd.get("referral_id"),
               "itinerary_id": cmd.get("itinerary_id"), "waitlist_id": waitlist_id,
               "cancel_reason": None, "changed_by": who.subject, "created_at": now,
               "updated_at": now}
        self._write(s, insert(appointments).values(**row))
        if status == "booked":
            self._emit(s, "appointment.booked",
                       {**self._visit(s, row, provider, room), "visit_type": row["visit_type"]},
                       key=row["patient_id"])
        if audit:
            self._audit(s, who, "book", row)
        return row

    def _visit(self, s: Session, appt: Row, provider: Row | None = None,
               room: Row | None = None) -> Row:
        """The visit as every appointment.* event carries it (ids, no patient names)."""
        provider = provider or self.provider(s, appt["provider_id"])
        if room is None and appt["room_id"]:
            room = self.room(s, appt["room_id"])
        return {"appointment_id": appt["id"], "patient_id": appt["patient_id"],
                "provider_id": appt["provider_id"], "provider_name": provider["name"],
                "discipline": appt["discipline"], "room_id": appt["room_id"],
                "room_name": room["name"] if room else "",
                "start": appt["start_at"].isoformat(), "end": appt["end_at"].isoformat(),
                "referral_id": appt["referral_id"], "itinerary_id": appt["itinerary_id"],
                "series_id": appt["series_id"]}

    def cancel(self, s: Session, who: Principal, now: datetime, appointment_id: str,
               reason: str) -> Row:
        appt = self.appointment(s, appointment_id, lock=True)
        was_booked = appt["status"] not in domain.HOLD_STATUSES
        appt["status"] = domain.move(appt["status"], "cancelled")
        appt.update(cancel_reason=reason, changed_by=who.subject, updated_at=now)
        s.execute(update(appointments).where(appointments.c.id == appointment_id).values(
            status="cancelled", cancel_reason=reason, changed_by=who.subject, updated_at=now))
        if was_booked:
            self._emit(s, "appointment.cancelled",
                       {**self._visit(s, appt), "reason": reason, "by": who.subject},
                       key=appt["patient_id"])
        self._audit(s, who, "cancel", appt)
        if appt["waitlist_id"]:
            s.execute(update(waitlist).where(waitlist.c.id == appt["waitlist_id"],
                                             waitlist.c.status == "offered")
                      .values(status="waiting", offered_appointment_id=None,
                              offer_expires_at=None))
        self.offer_waitlist(s, who, now, self.provider(s, appt["provider_id"]),
                            av.Interval(appt["start_at"], appt["end_at"]),
                            skip=[appt["waitlist_id"]] if appt["waitlist_id"] else [])
        return appt

    def reschedule(self, s: Session, who: Principal, now: datetime, appointment_id: str,
                   cmd: Row) -> Row:
        """Move one visit (of a series too) to a new time, provider or room."""
        appt = self.appointment(s, appointment_id, lock=True)
        if not domain.can_reschedule(appt["status"]):
            raise Conflict(f"an appointment that is {appt['status']} cannot be moved")
        old = av.Interval(appt["start_at"], appt["end_at"])
        minutes = cmd.get("minutes") or int(old.minutes)
        provider = self.provider(s, cmd.get("provider_id") or appt["provider_id"])
        if provider["discipline"] != appt["discipline"]:
            raise InvalidInput("a visit moves to a provider of the same discipline",
                               field="provider_id")
        room_id = cmd["room_id"] if "room_id" in cmd else appt["room_id"]
        room = self.room(s, room_id) if room_id else None
        visit = domain.visit_interval(cmd["start"], minutes)
        self._place(s, now, provider=provider, visit=visit, patient_id=appt["patient_id"],
                    room=room, visit_type=appt["visit_type"], moving=appointment_id)
        changes = {"provider_id": provider["id"], "room_id": room_id, "start_at": visit.start,
                   "end_at": visit.end, "changed_by": who.subject, "updated_at": now}
        self._write(s, update(appointments).where(appointments.c.id == appointment_id)
                    .values(**changes))
        previous_provider = appt["provider_id"]
        appt.update(changes)
        if appt["status"] == "booked":
            self._emit(s, "appointment.rescheduled", {
                **self._visit(s, appt, provider, room), "previous_start": old.start.isoformat(),
                "previous_end": old.end.isoformat(), "previous_provider_id": previous_provider,
                "by": who.subject}, key=appt["patient_id"])
        self._audit(s, who, "reschedule", appt)
        freed = self.provider(s, previous_provider)
        still_taken = [visit] if previous_provider == provider["id"] else []
        for opening in av.subtract([old], still_taken):
            self.offer_waitlist(s, who, now, freed, opening)
        return appt

    def change_status(self, s: Session, who: Principal, now: datetime, appointment_id: str,
                      target: str) -> Row:
        """Check in (arrived), complete (fulfilled), no-show, or confirm a hold (booked)."""
        appt = self.appointment(s, appointment_id, lock=True)
        if target == "booked" and appt["hold_expires_at"] and appt["hold_expires_at"] <= now:
            raise Conflict("the hold on this slot has expired; book it again")
        status = domain.move(appt["status"], target)
        domain.check_visit_moment(target, appt["start_at"], now,
                                  check_in_opens=self.check_in_opens, tz=self.tz)
        appt["status"] = status
        appt.update(changed_by=who.subject, updated_at=now,
                    hold_expires_at=None if target == "booked" else appt["hold_expires_at"])
        s.execute(update(appointments).where(appointments.c.id == appointment_id).values(
            status=target, changed_by=who.subject, updated_at=now,
            hold_expires_at=appt["hold_expires_at"]))
        event = {"booked": "appointment.booked", "arrived": "appointment.checked_in",
                 "fulfilled": "appointment.completed", "noshow": "appointment.no_show"}[target]
        payload = self._visit(s, appt)
        if target == "booked":
            payload["visit_type"] = appt["visit_type"]
        self._emit(s, event, payload, key=appt["patient_id"])
        self._audit(s, who, target, appt)
        return appt

    def list_appointments(self, s: Session, *, provider_id: str | None = None,
                          patient_id: str | None = None, status: str | None = None,
                          start: datetime | None = None, end: datetime | None = None,
                          limit: int = 50, offset: int = 0) -> list[Row]:
        a = appointments.c
        q = select(appointments).order_by(a.start_at, a.id)
        if provider_id:
            q = q.where(a.provider_id == provider_id)
        if patient_id:  # with those of everyone linked with the patient
            q = q.where(a.patient_id.in_(links.group(s, patient_links, patient_id)))
        if status:
            q = q.where(a.status == status)
        if start:
            q = q.where(a.end_at > start)
        if end:
            q = q.where(a.start_at < end)
        return [dict(r) for r in s.execute(q.limit(limit).offset(offset)).mappings()]

    # --- series ------------------------------------------------------------------------

    def book_series(self, s: Session, who: Principal, now: datetime, cmd: Row) -> Row:
        """Book every occurrence that can be placed; report the ones that cannot."""
        provider = self.provider(s, cmd["provider_id"])
        planned = domain.plan_series(cmd["first_start"], cmd["minutes"], cmd["interval_days"],
                                     cmd["count"], self.tz)
        series_id = new_id()
        s.execute(insert(series).values(
            id=series_id, patient_id=cmd["patient_id"], provider_id=provider["id"],
            visit_type=cmd.get("visit_type", ""), minutes=cmd["minutes"],
            interval_days=cmd["interval_days"], count=cmd["count"], unplaced=[],
            created_by=who.subject, created_at=now))
        booked, unplaced = [], []
        for i, visit in enumerate(planned):
            try:
                with s.begin_nested():
                    booked.append(self.book(s, who, now, {
                        **cmd, "start": visit.start, "status": "booked"},
                        series_id=series_id, audit=False))
            except (Conflict, InvalidInput) as exc:
                unplaced.append({"occurrence": i + 1, "start": visit.start.isoformat(),
                                 "end": visit.end.isoformat(), "reason": exc.detail})
        if not booked:
            raise Conflict("no occurrence of the series could be placed",
                           errors={f"occurrence.{u['occurrence']}": [u["reason"]]
                                   for u in unplaced})
        s.execute(update(series).where(series.c.id == series_id).values(unplaced=unplaced))
        self._audit(s, who, "book_series", patient_id=cmd["patient_id"], resource="series")
        return {"id": series_id, "patient_id": cmd["patient_id"],
                "provider_id": provider["id"], "booked": booked, "unplaced": unplaced}

    def get_series(self, s: Session, series_id: str) -> Row:
        row = s.execute(select(series).where(series.c.id == series_id)).mappings().first()
        if row is None:
            raise NotFound(f"no series {series_id}")
        appts = [dict(r) for r in s.execute(
            select(appointments).where(appointments.c.series_id == series_id)
            .order_by(appointments.c.start_at)).mappings()]
        return {"id": row["id"], "patient_id": row["patient_id"],
                "provider_id": row["provider_id"], "booked": appts, "unplaced": row["unplaced"]}

    # --- waitlist ----------------------------------------------------------------------

    def add_wish(self, s: Session, who: Principal, now: datetime, data: Row) -> Row:
        domain.check_discipline(data["discipline"])
        if data.get("earliest") and data.get("latest") and data["latest"] < data["earliest"]:
            raise InvalidInput("latest is before earliest", field="latest")
        if data.get("day_start") and data.get("day_end") and data["day_end"] <= data["day_start"]:
            raise InvalidInput("day_end is not after day_start", field="day_end")
        if data.get("provider_id"):
            p = self.provider(s, data["provider_id"])
            if p["discipline"] != data["discipline"]:
                raise InvalidInput("that provider is of another discipline", field="provider_id")
        row = {"id": new_id(), "provider_id": None, "visit_type": "", "priority": "routine",
               "earliest": None, "latest": None, "weekdays": [], "day_start": None,
               "day_end": None, "referral_id": None, **data, "status": "waiting",
               "offered_appointment_id": None, "offer_expires_at": None,
               "created_by": who.subject, "created_at": now}
        s.execute(insert(waitlist).values(**row))
        self._audit(s, who, "add", row, resource="waitlist")
        return row

    def wish(self, s: Session, wish_id: str) -> Row:
        row = s.execute(select(waitlist).where(waitlist.c.id == wish_id)).mappings().first()
        if row is None:
            raise NotFound(f"no waitlist entry {wish_id}")
        return dict(row)

    def list_wishes(self, s: Session, *, discipline: str | None = None,
                    status: str | None = None) -> list[Row]:
        q = select(waitlist).order_by(waitlist.c.created_at)
        if discipline:
            q = q.where(waitlist.c.discipline == discipline)
        if status:
            q = q.where(waitlist.c.status == status)
        return [dict(r) for r in s.execute(q).mappings()]

    def offer_waitlist(self, s: Session, who: Principal, now: datetime, provider: Row,
                       opening: av.Interval, *, skip: Iterable[str] = ()) -> Row | None:
        """Offer a freed slot to the best-matching waiting patient: hold it for them
        (a proposed appointment that expires) and emit waitlist.offered."""
        if opening.start <= now or not provider["active"]:
            return None
        w = waitlist.c
        rows = s.execute(select(waitlist).where(
            w.discipline == provider["discipline"],
            or_(w.status == "waiting",
                and_(w.status == "offered", w.offer_expires_at <= now)))).mappings().all()
        skipped = set(skip)
        wishes = [_wish(r) for r in rows if r["id"] not in skipped]
        ranked = domain.rank_waitlist(wishes, opening, provider["discipline"], provider["id"],
                                      self.tz)
        expires = min(now + timedelta(hours=self.offer_hours), opening.start)
        for wish, visit in ranked:
            row = next(r for r in rows if r["id"] == wish.id)
            try:
                with s.begin_nested():
                    appt = self.book(s, who, now, {
                        "patient_id": wish.patient_id, "provider_id": provider["id"],
                        "start": visit.start, "minutes": wish.visit_minutes,
                        "visit_type": row["visit_type"], "status": "proposed",
                        "hold_minutes": (expires - now).total_seconds() / 60,
                        "referral_id": row["referral_id"]}, waitlist_id=wish.id, audit=False)
            except (Conflict, InvalidInput):
                continue  # that patient is busy then, or the slot no longer fits them
            s.execute(update(waitlist).where(w.id == wish.id).values(
                status="offered", offered_appointment_id=appt["id"],
                offer_expires_at=appt["hold_expires_at"]))
            self._emit(s, "waitlist.offered", {
                "waitlist_id": wish.id, "patient_id": wish.patient_id,
                "discipline": provider["discipline"], "provider_id": provider["id"],
                "provider_name": provider["name"], "start": visit.start.isoformat(),
                "end": visit.end.isoformat(),
                "offer_expires_at": appt["hold_expires_at"].isoformat()}, key=wish.patient_id)
            self._audit(s, who, "offer", {"id": wish.id, "patient_id": wish.patient_id},
                        resource="waitlist")
            return {**row, "status": "offered", "offered_appointment_id": appt["id"],
                    "offer_expires_at": appt["hold_expires_at"]}
        return None

    def answer_offer(self, s: Session, who: Principal, now: datetime, wish_id: str,
                     accept: bool) -> Row:
        """The patient takes the offered slot (it is booked) or turns it down (it goes to
        the next best match and they keep waiting)."""
        row = self.wish(s, wish_id)
        if row["status"] != "offered" or not row["offered_appointment_id"]:
            raise Conflict("this waitlist entry has no open offer")
        appt_id = row["offered_appointment_id"]
        if accept:
            appt = self.change_status(s, who, now, appt_id, "booked")
            s.execute(update(waitlist).where(waitlist.c.id == wish_id).values(status="booked"))
            return {**row, "status": "booked", "appointment": appt}
        appt = self.appointment(s, appt_id, lock=True)
        s.execute(update(waitlist).where(waitlist.c.id == wish_id).values(
            status="waiting", offered_appointment_id=None, offer_expires_at=None))
        if appt["status"] in domain.HOLD_STATUSES:
            s.execute(update(appointments).where(appointments.c.id == appt_id).values(
                status="cancelled", cancel_reason="waitlist offer declined",
                changed_by=who.subject, updated_at=now))
            self.offer_waitlist(s, who, now, self.provider(s, appt["provider_id"]),
                                av.Interval(appt["start_at"], appt["end_at"]), skip=[wish_id])
        return {**row, "status": "waiting", "offered_appointment_id": None,
                "offer_expires_at": None}

    def expire_holds(self, s: Session, now: datetime, *, limit: int = 200) -> int:
        """Release holds past their expiry (for a periodic job): an unanswered waitlist
        offer goes back to waiting and its slot to the next best match."""
        a = appointments.c
        q = select(appointments).where(a.status.in_(domain.HOLD_STATUSES),
                                       a.hold_expires_at.is_not(None),
                                       a.hold_expires_at <= now).order_by(a.start_at)
        expired = [dict(r) for r in s.execute(q.limit(limit).with_for_update()).mappings()]
        for appt in expired:
            s.execute(update(appointments).where(a.id == appt["id"]).values(
                status="cancelled", cancel_reason="hold expired", updated_at=now))
            if appt["waitlist_id"]:
                s.execute(update(waitlist).where(
                    waitlist.c.id == appt["waitlist_id"],
                    waitlist.c.offered_appointment_id == appt["id"]).values(
                    status="waiting", offered_appointment_id=None, offer_expires_at=None))
                self.offer_waitlist(s, SYSTEM, now, self.provider(s, appt["provider_id"]),
                                    av.Interval(appt["start_at"], appt["end_at"]),
                                    skip=[appt["waitlist_id"]])
        return len(expired)

    def remove_wish(self, s: Session, who: Principal, wish_id: str) -> None:
        row = self.wish(s, wish_id)
        s.execute(update(waitlist).where(waitlist.c.id == wish_id).values(status="removed"))
        self._audit(s, who, "remove", row, resource="waitlist")


def _blocking(now: datetime) -> Any:
    """SQL: the appointment takes its time now (booked, or held and not expired)."""
    a = appointments.c
    return or_(a.status.in_(("booked", "arrived", "fulfilled")),
               and_(a.status.in_(domain.HOLD_STATUSES),
                    or_(a.hold_expires_at.is_(None), a.hold_expires_at > now)))


def _any_resource(provider_id: str, room_id: str | None, patient_id: str) -> Any:
    a = appointments.c
    terms = [a.provider_id == provider_id, a.patient_id == patient_id]
    if room_id:
        terms.append(a.room_id == room_id)
    return or_(*terms)


def _validity_overlaps(a: av.WeeklyBlock, b: av.WeeklyBlock) -> bool:
    return ((a.valid_until is None or b.valid_from is None or b.valid_from <= a.valid_until)
            and (b.valid_until is None or a.valid_from is None or a.valid_from <= b.valid_until))


def _wish(r: Any) -> domain.Wish:
    return domain.Wish(
        id=r["id"], patient_id=r["patient_id"], discipline=r["discipline"],
        visit_minutes=r["visit_minutes"], priority=r["priority"], created_at=r["created_at"],
        provider_id=r["provider_id"], earliest=r["earliest"], latest=r["latest"],
        weekdays=tuple(r["weekdays"] or ()), day_start=r["day_start"], day_end=r["day_end"])
