"""Visit emails carry their calendar invitation, read back from a real SMTP server: the
text/calendar part parses with the icalendar library and names the right UID and METHOD
(book, move, cancel), on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from icalendar import Calendar
from sqlalchemy import select, text

from services.notifier.db import Notification
from services.notifier.delivery import wait_idle
from simulator.receivers import SmtpServer
from tests.integration.notifier.clinic_events import (
    appointment_event,
    itinerary_booked,
    provider_registered,
    referral_received,
    visit,
)

ANA = "ana@example.org"


def _invitation(message) -> tuple[str, Calendar]:  # type: ignore[no-untyped-def]
    found = SmtpServer.calendar(message)
    assert found is not None, "no text/calendar part"
    method, body = found
    cal = Calendar.from_ical(body)
    assert str(cal["method"]) == method
    attachments = [p.get_filename() for p in message.walk() if p.get_filename()]
    assert attachments == ["invite.ics"]
    return method, cal


def test_booking_moving_and_cancelling_update_one_calendar_entry_per_visit(notifier):
    notifier.receive(referral_received("pat-1", email=ANA))
    notifier.receive(provider_registered("prov-psychology", "psychology", "psy@clinic.test"))
    start = notifier.clock() + timedelta(days=7)
    visits = [visit(0, start, "psychology"), visit(1, start + timedelta(days=7), "psychology")]
    notifier.receive(itinerary_booked("pat-1", visits))
    wait_idle(notifier.deliverer())
    (booked,) = notifier.smtp.to(ANA)
    assert "Your visits" in notifier.smtp.text(booked)  # the text is still there
    method, cal = _invitation(booked)
    assert method == "REQUEST"
    assert [str(e["uid"]) for e in cal.walk("VEVENT")] == ["appt-0@paincare",
                                                            "appt-1@paincare"]
    assert cal.walk("VEVENT")[0].decoded("dtstart") == start

    new = start + timedelta(days=2)
    notifier.clock.advance(minutes=5)
    notifier.receive(appointment_event(
        "appointment.rescheduled", "pat-1",
        {**visits[0], "start": new.isoformat(),
         "end": (new + timedelta(minutes=45)).isoformat()},
        previous_start=visits[0]["start"], previous_end=visits[0]["end"], by="sched-1"))
    notifier.clock.advance(minutes=5)
    notifier.receive(appointment_event("appointment.cancelled", "pat-1", visits[1],
                                       reason="provider ill", by="sched-1"))
    wait_idle(notifier.deliverer())
    mails = {m["Subject"].split(":")[0]: m for m in notifier.smtp.to(ANA)}
    method, moved = _invitation(mails["Appointment moved"])
    (m,) = moved.walk("VEVENT")
    assert (method, str(m["uid"]), m.decoded("dtstart")) == ("REQUEST", "appt-0@paincare",
                                                             new)
    assert m["sequence"] > cal.walk("VEVENT")[0]["sequence"]
    method, cancelled = _invitation(mails["Appointment cancelled"])
    (c,) = cancelled.walk("VEVENT")
    assert (method, str(c["uid"]), str(c["status"])) == ("CANCEL", "appt-1@paincare",
                                                         "CANCELLED")
    assert "ill" not in cancelled.to_ical().decode()
    to_provider = notifier.smtp.to("psy@clinic.test")  # the provider: words, no invitation
    assert len(to_provider) == 2 and not any(m.is_multipart() for m in to_provider)


def test_the_migration_keeps_notifications_planned_before_it(settings_for):
    """A database at the previous revision with a pending email: after the upgrade it
    has no invitation and still goes out as plain text."""
    from alembic import command

    from services.notifier.wiring import build_runtime
    from shared.migrations import _config

    runtime = build_runtime(settings_for("notifier"))
    cfg = _config(runtime)
    with runtime.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "87feac166d91")
    with runtime.db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO notifications (id, dedupe_key, event_id, event_type, recipient_id, "
            "channel, template, language, address, subject, body, status, due_at, "
            "next_attempt_at, attempts, created_at, priority) VALUES (:id, 'k', 'e-1', "
            "'appointment.cancelled', 'pat-1', 'email', 'appointment_cancelled', 'en', "
            "'ana@example.org', 's', 'b', 'pending', '2026-03-01 10:00:00+00:00', "
            "'2026-03-01 10:00:00+00:00', 0, '2026-03-01 10:00:00+00:00', 'normal')"),
            {"id": str(uuid.uuid4())})
    runtime.create_schema()  # MIGRATE_ON_START: to head
    with runtime.db.transaction() as s:
        rows = s.execute(select(Notification.status, Notification.calendar)).all()
    assert [tuple(r) for r in rows] == [("pending", None)]
    with runtime.db.transaction() as s:  # the new column takes an invitation
        s.execute(Notification.__table__.update().values(calendar="BEGIN:VCALENDAR"))
    with runtime.db.transaction() as s:
        assert s.execute(select(Notification.calendar)).scalar_one() == "BEGIN:VCALENDAR"
    runtime.db.dispose()
