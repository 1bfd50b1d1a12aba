"""After a simulated run (faults and all), account for every referral, appointment, note
and notification: none lost, none duplicated.

Three witnesses are compared: the ledger (what the services answered the simulated
people), each service's own tables (read straight from its database, SQLAlchemy Core,
no pool kept) and the events on the topics (every record, from the beginning). The
outbox relay republishes after a crash, so the topics may carry an event twice: every
count here is of *distinct* event ids, and the inboxes are what must hold each once.

Usage: `checks = reconcile(ledger, db_urls, settings); print(table(checks))`.
"""

from __future__ import annotations

import importlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import MetaData, create_engine, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from shared import topics
from shared.config import Settings
from shared.kafka import read_records
from shared.messaging import add_messaging_tables
from simulator.ledger import Ledger

_messaging = add_messaging_tables(MetaData())
OUTBOX, INBOX = _messaging.outbox, _messaging.inbox
SAMPLE = 5  # ids shown in a check's detail

# What the simulator may call a visit's status, in the appointments table's words.
VISIT_STATUS = {"checked_in": "arrived", "completed": "fulfilled", "no_show": "noshow",
                "no-show": "noshow"}
# An itinerary whose hold lapsed reads `expired` through the API, `proposed` until the
# expiry loop has passed in the table: the same state.
ITINERARY_SAME = {"expired": "proposed"}
BOOKED_OR_LATER = ("booked", "arrived", "fulfilled", "noshow")


@dataclass
class Check:
    """One line of the reconciliation: `held` of the `tried` items hold."""

    name: str
    tried: int
    held: int
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.held == self.tried


@dataclass
class _Tally:
    """Counts items and keeps the first few failures of each kind for the detail."""

    name: str
    tried: int = 0
    failures: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def item(self, item_id: str, *problems: str | None) -> None:
        self.tried += 1
        found = [p for p in problems if p]
        if found:
            self.failures.setdefault(found[0], []).append(item_id)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def check(self) -> Check:
        failed = sum(len(v) for v in self.failures.values())
        parts = [f"{why}: {len(ids)} ({', '.join(ids[:SAMPLE])})"
                 for why, ids in self.failures.items()]
        return Check(self.name, self.tried, self.tried - failed, "; ".join(parts + self.notes))


# ------------------------------------------------------------------------------ topics

def read_topic(settings: Settings, topic: str, *, timeout_ms: int = 60_000
               ) -> list[tuple[str | None, dict[str, str], Any]]:
    """Every record on a (prefixed) topic, from the start, as (key, headers, value); the
    value is the parsed JSON, or the raw bytes if it is not JSON (a poison message).
    Never a partial read: a reconciliation of half a topic would report losses."""
    out: list[tuple[str | None, dict[str, str], Any]] = []
    for record in read_records(settings, topic, timeout_ms=timeout_ms, complete=True):
        try:
            value = json.loads(record.value)
        except Exception:
            value = record.value
        out.append((record.key.decode(errors="replace") if record.key else None,
                    {k: v.decode(errors="replace") for k, v in record.headers or []},
                    value))
    return out


@dataclass
class Topics:
    """A snapshot of every event topic (distinct events by id) and every dead-letter topic."""

    events: dict[str, dict[str, dict[str, Any]]]  # topic -> event id -> envelope
    records: dict[str, int]  # topic -> records, republished copies included
    dead: dict[str, list[tuple[dict[str, str], Any]]]  # service -> (headers, value)

    @classmethod
    def read(cls, settings: Settings, services: Iterable[str] = topics.SERVICES) -> Topics:
        events: dict[str, dict[str, dict[str, Any]]] = {}
        records: dict[str, int] = {}
        for topic in topics.EVENT_TOPICS:
            rows = read_topic(settings, topic)
            records[topic] = len(rows)
            events[topic] = {}
            for _key, _headers, value in rows:
                if isinstance(value, dict) and isinstance(value.get("id"), str):
                    events[topic].setdefault(value["id"], value)
        dead = {s: [(h, v) for _k, h, v in read_topic(settings, topics.dead_letter(s))]
                for s in services}
        return cls(events, records, dead)

    def of_type(self, topic: str, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.events[topic].values() if e.get("type") in types]

    def by(self, topic: str, event_type: str, key: str) -> dict[str, set[str]]:
        """Distinct event ids of one type, by a payload field (referral_id, ...)."""
        out: dict[str, set[str]] = defaultdict(set)
        for e in self.of_type(topic, event_type):
            value = (e.get("payload") or {}).get(key)
            if value is not None:
                out[str(value)].add(e["id"])
        return out

    def ids(self, *topic_names: str) -> set[str]:
        return {i for t in topic_names for i in self.events[t]}

    def parked(self, service: str, consumer: str) -> set[str]:
        """Event ids this consumer dead-lettered (a parked event is not lost: it is
        counted under dead letters, and replay puts it back)."""
        out = set()
        for headers, value in self.dead.get(service, []):
            if headers.get("dlq.consumer") == consumer and isinstance(value, dict):
                out.add(str(value.get("id")))
        return out


