"""Planning and delivery on a real database (SQLite and PostgreSQL), a real SMTP server
and a real SMS gateway, on a clock the test moves."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from services.notifier.delivery import wait_idle
from tests.integration.notifier.clinic_events import (
    appointment_event,
    itinerary_booked,
    provider_registered,
    referral_received,
    visit,
)
from tests.integration.notifier.local_servers import SmtpServer

ANA = "ana@example.org"


def _clinic(notifier, **contact: object) -> list[dict]:
    """Given Ana referred (email), a provider per discipline, and three visits next week."""
    notifier.receive(referral_received("pat-1", email=ANA, phone="+447700900001", **contact))
    notifier.receive(*[provider_registered(f"prov-{d}", d, f"{d}@clinic.test")
                       for d in ("pain_medicine", "physical_therapy", "psychology")])
    start = notifier.clock() + timedelta(days=7)
    return [visit(0, start, "pain_medicine"),
            visit(1, start + timedelta(hours=1), "physical_therapy"),
            visit(2, start + timedelta(days=14), "psychology")]


def test_a_booked_itinerary_is_one_email_with_every_visit_and_reminders_fall_due_on_time(
        notifier):
    visits = _clinic(notifier)
    booked = itinerary_booked("pat-1", visits)
    notifier.receive(booked)
    notifier.receive(*[appointment_event("appointment.booked", "pat-1", v) for v in visits])
    wait_idle(notifier.deliverer())
    mails = notifier.smtp.to(ANA)
    assert len(mails) == 1
    body = notifier.smtp.text(mails[0])
    for room in ("Room 0", "Room 1", "Room 2"):
        assert room in body
    assert "Your glucose diary" in body
    assert [m["To"] for m in notifier.smtp.messages].count("lead@clinic.test") == 1
    reminders = notifier.rows(template="appointment_reminder")
    assert len(reminders) == 6  # 3 visits x (48 h, 2 h), once though booked twice over
    first_due = min(r.due_at for r in reminders)
    notifier.clock.set(first_due - timedelta(seconds=1))
    wait_idle(notifier.deliverer())
    assert len(notifier.smtp.to(ANA)) == 1
    notifier.clock.set(first_due)
    wait_idle(notifier.deliverer())
    assert [m["Subject"] for m in notifier.smtp.to(ANA)][1].startswith("Reminder: Pain")
    assert "notification.sent" in notifier.outbox_types()


def test_reminders_are_dropped_for_a_cancelled_visit_and_moved_with_a_rescheduled_one(notifier):
    visits = _clinic(notifier)
    notifier.receive(itinerary_booked("pat-1", visits))
    notifier.receive(appointment_event("appointment.cancelled", "pat-1", visits[0],
                                       reason="provider ill", by="sched-1"))
    old, new = visits[1]["start"], notifier.clock() + timedelta(days=10)
    moved = {**visits[1], "start": new.isoformat(),
             "end": (new + timedelta(minutes=45)).isoformat()}
    notifier.receive(appointment_event("appointment.rescheduled", "pat-1", moved,
                                       previous_start=old, previous_end=visits[1]["end"],
                                       by="sched-1"))
    by_appt = {}
    for r in notifier.rows(template="appointment_reminder"):
        by_appt.setdefault((r.appointment_id, r.status), []).append(r.due_at)
    assert len(by_appt[("appt-0", "cancelled")]) == 2
    assert ("appt-0", "pending") not in by_appt
    assert sorted(by_appt[("appt-1", "pending")]) == [new - timedelta(hours=48),
                                                      new - timedelta(hours=2)]
    notifier.clock.set(new + timedelta(days=30))  # far past everything
    wait_idle(notifier.deliverer())
    subjects = [m["Subject"] for m in notifier.smtp.to(ANA)]
    assert sum(s.startswith("Reminder: Pain") for s in subjects) == 0
    assert sum(s.startswith("Reminder: Physical") for s in subjects) == 2
    assert sum(s.startswith("Appointment cancelled") for s in subjects) == 1
    assert len(notifier.smtp.to("pain_medicine@clinic.test")) == 1  # the provider is told


def test_reminders_are_sent_once_with_several_delivery_workers_racing(notifier):
    visits = _clinic(notifier)
    notifier.receive(itinerary_booked("pat-1", visits))
    notifier.clock.set(notifier.clock() + timedelta(days=60))
    workers = [notifier.deliverer() for _ in range(3)]
    threads = [threading.Thread(target=wait_idle, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = notifier.smtp.ids()
    assert len(ids) == len(set(ids)) == 1 + 1 + 6  # confirmation, triage lead, reminders
    assert {r.status for r in notifier.rows()} == {"sent"}


def test_the_same_event_handed_twice_is_planned_and_sent_once(notifier):
    visits = _clinic(notifier)
    booked = itinerary_booked("pat-1", visits)
    notifier.receive(booked, booked)
    wait_idle(notifier.deliverer())
    notifier.receive(booked)
    wait_idle(notifier.deliverer())
    assert len(notifier.smtp.to(ANA)) == 1
    assert len(notifier.rows(event_id=booked.id, template="itinerary_booked")) == 1


def test_smtp_down_then_up_delivers_once_after_retries(settings_for, sms):
    from tests.integration.notifier.conftest import make_notifier

    smtp = SmtpServer()  # not started: the port refuses connections
    notifier = make_notifier(settings_for, smtp, sms, extra={"NOTIFIER_MAX_ATTEMPTS": "5"})
    try:
        visits = _clinic(notifier)
        booked = itinerary_booked("pat-1", visits)
        notifier.receive(booked)
        deliverer = notifier.deliverer()
        wait_idle(deliverer)
        (row,) = notifier.rows(event_id=booked.id, template="itinerary_booked")
        assert (row.status, row.attempts) == ("pending", 1)
        assert "SMTP" in row.last_error
        wait_idle(deliverer)  # backoff not over: not tried again
        assert notifier.rows(event_id=booked.id, template="itinerary_booked")[0].attempts == 1
        notifier.clock.advance(seconds=60)
        wait_idle(deliverer)
        assert notifier.rows(event_id=booked.id, template="itinerary_booked")[0].attempts == 2
        smtp.start()
        notifier.clock.advance(seconds=120)
        wait_idle(deliverer)
        notifier.clock.advance(seconds=600)
        wait_idle(deliverer)
        (row,) = notifier.rows(event_id=booked.id, template="itinerary_booked")
        assert (row.status, row.attempts) == ("sent", 3)
        assert len(smtp.to(ANA)) == 1
    finally:
        smtp.stop()
        notifier.runtime.db.dispose()


def test_sms_goes_through_the_gateway_with_the_notification_id(notifier):
    visits = _clinic(notifier, channel="sms")
    notifier.receive(itinerary_booked("pat-1", visits))
    wait_idle(notifier.deliverer())
    (sms,) = notifier.sms.received
    assert sms["to"] == "+447700900001" and "Room 2" in sms["message"]
    (row,) = notifier.rows(channel="sms", template="itinerary_booked")
    assert sms["idempotency_key"] == row.id and row.status == "sent"
    assert notifier.smtp.to(ANA) == []


def test_a_worker_that_died_holding_rows_loses_them_only_until_its_lease_ends(notifier):
    _clinic(notifier)
    now = notifier.clock()
    from services.notifier import db

    with notifier.runtime.db.transaction() as s:  # a worker claims, then dies
        claimed = db.claim_due(s, now, "dead-worker", now + timedelta(seconds=60), 100)
    assert claimed
    wait_idle(notifier.deliverer())
    assert notifier.smtp.messages == []
    notifier.clock.advance(seconds=61)
    wait_idle(notifier.deliverer())
    assert len(notifier.smtp.to("lead@clinic.test")) == 1


def test_a_slow_channel_hands_back_what_it_cannot_reach_before_its_lease_ends(notifier):
    """Another worker may take a row once our lease ends: we must not send it after."""
    from dataclasses import replace

    from services.notifier.channels import InAppFeed
    from services.notifier.delivery import Deliverer
    from services.notifier.wiring import NotifierConfig

    class SlowMail:
        sent: list[str] = []

        def send(self, message) -> None:  # type: ignore[no-untyped-def]
            time.sleep(0.15)
            self.sent.append(message.notification_id)

        def close(self) -> None:
            pass

    for i in range(5):
        notifier.receive(referral_received(f"pat-{i}", email=f"p{i}@example.org"))
    config = replace(NotifierConfig.from_settings(notifier.runtime.settings), lease_seconds=0.4)
    slow = SlowMail()
    deliverer = Deliverer(notifier.runtime, config, {"email": slow, "in_app": InAppFeed()},
                          notifier.clock)
    handled = deliverer.run_once()
    assert handled == 10  # five emails to the triage lead, five feed items
    rows = notifier.rows(channel="email")
    sent = [r for r in rows if r.status == "sent"]
    handed_back = [r for r in rows if r.status == "pending"]
    assert 1 <= len(sent) == len(slow.sent) < 5
    assert len(sent) + len(handed_back) == 5
    assert all(r.lease_holder is None and r.attempts == 0 for r in handed_back)


def test_an_opt_out_stops_reminders_planned_before_it(notifier):
    from services.notifier.app import create_app
    from tests.support.clinic import bearer

    visits = _clinic(notifier)
    notifier.receive(itinerary_booked("pat-1", visits))
    wait_idle(notifier.deliverer())
    client = create_app(runtime=notifier.runtime).test_client()
    assert client.put("/recipients/pat-1/preferences", json={"opted_out": ["email"]},
                      headers=bearer(notifier.runtime.settings, "scheduler")).status_code == 200
    notifier.clock.set(notifier.clock() + timedelta(days=60))
    wait_idle(notifier.deliverer())
    assert len(notifier.smtp.to(ANA)) == 1  # the confirmation, sent before the opt-out
    reminders = notifier.rows(template="appointment_reminder")
    assert len(reminders) == 6
    assert {(r.status, r.last_error) for r in reminders} == {
        ("cancelled", "recipient opted out of email")}


def test_a_booking_that_beats_the_patients_referral_here_still_reaches_their_inbox(notifier):
    """Two topics, no common order: the booking may be handled before the contact."""
    start = notifier.clock() + timedelta(days=7)
    visits = [visit(0, start, "pain_medicine"), visit(1, start + timedelta(hours=1))]
    booked = itinerary_booked("pat-1", visits)
    notifier.receive(booked)
    moved_from = visits[0]["start"]
    new = start + timedelta(days=3)
    notifier.receive(appointment_event(
        "appointment.rescheduled", "pat-1",
        {**visits[0], "start": new.isoformat(), "end": (new + timedelta(hours=1)).isoformat()},
        previous_start=moved_from, previous_end=visits[0]["end"], by="sched-1"))
    wait_idle(notifier.deliverer())  # within the grace: nothing goes to the feed yet
    assert {r.channel for r in notifier.rows(recipient_id="pat-1")} == {"in_app"}
    assert {r.status for r in notifier.rows(recipient_id="pat-1")} == {"pending", "cancelled"}

    notifier.receive(referral_received("pat-1", email=ANA), topic="referrals.events")
    wait_idle(notifier.deliverer())
    (mail,) = [m for m in notifier.smtp.to(ANA) if m["Subject"].startswith("Your appoint")]
    assert "Room 0" in notifier.smtp.text(mail) and "Room 1" in notifier.smtp.text(mail)
    assert len([m for m in notifier.smtp.to(ANA) if "moved" in m["Subject"]]) == 1
    pending = sorted(r.due_at for r in notifier.rows(recipient_id="pat-1", status="pending"))
    assert pending == sorted([new - timedelta(hours=48), new - timedelta(hours=2),
                              start + timedelta(hours=1) - timedelta(hours=48),
                              start + timedelta(hours=1) - timedelta(hours=2)])
    assert {r.channel for r in notifier.rows(recipient_id="pat-1", status="pending")} == {
        "email"}
    notifier.clock.advance(minutes=5)
    wait_idle(notifier.deliverer())
    assert notifier.rows(recipient_id="pat-1", channel="in_app", status="sent") == []
