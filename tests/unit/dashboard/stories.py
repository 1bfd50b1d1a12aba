"""Clinic events for the dashboard's tests, built through the real schemas (so a payload
the catalogue would refuse fails here first)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from shared import topics
from shared.events import Envelope, new_event

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday, noon in London


def _at(env: Envelope, at: datetime | None) -> Envelope:
    return replace(env, occurred_at=at) if at else env


def received(referral_id: str, *, at: datetime, condition: str = "diabetic_neuropathy"
             ) -> Envelope:
    return _at(new_event("referral.received", {
        "referral_id": referral_id, "condition": condition, "received_at": at.isoformat(),
        "patient": {"patient_id": f"p-{referral_id}", "name": "A Patient",
                    "date_of_birth": "1960-01-01"},
        "referrer": {"name": "Dr GP"}}, producer="referrals"), at)


def moved(referral_id: str, to: str, *, received_at: datetime, at: datetime,
          priority: str | None = None, due_by: date | None = None, frm: str | None = None,
          condition: str = "diabetic_neuropathy") -> Envelope:
    return _at(new_event("referral.status_changed", {
        "referral_id": referral_id, "patient_id": f"p-{referral_id}", "from_status": frm,
        "to_status": to, "priority": priority, "condition": condition,
        "received_at": received_at.isoformat(),
        "due_by": due_by.isoformat() if due_by else None, "at": at.isoformat()},
        producer="referrals"), at)


def breach(referral_id: str, *, reason: str, due_by: date, at: datetime,
           first_visit_at: datetime | None = None, priority: str | None = "soon"
           ) -> Envelope:
    return _at(new_event("referral.breach_risk", {
        "referral_id": referral_id, "patient_id": f"p-{referral_id}", "priority": priority,
        "due_by": due_by.isoformat(), "reason": reason,
        "first_visit_at": first_visit_at.isoformat() if first_visit_at else None,
        "detected_at": at.isoformat()}, producer="referrals"), at)


def visit(kind: str, appointment_id: str, *, provider_id: str, discipline: str,
          start: datetime, minutes: int = 60, referral_id: str | None = None,
          patient_id: str | None = None, at: datetime | None = None, **extra: object
          ) -> Envelope:
    payload = {"appointment_id": appointment_id,
               "patient_id": patient_id or f"p-{referral_id or appointment_id}",
               "provider_id": provider_id, "provider_name": f"Dr {provider_id}",
               "discipline": discipline, "start": start.isoformat(),
               "end": (start + timedelta(minutes=minutes)).isoformat(),
               "referral_id": referral_id, **extra}
    if kind == "appointment.cancelled":
        payload.setdefault("reason", "patient unwell")
        payload.setdefault("by", "scheduler-1")
    return _at(new_event(kind, payload, producer="scheduling"), at)


def provider(provider_id: str, discipline: str, *, at: datetime | None = None,
             active: bool = True) -> Envelope:
    return _at(new_event("provider.registered", {
        "provider_id": provider_id, "name": f"Dr {provider_id}", "discipline": discipline,
        "active": active}, producer="scheduling"), at)


def capacity(provider_id: str, discipline: str, *,
             blocks: list[tuple[int, str, str]] | None = None,
             leave: list[tuple[datetime, datetime]] = (), at: datetime | None = None,
             timezone: str = "Europe/London") -> Envelope:
    """provider.capacity_changed as scheduling publishes it; blocks default to
    Monday to Friday 09:00-17:00."""
    blocks = [(d, "09:00", "17:00") for d in range(5)] if blocks is None else blocks
    return _at(new_event("provider.capacity_changed", {
        "provider_id": provider_id, "discipline": discipline, "timezone": timezone,
        "blocks": [{"weekday": d, "start": a, "end": b} for d, a, b in blocks],
        "exceptions": [{"exception_id": f"x{i}", "kind": "leave", "start": a.isoformat(),
                        "end": b.isoformat()} for i, (a, b) in enumerate(leave)],
        "exceptions_since": (NOW - timedelta(days=14)).isoformat()},
        producer="scheduling"), at)


def notified(notification_id: str, *, failed: bool = False, channel: str = "email",
             at: datetime | None = None) -> Envelope:
    payload = {"notification_id": notification_id, "event_id": f"e-{notification_id}",
               "event_type": "itinerary.booked", "recipient_id": "p-1", "channel": channel}
    if failed:
        payload.update(reason="mailbox unavailable", attempts=3)
        return _at(new_event("notification.failed", payload, producer="notifier"), at)
    payload["sent_at"] = (at or NOW).isoformat()
    return _at(new_event("notification.sent", payload, producer="notifier"), at)


def topic_of(env: Envelope) -> str:
    return {"referrals": topics.REFERRALS, "scheduling": topics.SCHEDULING,
            "notifier": topics.NOTIFICATIONS, "notes": topics.NOTES}[env.producer]


def key_of(env: Envelope) -> str:
    """The aggregate each producing service keys its topic by."""
    p = env.payload
    return p.get("referral_id") if env.producer == "referrals" else \
        p.get("patient_id") or p.get("provider_id") or p.get("recipient_id")


def a_clinic_week(now: datetime = NOW) -> list[Envelope]:
    """Three referrals (one seen in 8 days, one overdue, one rejected; the first two
    warned about as near due, the first no longer once scheduled), two providers (pm1's
    capacity published, pt1's not), visits today and this week, a no-show, and
    notifications sent and failed."""
    day = timedelta(days=1)
    r1, r2, r3 = now - 10 * day, now - 20 * day, now - 3 * day
    return [
        provider("pm1", "pain_medicine"), provider("pt1", "physical_therapy"),
        # pm1's template, then a day's leave on Thursday (8 h off the 40 h week)
        capacity("pm1", "pain_medicine", at=now - 30 * day),
        capacity("pm1", "pain_medicine", at=now - 5 * day,
                 leave=[(now + day - timedelta(hours=3), now + day + timedelta(hours=5))]),
        received("r1", at=r1),
        moved("r1", "triaged", received_at=r1, at=r1 + day, priority="urgent",
              due_by=(r1 + 14 * day).date(), frm="received"),
        breach("r1", reason="unscheduled_near_due", due_by=(r1 + 14 * day).date(),
               at=r1 + 1.5 * day, priority="urgent"),
        moved("r1", "scheduled", received_at=r1, at=r1 + 2 * day, priority="urgent",
              due_by=(r1 + 14 * day).date(), frm="accepted"),
        received("r2", at=r2),
        moved("r2", "accepted", received_at=r2, at=r2 + day, priority="soon",
              due_by=(r2 + 7 * day).date(), frm="triaged"),
        breach("r2", reason="unscheduled_near_due", due_by=(r2 + 7 * day).date(),
               at=r2 + 5 * day),
        received("r3", at=r3),
        moved("r3", "rejected", received_at=r3, at=r3 + day, frm="received"),
        visit("appointment.booked", "a1", provider_id="pm1", discipline="pain_medicine",
              start=r1 + 8 * day, referral_id="r1"),
        visit("appointment.booked", "a2", provider_id="pt1", discipline="physical_therapy",
              start=now + timedelta(hours=2), minutes=45, referral_id="r1"),
        visit("appointment.booked", "a3", provider_id="pm1", discipline="pain_medicine",
              start=now - timedelta(hours=2), minutes=30, patient_id="p-x"),
        visit("appointment.no_show", "a3", provider_id="pm1", discipline="pain_medicine",
              start=now - timedelta(hours=2), minutes=30, patient_id="p-x"),
        visit("appointment.completed", "a1", provider_id="pm1", discipline="pain_medicine",
              start=r1 + 8 * day, referral_id="r1"),
        notified("n1"), notified("n2", channel="sms"), notified("n3", failed=True),
    ]


def publish(settings, events: list[Envelope], *, raw: list[tuple[str, bytes]] = ()) -> None:  # type: ignore[no-untyped-def]
    """Produce events to the (prefixed) topics their services own, as their relays do;
    `raw` adds messages that are not valid events."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    try:
        for env in events:
            producer.send(settings.topic(topic_of(env)), key=key_of(env).encode(),
                          value=env.to_bytes())
        for topic, value in raw:
            producer.send(settings.topic(topic), key=b"bad", value=value)
        producer.flush(30)
    finally:
        producer.close()


def alert_raised(alert_id: str, *, at: datetime, severity: int = 2, version: int = 2,
                 recorded: datetime | None = None) -> Envelope:
    """patient.safety_alert as notes publishes it (v2), or the v1 of earlier releases."""
    if version == 1:
        return _at(new_event("patient.safety_alert", {
            "alert_id": alert_id, "patient_id": f"p-{alert_id}", "note_id": f"n-{alert_id}",
            "author_id": "psy1", "measure": "phq9_item9", "value": severity,
            "raised_at": at.isoformat()}, producer="notes", version=1), recorded or at)
    return _at(new_event("patient.safety_alert", {
        "alert_id": alert_id, "patient_id": f"p-{alert_id}", "note_id": f"n-{alert_id}",
        "source": "phq9_item9", "severity": severity, "raised_by": "psy1",
        "raised_at": at.isoformat(),
        "recipients": [{"recipient_id": "psy1", "role": "psychologist"}]},
        producer="notes", version=2), recorded or at)


def alert_escalated(alert_id: str, n: int, *, raised_at: datetime, at: datetime) -> Envelope:
    return _at(new_event("patient.safety_alert_escalated", {
        "alert_id": alert_id, "patient_id": f"p-{alert_id}", "escalation": n, "severity": 2,
        "raised_at": raised_at.isoformat(), "escalated_at": at.isoformat(),
        "recipients": [{"recipient_id": "role:clinical_lead", "role": "clinical_lead"}]},
        producer="notes"), at)


def alert_acknowledged(alert_id: str, *, at: datetime) -> Envelope:
    return _at(new_event("patient.safety_alert_acknowledged", {
        "alert_id": alert_id, "patient_id": f"p-{alert_id}", "acknowledged_by": "psy1",
        "action": "risk_assessment", "acknowledged_at": at.isoformat(),
        "recipients": [{"recipient_id": "psy1", "role": "psychologist"}]},
        producer="notes"), at)


def alert_closed(alert_id: str, *, at: datetime) -> Envelope:
    return _at(new_event("patient.safety_alert_closed", {
        "alert_id": alert_id, "patient_id": f"p-{alert_id}", "closed_by": "psy1",
        "reason": "risk_managed", "closed_at": at.isoformat()}, producer="notes"), at)