# --------------------------------------------------------------------------- consumers

@dataclass(frozen=True)
class Consumer:
    service: str
    group: str  # the inbox's `consumer` column: f"{service}.{subscription name}"
    topics: tuple[str, ...]
    types: frozenset[str]


def consumers_of(db_urls: Mapping[str, str], settings: Settings) -> list[Consumer]:
    """Each service's consumers, from its own worker's `subscriptions(runtime)`, so the
    list cannot drift from what runs. (The dashboard's read model, whose group changes
    with each rebuild, is not among them: it is a projection, not a clinic effect.)"""
    out = []
    for service, url in sorted(db_urls.items()):
        try:
            worker = importlib.import_module(f"services.{service}.worker")
            wiring = importlib.import_module(f"services.{service}.wiring")
        except ModuleNotFoundError:
            continue
        runtime = wiring.build_runtime(replace(settings, service=service, database_url=url))
        try:
            subscriptions = worker.subscriptions(runtime)
        finally:
            runtime.db.dispose()
        out += [Consumer(service, f"{service}.{s.name}", tuple(s.topics),
                         frozenset(s.handlers)) for s in subscriptions]
    return out


def _expected(consumer: Consumer, seen: Topics) -> set[str]:
    return {i for t in consumer.topics for i, e in seen.events.get(t, {}).items()
            if e.get("type") in consumer.types}


def inbox_counts(engine: Engine, group: str, event_type: str | None = None) -> Counter:
    """How many times a consumer's inbox holds each event id (more than once: applied
    twice), optionally of one type only."""
    stmt = select(INBOX.c.event_id, func.count().label("n")).where(INBOX.c.consumer == group)
    if event_type is not None:
        stmt = stmt.where(INBOX.c.event_type == event_type)
    with engine.connect() as conn:
        return Counter({r.event_id: r.n for r in conn.execute(
            stmt.group_by(INBOX.c.event_id))})


def unpublished(engine: Engine) -> int:
    """Outbox rows the relay has not yet published."""
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(OUTBOX)
                            .where(OUTBOX.c.published_at.is_(None))).scalar_one()


def _deliveries_due(engine: Engine) -> int:
    """Notifications the delivery loop is sending or should pick up now: while there are
    any, a row may turn `sent` after the topics were read (and look unannounced)."""
    from services.notifier.db import Notification

    n = Notification.__table__
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(n).where(
            (n.c.status == "sending")
            | ((n.c.status == "pending") & (n.c.next_attempt_at <= datetime.now(UTC))))
        ).scalar_one()


def unsettled(engines: Mapping[str, Engine], consumers: list[Consumer], settings: Settings
              ) -> tuple[list[str], Topics]:
    """What still moves: handled events not yet in an inbox, outbox rows not published,
    notifications due for delivery. The topics are read first and the outboxes last: a
    consumer that applies an event after the topics were read leaves rows in its outbox
    (or, once published, a longer topic at the next look; see `settle`)."""
    waiting = []
    seen = Topics.read(settings, engines)
    for c in consumers:
        try:
            missing = _expected(c, seen) - set(inbox_counts(engines[c.service], c.group)) \
                - seen.parked(c.service, c.group)
        except Exception as exc:
            waiting.append(f"{c.group} unreadable ({type(exc).__name__})")
            continue
        if missing:
            waiting.append(f"{c.group} inbox missing {len(missing)}")
    for service, engine in engines.items():
        try:
            n = unpublished(engine)
        except Exception as exc:  # the database is still away
            waiting.append(f"{service} unreadable ({type(exc).__name__})")
            continue
        if n:
            waiting.append(f"{service} outbox {n}")
    if "notifier" in engines:
        try:
            due = _deliveries_due(engines["notifier"])
        except Exception as exc:
            waiting.append(f"notifier unreadable ({type(exc).__name__})")
        else:
            if due:
                waiting.append(f"notifier deliveries due {due}")
    return waiting, seen


