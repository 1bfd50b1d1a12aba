"""The dashboard's read model, as pure rules: how each clinic event changes the records
the dashboard keeps, and how the clinic's figures follow from those records.

Nothing here touches Flask, SQLAlchemy or Kafka. The worker applies `changes()` through
the database; `Snapshot.apply()` applies the very same rules in memory, which is how a
test proves that a rebuild from the topics gives the same figures.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared import availability as av
from shared.errors import InvalidInput
from shared.events.vocabulary import CHANNELS, DISCIPLINES, PRIORITIES, REFERRAL_STATUSES

CLOSED_STATUSES = ("discharged", "rejected", "cancelled")
NO_SHOW_WINDOW_DAYS = 30
ATTENDANCE_OUTCOMES = ("checked_in", "completed", "no_show")

APPOINTMENT_STATUS = {
    "appointment.booked": "booked",
    "appointment.rescheduled": "booked",
    "appointment.cancelled": "cancelled",
    "appointment.checked_in": "checked_in",
    "appointment.completed": "completed",
    "appointment.no_show": "no_show",
}

# Every event type the read model listens to, by the topic's domain.
REFERRAL_EVENTS = ("referral.received", "referral.status_changed", "referral.breach_risk")
SCHEDULING_EVENTS = (*APPOINTMENT_STATUS, "itinerary.booked", "provider.registered",
                     "provider.capacity_changed")
NOTIFICATION_EVENTS = ("notification.sent", "notification.failed")
SAFETY_ALERT_EVENTS = ("patient.safety_alert", "patient.safety_alert_escalated",
                       "patient.safety_alert_acknowledged", "patient.safety_alert_closed")
NOTES_EVENTS = (*SAFETY_ALERT_EVENTS, "patient.break_glass")
EVENT_TYPES = REFERRAL_EVENTS + SCHEDULING_EVENTS + NOTIFICATION_EVENTS + NOTES_EVENTS
RECENT_BREAK_GLASS = 20  # the dashboard lists the latest break-glass uses

# A safety alert's life only moves forward: a late or replayed earlier step never
# reopens an acknowledged or closed alert.
ALERT_OPEN, ALERT_ACKNOWLEDGED, ALERT_CLOSED = "open", "acknowledged", "closed"
_ALERT_RANK = {ALERT_OPEN: 0, ALERT_ACKNOWLEDGED: 1, ALERT_CLOSED: 2}


def as_utc(value: datetime | str) -> datetime:
    """Events carry ISO strings; SQLite hands back naive datetimes. Both mean UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_date(value: date | str | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(value)


@dataclass(frozen=True)
class Referral:
    referral_id: str
    status: str
    priority: str | None
    condition: str
    received_at: datetime
    due_by: date | None
    updated_at: datetime


@dataclass(frozen=True)
class Appointment:
    appointment_id: str
    patient_id: str
    referral_id: str | None
    provider_id: str
    provider_name: str
    discipline: str
    start: datetime
    end: datetime
    status: str
    updated_at: datetime


@dataclass(frozen=True)
class Provider:
    provider_id: str
    name: str
    discipline: str
    active: bool
    updated_at: datetime


@dataclass(frozen=True)
class Capacity:
    """What scheduling last said a provider can work: the weekly template (local wall
    times in `timezone`) and the time off it (leave and clinic closures, UTC)."""

    provider_id: str
    discipline: str
    timezone: str
    blocks: tuple[av.WeeklyBlock, ...]
    closed: tuple[av.Interval, ...]
    updated_at: datetime


@dataclass(frozen=True)
class Notification:
    notification_id: str
    outcome: str
    channel: str
    event_type: str
    reason: str
    updated_at: datetime


@dataclass(frozen=True)
class BreachRisk:
    """The latest `referral.breach_risk` of a referral: ids, dates and the reason only.
    Whether it still stands is worked out with the referral's status and first visit."""

    referral_id: str
    reason: str
    priority: str | None
    due_by: date
    first_visit_at: datetime | None
    detected_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SafetyAlert:
    """Where a safety alert is in its life, and since when: the alert's id, times and
    counts only. No patient, note, measure, severity or text: the dashboard is for
    running the clinic (are alerts being answered?), not for reading clinical detail."""

    alert_id: str
    status: str
    raised_at: datetime | None  # None only if its raise was never seen (a late join)
    escalations: int
    acknowledged_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class BreakGlass:
    """One break-glass use (`patient.break_glass`): ids and times only; the reason typed
    stays in the notes service's audit trail."""

    access_id: str
    patient_id: str
    actor_id: str
    discipline: str | None
    opened_at: datetime
    expires_at: datetime
    updated_at: datetime


Record = (Referral | Appointment | Provider | Capacity | Notification | BreachRisk
          | SafetyAlert | BreakGlass)
Lookup = Callable[[type, str], Any]


def _newer(current: Record | None, at: datetime) -> bool:
    """Last writer wins by the event's time, so a late or replayed older event is inert."""
    return current is None or at >= current.updated_at


def changes(event_type: str, payload: Mapping[str, Any], occurred_at: datetime,
            lookup: Lookup) -> list[Record]:
    """The records an event creates or replaces; `lookup(kind, id)` gives what is known."""
    at = as_utc(occurred_at)
    if event_type == "referral.received":
        current = lookup(Referral, payload["referral_id"])
        if current is not None:
            return []  # a status change already said more than receipt does
        return [Referral(payload["referral_id"], "received", None, payload["condition"],
                         as_utc(payload["received_at"]), None, at)]
    if event_type == "referral.status_changed":
        current = lookup(Referral, payload["referral_id"])
        if not _newer(current, at):
            return []
        return [Referral(payload["referral_id"], payload["to_status"],
                         payload.get("priority") or (current.priority if current else None),
                         payload["condition"], as_utc(payload["received_at"]),
                         as_date(payload.get("due_by")) or (current.due_by if current else None),
                         at)]
    if event_type == "referral.breach_risk":
        if not _newer(lookup(BreachRisk, payload["referral_id"]), at):
            return []
        first = payload.get("first_visit_at")
        return [BreachRisk(payload["referral_id"], payload["reason"], payload.get("priority"),
                           as_date(payload["due_by"]),  # type: ignore[arg-type]
                           as_utc(first) if first else None,
                           as_utc(payload["detected_at"]), at)]
    if event_type in APPOINTMENT_STATUS:
        current = lookup(Appointment, payload["appointment_id"])
        if not _newer(current, at):
            return []
        return [_appointment(payload, APPOINTMENT_STATUS[event_type], at, current)]
    if event_type == "itinerary.booked":
        made: list[Record] = []
        for visit in payload["visits"]:
            if visit.get("appointment_id") and lookup(Appointment,
                                                      visit["appointment_id"]) is None:
                made.append(_appointment({**visit, "patient_id": payload["patient_id"],
                                          "referral_id": payload.get("referral_id")},
                                         "booked", at, None))
        return made
    if event_type == "provider.registered":
        if not _newer(lookup(Provider, payload["provider_id"]), at):
            return []
        return [Provider(payload["provider_id"], payload["name"], payload["discipline"],
                         bool(payload.get("active", True)), at)]
    if event_type == "provider.capacity_changed":
        if not _newer(lookup(Capacity, payload["provider_id"]), at):
            return []
        return [capacity_of(payload, at)]
    if event_type in SAFETY_ALERT_EVENTS:
        return [safety_alert_after(event_type, payload,
                                   lookup(SafetyAlert, payload["alert_id"]), at)]
    if event_type == "patient.break_glass":
        if lookup(BreakGlass, payload["access_id"]) is not None:
            return []
        return [BreakGlass(payload["access_id"], payload["patient_id"], payload["actor_id"],
                           payload.get("discipline"), as_utc(payload["opened_at"]),
                           as_utc(payload["expires_at"]), at)]
    if event_type in NOTIFICATION_EVENTS:
        if not _newer(lookup(Notification, payload["notification_id"]), at):
            return []
        outcome = "sent" if event_type == "notification.sent" else "failed"
        return [Notification(payload["notification_id"], outcome, payload["channel"],
                             payload["event_type"], payload.get("reason", ""), at)]
    return []


def safety_alert_after(event_type: str, payload: Mapping[str, Any],
                       current: SafetyAlert | None, at: datetime) -> SafetyAlert:
    """An alert's record after one of its events (v1 and v2 raises alike). Steps arrive
    in order on the patient's key, but a replay or a rebuild may repeat one: the status
    never goes back, the first raise time and the highest escalation count stand."""
    alert = current or SafetyAlert(payload["alert_id"], ALERT_OPEN, None, 0, None, None, at)
    status = alert.status
    changed: dict[str, Any] = {}
    if event_type == "patient.safety_alert":
        raised = as_utc(payload["raised_at"])
        if alert.raised_at is None or raised < alert.raised_at:
            changed["raised_at"] = raised
    elif event_type == "patient.safety_alert_escalated":
        changed["escalations"] = max(alert.escalations, int(payload["escalation"]))
        if alert.raised_at is None:
            changed["raised_at"] = as_utc(payload["raised_at"])
    elif event_type == "patient.safety_alert_acknowledged":
        changed["acknowledged_at"] = alert.acknowledged_at or as_utc(payload["acknowledged_at"])
        status = ALERT_ACKNOWLEDGED
    else:  # patient.safety_alert_closed
        changed["closed_at"] = alert.closed_at or as_utc(payload["closed_at"])
        status = ALERT_CLOSED
    if _ALERT_RANK[status] > _ALERT_RANK[alert.status]:
        changed["status"] = status
    return replace(alert, **changed, updated_at=max(alert.updated_at, at))


def safety_alert_figures(snap: Snapshot, now: datetime) -> dict[str, Any]:
    """Open (unacknowledged) alerts and how long the oldest has waited; those
    acknowledged and not yet closed. Counts and ages only."""
    waiting = sorted((a for a in snap.safety_alerts.values()
                      if a.status == ALERT_OPEN and a.raised_at is not None),
                     key=lambda a: a.raised_at or now)
    unknown = sum(1 for a in snap.safety_alerts.values()
                  if a.status == ALERT_OPEN and a.raised_at is None)
    oldest = waiting[0].raised_at if waiting else None
    return {
        "open": len(waiting) + unknown,
        "open_escalated": sum(1 for a in waiting if a.escalations > 0),
        "oldest_open_raised_at": oldest.isoformat() if oldest else None,
        "oldest_open_minutes": (max(0, int((now - oldest).total_seconds() // 60))
                                if oldest else None),
        "acknowledged_not_closed": sum(1 for a in snap.safety_alerts.values()
                                       if a.status == ALERT_ACKNOWLEDGED),
        "closed": sum(1 for a in snap.safety_alerts.values() if a.status == ALERT_CLOSED),
    }


def capacity_of(payload: Mapping[str, Any], at: datetime) -> Capacity:
    """A provider.capacity_changed payload as a record; an unknown time zone is refused
    (dead-lettered) rather than counted against a wrong clock."""
    try:
        ZoneInfo(payload["timezone"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {payload['timezone']!r}",
                           field="timezone") from exc
    blocks = tuple(av.WeeklyBlock(
        int(b["weekday"]), _as_time(b["start"]), _as_time(b["end"]),
        as_date(b.get("valid_from")), as_date(b.get("valid_until")))
        for b in payload["blocks"])
    closed = tuple(av.Interval(as_utc(e["start"]), as_utc(e["end"]))
                   for e in payload["exceptions"])
    return Capacity(payload["provider_id"], payload["discipline"], payload["timezone"],
                    blocks, closed, at)


def _as_time(value: time | str) -> time:
    return value if isinstance(value, time) else time.fromisoformat(value)


def available_minutes(capacity: Capacity, first_day: date, last_day: date) -> float:
    """Minutes of the template laid out on the local dates first_day..last_day, minus
    leave and closures (overlapping ones counted once). Wall times are kept across a
    daylight-saving change, so such a week's minutes are the template's, not +-60."""
    tz = ZoneInfo(capacity.timezone)
    working = av.working_intervals(capacity.blocks, first_day, last_day, tz)
    return sum(iv.minutes for iv in av.subtract(working, capacity.closed))


def _appointment(visit: Mapping[str, Any], status: str, at: datetime,
                 current: Appointment | None) -> Appointment:
    return Appointment(
        visit["appointment_id"], visit["patient_id"],
        visit.get("referral_id") or (current.referral_id if current else None),
        visit["provider_id"], visit.get("provider_name") or "", visit["discipline"],
        as_utc(visit["start"]), as_utc(visit["end"]), status, at)


@dataclass
class Snapshot:
    """Every record of the read model, by kind and id."""

    referrals: dict[str, Referral] = field(default_factory=dict)
    appointments: dict[str, Appointment] = field(default_factory=dict)
    providers: dict[str, Provider] = field(default_factory=dict)
    capacities: dict[str, Capacity] = field(default_factory=dict)
    notifications: dict[str, Notification] = field(default_factory=dict)
    breach_risks: dict[str, BreachRisk] = field(default_factory=dict)
    safety_alerts: dict[str, SafetyAlert] = field(default_factory=dict)
    break_glass: dict[str, BreakGlass] = field(default_factory=dict)

    def _table(self, kind: type) -> dict[str, Any]:
        return {Referral: self.referrals, Appointment: self.appointments,
                Provider: self.providers, Capacity: self.capacities,
                Notification: self.notifications, BreachRisk: self.breach_risks,
                SafetyAlert: self.safety_alerts, BreakGlass: self.break_glass}[kind]

    def lookup(self, kind: type, key: str) -> Any:
        return self._table(kind).get(key)

    def put(self, record: Record) -> None:
        self._table(type(record))[_key(record)] = record

    def apply(self, event_type: str, payload: Mapping[str, Any], occurred_at: datetime) -> None:
        for record in changes(event_type, payload, occurred_at, self.lookup):
            self.put(record)

    @classmethod
    def of(cls, records: Iterable[Record]) -> Snapshot:
        snap = cls()
        for record in records:
            snap.put(record)
        return snap


def _key(record: Record) -> str:
    if isinstance(record, Referral | BreachRisk):
        return record.referral_id
    if isinstance(record, Appointment):
        return record.appointment_id
    if isinstance(record, Provider | Capacity):
        return record.provider_id
    if isinstance(record, SafetyAlert):
        return record.alert_id
    if isinstance(record, BreakGlass):
        return record.access_id
    return record.notification_id


# --------------------------------------------------------------------- the figures

def first_visits(snap: Snapshot) -> dict[str, datetime]:
    """Each referral's earliest visit that is not cancelled."""
    found: dict[str, datetime] = {}
    for appt in snap.appointments.values():
        if appt.referral_id and appt.status != "cancelled":
            known = found.get(appt.referral_id)
            if known is None or appt.start < known:
                found[appt.referral_id] = appt.start
    return found


def past_target(referral: Referral, first_visit: datetime | None, today: date,
                tz: ZoneInfo) -> bool:
    """Still open, its target date has gone by, and no first visit on or before it."""
    if referral.status in CLOSED_STATUSES or referral.due_by is None:
        return False
    if referral.due_by >= today:
        return False
    return first_visit is None or first_visit.astimezone(tz).date() > referral.due_by


def breach_risk_stands(risk: BreachRisk, referral: Referral | None,
                       first_visit: datetime | None, tz: ZoneInfo) -> bool:
    """Is the referral still at breach risk? Not once it is closed or the patient is in
    care, not once a booked first visit falls on or before the due date (clinic dates),
    and an unscheduled-near-due warning not once the referral is scheduled (a booking
    after the due date raises its own first_visit_after_due)."""
    status = referral.status if referral else None
    if status in CLOSED_STATUSES or status == "in_care":
        return False
    if first_visit is not None and first_visit.astimezone(tz).date() <= risk.due_by:
        return False
    return not (risk.reason == "unscheduled_near_due" and status == "scheduled")


def breach_risks(snap: Snapshot, firsts: Mapping[str, datetime], tz: ZoneInfo
                 ) -> list[BreachRisk]:
    """The referrals at breach risk now, soonest due first."""
    standing = [r for r in snap.breach_risks.values()
                if breach_risk_stands(r, snap.referrals.get(r.referral_id),
                                      firsts.get(r.referral_id), tz)]
    return sorted(standing, key=lambda r: (r.due_by, r.detected_at, r.referral_id))


def week_of(day: date) -> tuple[date, date]:
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=7)


def clinic_figures(snap: Snapshot, *, now: datetime, tz: ZoneInfo,
                   weekly_hours: float) -> dict[str, Any]:
    """The clinic's figures for the dashboard, all from the read model's records."""
    now = as_utc(now)
    today = now.astimezone(tz).date()
    firsts = first_visits(snap)

    by_status = dict.fromkeys(REFERRAL_STATUSES, 0)
    open_by_priority = dict.fromkeys((*PRIORITIES, "untriaged"), 0)
    late = 0
    waits: list[float] = []
    for ref in snap.referrals.values():
        by_status[ref.status] = by_status.get(ref.status, 0) + 1
        first = firsts.get(ref.referral_id)
        if ref.status not in CLOSED_STATUSES:
            open_by_priority[ref.priority or "untriaged"] += 1
        if past_target(ref, first, today, tz):
            late += 1
        if first is not None:
            waits.append((first - ref.received_at).total_seconds() / 86400)

    live = [a for a in snap.appointments.values() if a.status != "cancelled"]
    today_by_discipline = dict.fromkeys(DISCIPLINES, 0)
    for appt in live:
        if appt.start.astimezone(tz).date() == today:
            today_by_discipline[appt.discipline] += 1

    week_start, week_end = week_of(today)
    utilisation = weekly_utilisation(snap, live, week_start, week_end, tz, weekly_hours)

    since = now - timedelta(days=NO_SHOW_WINDOW_DAYS)
    outcomes = [a for a in snap.appointments.values()
                if a.status in ATTENDANCE_OUTCOMES and since <= a.start <= now]
    no_shows = sum(1 for a in outcomes if a.status == "no_show")

    by_channel = {c: {"sent": 0, "failed": 0} for c in CHANNELS}
    for n in snap.notifications.values():
        by_channel.setdefault(n.channel, {"sent": 0, "failed": 0})[n.outcome] += 1
    failures = sorted((n for n in snap.notifications.values() if n.outcome == "failed"),
                      key=lambda n: (n.updated_at, n.notification_id), reverse=True)[:5]

    at_risk = breach_risks(snap, firsts, tz)
    return {
        "as_of": now.isoformat(),
        "today": today.isoformat(),
        "safety_alerts": safety_alert_figures(snap, now),
        "breach_risk": {
            "count": len(at_risk),
            "referrals": [{"referral_id": r.referral_id, "due_by": r.due_by.isoformat(),
                           "reason": r.reason, "priority": r.priority,
                           "first_visit_at": r.first_visit_at.isoformat()
                           if r.first_visit_at else None,
                           "detected_at": r.detected_at.isoformat()} for r in at_risk],
        },
        "referrals": {
            "total": len(snap.referrals),
            "by_status": by_status,
            "open_by_priority": open_by_priority,
            "past_target": late,
            "median_days_to_first_visit": round(statistics.median(waits), 1) if waits else None,
            "first_visits_measured": len(waits),
        },
        "appointments_today": {"by_discipline": today_by_discipline,
                               "total": sum(today_by_discipline.values())},
        "utilisation": utilisation,
        "no_show": {"window_days": NO_SHOW_WINDOW_DAYS, "no_shows": no_shows,
                    "attended_or_missed": len(outcomes),
                    "rate": _ratio(no_shows, len(outcomes))},
        "notifications": {
            "sent": sum(v["sent"] for v in by_channel.values()),
            "failed": sum(v["failed"] for v in by_channel.values()),
            "by_channel": by_channel,
            "latest_failures": [{"event_type": n.event_type, "channel": n.channel,
                                 "reason": n.reason, "at": n.updated_at.isoformat()}
                                for n in failures],
        },
        "break_glass": recent_break_glass(snap),
    }


def recent_break_glass(snap: Snapshot, limit: int = RECENT_BREAK_GLASS
                       ) -> list[dict[str, Any]]:
    """The latest break-glass uses, newest first: who, which patient (id), when, until
    when; never a reason (that is the privacy officer's, in the notes audit trail)."""
    latest = sorted(snap.break_glass.values(), key=lambda b: (b.opened_at, b.access_id),
                    reverse=True)[:limit]
    return [{"access_id": b.access_id, "patient_id": b.patient_id, "by": b.actor_id,
             "discipline": b.discipline, "opened_at": b.opened_at.isoformat(),
             "expires_at": b.expires_at.isoformat()} for b in latest]


def weekly_utilisation(snap: Snapshot, live: Iterable[Appointment], week_start: date,
                       week_end: date, tz: ZoneInfo, weekly_hours: float) -> dict[str, Any]:
    """Booked hours of the week (visits starting on its local dates) over the hours each
    provider's template gives that week minus leave and closures. A provider whose
    capacity scheduling has not published yet counts `weekly_hours` and is marked
    `capacity_known: false` (the page says "capacity unknown")."""
    live = list(live)
    booked: dict[str, float] = {}
    for appt in live:
        if week_start <= appt.start.astimezone(tz).date() < week_end:
            booked[appt.provider_id] = booked.get(appt.provider_id, 0.0) + (
                appt.end - appt.start).total_seconds() / 3600
    providers: dict[str, tuple[str, str]] = {
        p.provider_id: (p.name, p.discipline) for p in snap.providers.values() if p.active}
    for cap in snap.capacities.values():
        if cap.provider_id not in snap.providers:
            providers[cap.provider_id] = (cap.provider_id, cap.discipline)
    for appt in live:
        providers.setdefault(appt.provider_id, (appt.provider_name or appt.provider_id,
                                                appt.discipline))
    last_day = week_end - timedelta(days=1)
    by_provider = []
    hours_of = dict.fromkeys(DISCIPLINES, 0.0)
    capacity_of_d = dict.fromkeys(DISCIPLINES, 0.0)
    unknown_of = dict.fromkeys(DISCIPLINES, 0)
    for pid, (name, discipline) in sorted(providers.items(), key=lambda kv: (kv[1][1], kv[1][0])):
        hours = booked.get(pid, 0.0)
        cap = snap.capacities.get(pid)
        capacity = available_minutes(cap, week_start, last_day) / 60 if cap else weekly_hours
        hours_of[discipline] = hours_of.get(discipline, 0.0) + hours
        capacity_of_d[discipline] = capacity_of_d.get(discipline, 0.0) + capacity
        unknown_of[discipline] = unknown_of.get(discipline, 0) + (cap is None)
        by_provider.append({"provider_id": pid, "name": name, "discipline": discipline,
                            "booked_hours": round(hours, 2),
                            "capacity_hours": round(capacity, 2),
                            "capacity_known": cap is not None,
                            "utilisation": _ratio(hours, capacity)})
    by_discipline = [{"discipline": d, "booked_hours": round(hours_of[d], 2),
                      "capacity_hours": round(capacity_of_d[d], 2),
                      "capacity_unknown": unknown_of[d],
                      "utilisation": _ratio(hours_of[d], capacity_of_d[d])}
                     for d in hours_of]
    return {"week_start": week_start.isoformat(), "weekly_hours": weekly_hours,
            "fallback_weekly_hours": weekly_hours,
            "capacity_unknown": sum(unknown_of.values()),
            "by_discipline": by_discipline, "by_provider": by_provider}


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


# --------------------------------------------------------------------- the platform

def service_of_group(group_id: str, prefix: str, services: Iterable[str]) -> str | None:
    """Consumer groups are named `<prefix><service>.<subscription>`."""
    if not group_id.startswith(prefix):
        return None
    service = group_id[len(prefix):].split(".", 1)[0]
    return service if service in set(services) else None


def group_lag(end_offsets: Mapping[Any, int], committed: Mapping[Any, int]) -> int:
    """Messages a group has still to handle: end offset minus committed, over its
    partitions (a partition it has never committed counts from 0)."""
    return sum(max(0, end - committed.get(tp, 0)) for tp, end in end_offsets.items())


def throughput(previous: tuple[float, int] | None, current: tuple[float, int]) -> float | None:
    """Messages per second between two samples of (monotonic time, end offset total)."""
    if previous is None:
        return None
    elapsed = current[0] - previous[0]
    if elapsed <= 0:
        return None
    return round(max(0, current[1] - previous[1]) / elapsed, 2)