def settle(engines: Mapping[str, Engine], consumers: list[Consumer], settings: Settings,
           seconds: float) -> tuple[Check, Topics]:
    """Wait (polling about once a second) until the pipeline is quiet twice running with
    the same records on every topic, or give up and say what was still moving: the
    checks then run on what there is. One quiet look is not enough: an event applied
    and published between reading the topics and reading the outboxes would be missing
    from the snapshot the checks compare the databases with."""
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    before: dict[str, int] | None = None
    while True:
        waiting, seen = unsettled(engines, consumers, settings)
        if not waiting and seen.records == before:
            break
        if time.monotonic() >= deadline:
            if not waiting:
                waiting = ["topics still growing"]
            break
        before = None if waiting else seen.records
        time.sleep(1.0)
    took = f"{time.monotonic() - started:.1f}s"
    detail = f"after {took}" + (f": still {'; '.join(waiting)}" if waiting else "")
    return (Check("pipeline quiet (outboxes drained, deliveries done, inboxes caught up)",
                  1, int(not waiting), detail), seen)


# ------------------------------------------------------------------------------ checks

def _rows(engine: Engine, stmt: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(stmt))


def _one(ids: set[str] | None, what: str, n: int = 1) -> str | None:
    got = len(ids or ())
    return None if got == n else f"{what} x{got} (want {n})"


# Where the referrals service moves a referral by itself, on scheduling's events
# (itinerary.booked: scheduled; the first appointment.completed: in care); whether it did
# so exactly when it should is check_referral_effects' business.
_LATER_BY_EVENTS: dict[str, set[str]] = {"accepted": {"accepted", "scheduled", "in_care"}}


def check_referrals(ledger: Ledger, engine: Engine, seen: Topics) -> Check:
    """Each intake once (by its idempotency key), in the ledger's status, with exactly
    one referral.received and one status event per move in its history."""
    from services.referrals.db import HistoryRow, ReferralRow
    from services.referrals.domain import BREACH_ACTIONS
    from services.referrals.use_cases import _EVENT_FOR_ACTION

    referrals, history = ReferralRow.__table__, HistoryRow.__table__
    # breach risks are history lines that move nothing: one referral.breach_risk each
    per_action = {**_EVENT_FOR_ACTION, "breach_risk": "referral.breach_risk"}
    t = _Tally("referrals: each intake once, status as answered, one event per move")
    rows = {r.id: r for r in _rows(engine, select(referrals.c.id, referrals.c.status,
                                                  referrals.c.idempotency_key))}
    by_key = Counter(r.idempotency_key for r in rows.values() if r.idempotency_key)
    moves: dict[str, list[Any]] = defaultdict(list)
    for h in _rows(engine, select(history.c.referral_id, history.c.action)):
        moves[h.referral_id].append(h.action)
    received = seen.by(topics.REFERRALS, "referral.received", "referral_id")
    changed = seen.by(topics.REFERRALS, "referral.status_changed", "referral_id")
    specific = {a: seen.by(topics.REFERRALS, e, "referral_id") for a, e in per_action.items()}
    with ledger.lock:
        records = list(ledger.referrals.values())
    known = set()
    for rec in records:
        known.add(rec.referral_id)
        row = rows.get(rec.referral_id)
        if row is None:
            t.item(rec.referral_id, "missing from the database")
            continue
        acts = moves[rec.referral_id]
        status_moves = [a for a in acts if a not in BREACH_ACTIONS]
        t.item(
            rec.referral_id,
            None if row.idempotency_key == rec.idempotency_key
            else "stored under another idempotency key",
            None if by_key[rec.idempotency_key] == 1 else "intake stored more than once",
            None if rec.uncertain or row.status in _LATER_BY_EVENTS.get(rec.status,
                                                                       {rec.status})
            else f"status differs from the ledger ({rec.status} answered, {row.status})",
            _one(received.get(rec.referral_id), "referral.received"),
            _one(changed.get(rec.referral_id), "referral.status_changed", len(status_moves)),
            *(_one(specific[a].get(rec.referral_id), per_action[a],
                   acts.count(a)) for a in per_action))
    for rid in sorted(set(rows) - known):
        t.item(rid, "in the database, unknown to the ledger")
    return t.check()


def _appointment_rows(engine: Engine) -> dict[str, Any]:
    from services.scheduling.diary.db import appointments as a
    return {r.id: r for r in _rows(engine, select(
        a.c.id, a.c.patient_id, a.c.provider_id, a.c.status, a.c.start_at, a.c.end_at,
        a.c.hold_expires_at, a.c.itinerary_id, a.c.referral_id))}


def check_visits(ledger: Ledger, appts: dict[str, Any]) -> Check:
    t = _Tally("appointments: every answered visit stored in its status")
    with ledger.lock:
        visits = list(ledger.visits.values())
    for v in visits:
        row = appts.get(v.appointment_id)
        want = VISIT_STATUS.get(v.status, v.status)
        t.item(v.appointment_id,
               "missing from the database" if row is None else None,
               None if row is None or v.uncertain or row.status == want
               else f"status differs from the ledger ({v.status} answered)")
    return t.check()


def check_appointment_events(appts: dict[str, Any], seen: Topics) -> Check:
    """One event per transition an appointment went through, judged from where it is."""
    t = _Tally("appointment events: one per transition")
    by = {e: seen.by(topics.SCHEDULING, e, "appointment_id") for e in (
        "appointment.booked", "appointment.cancelled", "appointment.checked_in",
        "appointment.completed", "appointment.no_show")}
    confirmed = {v.get("appointment_id") for e in seen.of_type(topics.SCHEDULING,
                                                               "itinerary.booked")
                 for v in (e.get("payload") or {}).get("visits", [])}
    for aid, row in appts.items():
        n = {e: len(ids.get(aid, ())) for e, ids in by.items()}
        s = row.status
        if s == "cancelled":
            booked = 1 if (n["appointment.cancelled"] or aid in confirmed) else 0
            want = {"appointment.booked": booked, "appointment.cancelled": booked}
        else:
            booked = int(s in BOOKED_OR_LATER)
            want = {"appointment.booked": booked, "appointment.cancelled": 0}
        want["appointment.checked_in"] = int(s in ("arrived", "fulfilled"))
        want["appointment.completed"] = int(s == "fulfilled")
        want["appointment.no_show"] = int(s == "noshow")
        t.item(aid, *(None if n[e] == k else f"{e} x{n[e]} (want {k}, {s})"
                      for e, k in want.items()))
    orphans = set().union(*(set(ids) for ids in by.values())) - set(appts)
    for aid in sorted(orphans):
        t.item(aid, "event for an appointment not in the database")
    return t.check()


def check_itineraries(ledger: Ledger, engine: Engine, seen: Topics) -> Check:
    from services.scheduling.itineraries.db import itineraries as it

    t = _Tally("itineraries: status as answered, one itinerary.booked per booking")
    rows = {r.id: r for r in _rows(engine, select(it.c.id, it.c.status, it.c.referral_id))}
    booked = seen.by(topics.SCHEDULING, "itinerary.booked", "itinerary_id")
    cancelled = seen.by(topics.SCHEDULING, "itinerary.cancelled", "itinerary_id")
    with ledger.lock:
        records = {i.itinerary_id: i for i in ledger.itineraries.values()}
    for rec in records.values():
        row = rows.get(rec.itinerary_id)
        same = ITINERARY_SAME.get(rec.status, rec.status)
        t.item(rec.itinerary_id, "missing from the database" if row is None else None,
               None if row is None or rec.uncertain
               or ITINERARY_SAME.get(row.status, row.status) == same
               else f"status differs from the ledger ({rec.status} answered, {row.status})")
    for iid, row in rows.items():
        rec = records.get(iid)
        was_booked = row.status == "booked" or (
            rec is not None and rec.confirmed_at is not None and not rec.uncertain)
        n_booked = len(booked.get(iid, ()))
        ok_booked = n_booked == 1 if was_booked else (
            n_booked <= 1 if row.status == "cancelled" else n_booked == 0)
        t.item(f"{iid} (events)",
               None if ok_booked else f"itinerary.booked x{n_booked} ({row.status})",
               _one(cancelled.get(iid), "itinerary.cancelled", int(row.status == "cancelled")))
    for iid in sorted(set(booked) - set(rows)):
        t.item(iid, "itinerary.booked for an itinerary not in the database")
    return t.check()


def check_double_booking(appts: dict[str, Any], now: datetime | None = None) -> Check:
    """No two appointments that take their time overlap for one provider or one patient
    (what the exclusion constraints and BEGIN IMMEDIATE are there to refuse)."""
    now = now or datetime.now(UTC)
    t = _Tally("no double booking (provider, patient)")
    live = [r for r in appts.values()
            if r.status in ("booked", "arrived", "fulfilled")
            or (r.status in ("proposed", "pending")
                and (r.hold_expires_at is None or r.hold_expires_at > now))]
    clashing: set[str] = set()
    for who in ("provider_id", "patient_id"):
        groups: dict[str, list[Any]] = defaultdict(list)
        for r in live:
            groups[getattr(r, who)].append(r)
        for rows in groups.values():
            rows.sort(key=lambda r: r.start_at)
            latest = None
            for r in rows:
                if latest is not None and r.start_at < latest.end_at:
                    clashing.update((r.id, latest.id))
                if latest is None or r.end_at > latest.end_at:
                    latest = r
    for r in live:
        t.item(r.id, "overlaps another blocking appointment" if r.id in clashing else None)
    return t.check()


def check_referral_effects(ref_engine: Engine, sched_engine: Engine | None, seen: Topics
                           ) -> Check:
    """The referral desk applied scheduling's news once: one `schedule` and one
    `start_care` move at most, each event's move recorded once, and every referral whose
    itinerary was booked went on to scheduled (or further)."""
    from services.referrals.db import HistoryRow, ReferralRow

    h, r = HistoryRow.__table__, ReferralRow.__table__
    t = _Tally("referrals consumed itinerary.booked and appointment.completed once")
    hist: dict[str, list[Any]] = defaultdict(list)
    by_event: Counter = Counter()
    for row in _rows(ref_engine, select(h.c.referral_id, h.c.action, h.c.event_id)):
        hist[row.referral_id].append(row.action)
        if row.event_id:
            by_event[row.event_id] += 1
    status = {row.id: row.status for row in _rows(ref_engine, select(r.c.id, r.c.status))}
    booked_for: set[str] = set()
    if sched_engine is not None:
        from services.scheduling.itineraries.db import itineraries as it
        booked_for = {row.referral_id for row in _rows(sched_engine, select(
            it.c.referral_id).where(it.c.status == "booked", it.c.referral_id.is_not(None)))}
    completed_for = set(seen.by(topics.SCHEDULING, "appointment.completed", "referral_id"))
    for rid in sorted(status):
        acts = hist[rid]
        t.item(rid,
               None if acts.count("schedule") <= 1 else f"scheduled x{acts.count('schedule')}",
               None if acts.count("start_care") <= 1
               else f"into care x{acts.count('start_care')}",
               None if rid not in booked_for or "schedule" in acts
               else f"itinerary booked but referral {status[rid]}",
               None if rid not in completed_for or "start_care" in acts
               or status[rid] in ("discharged", "cancelled")
               else f"visit completed but referral {status[rid]}")
    for event_id, n in by_event.items():
        if n > 1:
            t.item(event_id, f"one event recorded as {n} moves")
    return t.check()


def check_care_team(engine: Engine, seen: Topics) -> Check:
    """Every booked provider (and accepting specialist) is on the patient's care team
    once, unless the referral was discharged before the booking arrived."""
    from services.notes.db import care_team, discharged_referrals

    t = _Tally("notes care team: one member row per booking")
    rows = Counter((r.patient_id, r.member_id, r.referral_key) for r in _rows(engine, select(
        care_team.c.patient_id, care_team.c.member_id, care_team.c.referral_key)))
    discharged = {r.referral_id for r in _rows(engine, select(discharged_referrals.c.referral_id))}
    wanted: set[tuple[str, str, str]] = set()
    for e in seen.of_type(topics.SCHEDULING, "appointment.booked"):
        p = e["payload"]
        wanted.add((p["patient_id"], p["provider_id"], p.get("referral_id") or ""))
    for e in seen.of_type(topics.REFERRALS, "referral.accepted"):
        p = e["payload"]
        wanted.add((p["patient_id"], p["accepted_by"], p["referral_id"]))
    for key in sorted(wanted):
        n = rows.get(key, 0)
        t.item("/".join(key), None if n == 1 or (n == 0 and key[2] in discharged)
               else f"member rows x{n}")
    for key in rows:
        if key not in wanted:
            t.item("/".join(key), "member without a booking or acceptance")
    return t.check()


def check_inboxes(engines: Mapping[str, Engine], consumers: list[Consumer], seen: Topics
                  ) -> Check:
    """Every consumer holds each event it handles at most once, and at least once."""
    t = _Tally("inboxes: every handled event exactly once per consumer")
    parked_total = 0
    for c in consumers:
        inbox = inbox_counts(engines[c.service], c.group)
        expected = _expected(c, seen)
        parked = seen.parked(c.service, c.group) - set(inbox)
        parked_total += len(parked & expected)
        on_topics = seen.ids(*c.topics)
        for event_id in sorted(expected | set(inbox)):
            n = inbox.get(event_id, 0)
            t.item(f"{c.group}:{event_id}",
                   None if n <= 1 else "handled more than once",
                   None if n or event_id in parked else "never handled",
                   None if event_id in on_topics else "handled but not on its topics")
    if parked_total:
        t.note(f"{parked_total} dead-lettered (see dead letters)")
    return t.check()


def check_notes(ledger: Ledger, engine: Engine, seen: Topics) -> Check:
    from services.notes.db import notes

    t = _Tally("notes: status as answered, one note.signed per signed note")
    rows = {r.id: r for r in _rows(engine, select(notes.c.id, notes.c.status, notes.c.signed_at,
                                                  notes.c.amends_note_id))}
    signed = seen.by(topics.NOTES, "note.signed", "note_id")
    amended = seen.by(topics.NOTES, "note.amended", "note_id")
    with ledger.lock:
        records = list(ledger.notes.values())
    for rec in records:
        row = rows.get(rec.note_id)
        t.item(rec.note_id, "missing from the database" if row is None else None,
               None if row is None or rec.uncertain or row.status == rec.status
               else f"status differs from the ledger ({rec.status} answered, {row.status})")
    for nid, row in rows.items():
        was_signed = row.signed_at is not None
        t.item(f"{nid} (events)",
               _one(signed.get(nid), "note.signed", int(was_signed and not row.amends_note_id)),
               _one(amended.get(nid), "note.amended", int(was_signed and bool(row.amends_note_id))))
    for nid in sorted(set(signed) - set(rows)):
        t.item(nid, "note.signed for a note not in the database")
    return t.check()


def notification_rows(engine: Engine) -> list[Any]:
    from services.notifier.db import Notification

    n = Notification.__table__
    return _rows(engine, select(n.c.id, n.c.dedupe_key, n.c.event_id, n.c.recipient_id,
                                n.c.channel, n.c.template, n.c.status, n.c.provisional))


def check_notifications(rows: list[Any], seen: Topics) -> Check:
    """Each event's notifications planned once per recipient, and none from nowhere. A
    provisional in-app row (recipient unknown then) sent before their contact came may
    stand beside the real one, so: at least one row, at most one per channel, at most
    one not provisional."""
    t = _Tally("notifications: one per (event, recipient), each from an event")
    planned: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for r in rows:
        planned[(r.dedupe_key, r.recipient_id, r.template)].append(r)

    def want(event_id: str, recipient: str, template: str) -> None:
        got = planned.get((event_id, recipient, template), [])
        channels = Counter(r.channel for r in got)
        t.item(f"{template}:{event_id}:{recipient}",
               "no notification" if not got else None,
               "twice on one channel" if any(v > 1 for v in channels.values()) else None,
               "more than one real row" if sum(not r.provisional for r in got) > 1 else None)

    for e in seen.of_type(topics.SCHEDULING, "itinerary.booked"):
        want(e["id"], e["payload"]["patient_id"], "itinerary_booked")
    for e in seen.of_type(topics.SCHEDULING, "appointment.cancelled"):
        want(e["id"], e["payload"]["patient_id"], "appointment_cancelled")
        want(e["id"], e["payload"]["provider_id"], "appointment_cancelled")
    for e in seen.of_type(topics.NOTES, "note.signed"):
        p = e["payload"]
        for member in dict.fromkeys(p.get("notify") or []):
            if member != p["author_id"]:
                want(e["id"], member, "note_signed")
    sources = seen.ids(topics.REFERRALS, topics.SCHEDULING, topics.NOTES)
    for r in rows:
        t.item(r.id, None if r.event_id in sources else "notification without a source event")
    return t.check()


def check_sent(rows: list[Any], seen: Topics) -> Check:
    t = _Tally("notifications sent: one notification.sent each")
    events = seen.by(topics.NOTIFICATIONS, "notification.sent", "notification_id")
    ids = {r.id for r in rows}
    for r in rows:
        if r.status == "sent":
            t.item(r.id, _one(events.get(r.id), "notification.sent"))
        elif r.id in events:
            t.item(r.id, f"notification.sent but the row is {r.status}")
    for nid in sorted(set(events) - ids):
        t.item(nid, "notification.sent for no notification row")
    return t.check()


def check_mailbox(rows: list[Any], mailbox: Any) -> Check:
    """Every email sent arrived. Receiving one twice is the documented crash window
    (sent, then killed before marking it sent); receivers dedupe on Message-ID."""
    t = _Tally("mailbox: every sent email arrived")
    arrived = Counter(mailbox.ids())
    for r in rows:
        if r.status == "sent" and r.channel == "email":
            t.item(r.id, None if arrived[r.id] else "never arrived")
    twice = [i for i, n in arrived.items() if n > 1]
    if twice:
        t.note(f"{len(twice)} arrived more than once ({', '.join(twice[:SAMPLE])})")
    return t.check()


def check_dead_letters(seen: Topics) -> Check:
    counts = {s: len(v) for s, v in seen.dead.items()}
    detail = ", ".join(f"{topics.dead_letter(s)}: {n}" for s, n in counts.items())
    return Check("dead letters (counted, not judged)", len(counts), len(counts), detail)


# --------------------------------------------------------------------------- the whole

def reconcile(ledger: Ledger, db_urls: dict[str, str], settings: Settings, *,
              mailbox: object | None = None, settle_seconds: float = 120.0) -> list[Check]:
    """Wait for the pipeline to be quiet, then run every check whose services were given."""
    engines = {s: create_engine(u, poolclass=NullPool) for s, u in db_urls.items()}
    try:
        consumers = consumers_of(db_urls, settings)
        quiet, seen = settle(engines, consumers, settings, settle_seconds)
        checks = [quiet]
        sched = engines.get("scheduling")
        appts = _appointment_rows(sched) if sched is not None else None
        if "referrals" in engines:
            checks.append(check_referrals(ledger, engines["referrals"], seen))
        if sched is not None and appts is not None:
            checks += [check_visits(ledger, appts), check_appointment_events(appts, seen),
                       check_itineraries(ledger, sched, seen), check_double_booking(appts)]
        if "referrals" in engines:
            checks.append(check_referral_effects(engines["referrals"], sched, seen))
        if "notes" in engines:
            checks += [check_care_team(engines["notes"], seen),
                       check_notes(ledger, engines["notes"], seen)]
        checks.append(check_inboxes(engines, consumers, seen))
        if "notifier" in engines:
            rows = notification_rows(engines["notifier"])
            checks += [check_notifications(rows, seen), check_sent(rows, seen)]
            if mailbox is not None:
                checks.append(check_mailbox(rows, mailbox))
        checks.append(check_dead_letters(seen))
        return checks
    finally:
        for engine in engines.values():
            engine.dispose()


def table(checks: list[Check]) -> str:
    """The checks as a fixed-width table, one line each, failures marked."""
    width = max([len(c.name) for c in checks] + [5])
    lines = [f"{'check':<{width}}  {'tried':>6}  {'held':>6}  result  detail"]
    for c in checks:
        lines.append(f"{c.name:<{width}}  {c.tried:>6}  {c.held:>6}  "
                     f"{'HELD  ' if c.ok else 'FAILED'}  {c.detail}")
    return "\n".join(lines)
