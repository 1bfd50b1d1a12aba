"""The visits' calendar invitations, parsed back with the icalendar library: a stable UID
per appointment, REQUEST to book or move, CANCEL to remove, SEQUENCE rising with each
change, times in UTC, and no free text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar

from services.notifier import calendar
from services.notifier.domain import Contact, Rules, plan

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
START = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
ANA = Contact("pat-1", "patient", "Ana", email="ana@example.org")
PROVIDER = Contact("prov-1", "provider", "Dr Osei", email="osei@clinic.test")
RULES = Rules(organizer_email="PainCare <no-reply@clinic.test>",
              clinic_name="Riverside pain clinic")


def lookup(recipient_id: str) -> Contact | None:
    return {"pat-1": ANA, "prov-1": PROVIDER}.get(recipient_id)


def visit(i: int, start: datetime = START, **extra: object) -> dict:
    return {"appointment_id": f"appt-{i}", "patient_id": "pat-1", "provider_id": "prov-1",
            "provider_name": "Dr Osei", "discipline": "physical_therapy", "room_id": "r-2",
            "room_name": "Gym 2", "start": start.isoformat(),
            "end": (start + timedelta(minutes=45)).isoformat(), **extra}


def invitation(event_type: str, payload: dict, now: datetime = NOW) -> Calendar:
    result = plan("evt-1", event_type, payload, lookup, RULES, now)
    emails = [p for p in result.notifications
              if p.recipient_id == "pat-1" and p.template != "appointment_reminder"]
    assert all(p.calendar is None for p in result.notifications
               if p.template == "appointment_reminder")
    assert len(emails) == 1 and emails[0].channel == "email"
    assert emails[0].calendar is not None
    return Calendar.from_ical(emails[0].calendar)


def test_a_booked_itinerary_invites_to_every_visit_with_a_uid_each():
    visits = [visit(0), visit(1, START + timedelta(days=7))]
    cal = invitation("itinerary.booked", {"itinerary_id": "it-1", "patient_id": "pat-1",
                                          "visits": visits, "what_to_bring": []})
    assert cal["method"] == "REQUEST"
    events = cal.walk("VEVENT")
    assert [str(e["uid"]) for e in events] == ["appt-0@paincare", "appt-1@paincare"]
    first = events[0]
    assert first.decoded("dtstart") == START
    assert first.decoded("dtstart").utcoffset() == timedelta(0)
    assert first.decoded("dtend") == START + timedelta(minutes=45)
    assert str(first["summary"]) == "Physical therapy with Dr Osei"
    assert str(first["location"]) == "Riverside pain clinic, room Gym 2"
    assert str(first["status"]) == "CONFIRMED"
    assert first["sequence"] == 0
    assert str(first["organizer"]) == "mailto:no-reply@clinic.test"
    assert str(first["attendee"]) == "mailto:ana@example.org"


def test_a_move_keeps_the_uid_and_raises_the_sequence_and_a_cancellation_removes_it():
    moved_to = START + timedelta(days=1)
    booked = invitation("itinerary.booked", {"itinerary_id": "it-1", "patient_id": "pat-1",
                                             "visits": [visit(0)], "what_to_bring": []})
    moved = invitation("appointment.rescheduled", visit(
        0, moved_to, previous_start=START.isoformat(),
        previous_end=(START + timedelta(minutes=45)).isoformat(), by="sched-1"),
        now=NOW + timedelta(hours=1))
    moved_again = invitation("appointment.rescheduled", visit(
        0, START, previous_start=moved_to.isoformat(),
        previous_end=(moved_to + timedelta(minutes=45)).isoformat(), by="sched-1"),
        now=NOW + timedelta(hours=2))
    cancelled = invitation("appointment.cancelled", visit(
        0, START, reason="patient has a chest infection", by="sched-1"),
        now=NOW + timedelta(hours=3))
    (b,), (m,), (m2,), (c,) = (x.walk("VEVENT") for x in (booked, moved, moved_again, cancelled))
    assert {str(e["uid"]) for e in (b, m, m2, c)} == {"appt-0@paincare"}
    assert b["sequence"] < m["sequence"] < m2["sequence"] < c["sequence"]
    assert moved["method"] == "REQUEST" and m.decoded("dtstart") == moved_to
    assert cancelled["method"] == "CANCEL" and str(c["status"]) == "CANCELLED"
    assert "chest" not in cancelled.to_ical().decode()  # the reason is free text: never


def test_only_emails_carry_an_invitation_and_the_provider_gets_none():
    sms_ana = Contact("pat-1", "patient", "Ana", phone="+447700900001",
                      preferred_channel="sms")
    result = plan("evt-1", "appointment.cancelled", visit(0, reason="r", by="s"),
                  lambda rid: {"pat-1": sms_ana, "prov-1": PROVIDER}.get(rid), RULES, NOW)
    assert [(p.recipient_id, p.channel, p.calendar is None) for p in result.notifications
            if p.template != "appointment_reminder"] \
        == [("pat-1", "sms", True), ("prov-1", "email", True)]


def test_the_invitation_is_in_the_patients_language_with_the_same_uid():
    fr = Contact("pat-1", "patient", "Ana", email="ana@example.org", language="fr")
    result = plan("evt-1", "itinerary.booked", {"itinerary_id": "it-1", "patient_id": "pat-1",
                                                "visits": [visit(0)], "what_to_bring": []},
                  lambda rid: fr if rid == "pat-1" else None, RULES, NOW)
    (event,) = Calendar.from_ical(result.notifications[0].calendar).walk("VEVENT")
    assert str(event["summary"]) == "Kinésithérapie with Dr Osei"
    assert str(event["uid"]) == "appt-0@paincare"


def test_invitation_refuses_an_unknown_method_and_reads_back_its_method():
    v = calendar.Visit("appt-9", "Psychology", "", START, START + timedelta(hours=1))
    text = calendar.invitation([v], method="CANCEL", sequence=3, now=NOW, clinic="Clinic",
                               organizer="x@y")
    assert calendar.method_of(text) == "CANCEL"
    (event,) = Calendar.from_ical(text).walk("VEVENT")
    assert str(event["summary"]) == "Psychology" and str(event["location"]) == "Clinic"
    with pytest.raises(ValueError):
        calendar.invitation([v], method="PUBLISH", sequence=0, now=NOW, clinic="C",
                            organizer="x@y")


def test_visits_without_an_appointment_id_get_no_calendar_entry():
    result = plan("evt-1", "itinerary.booked", {
        "itinerary_id": "it-1", "patient_id": "pat-1", "what_to_bring": [],
        "visits": [{**visit(0), "appointment_id": None}]}, lookup, RULES, NOW)
    (email,) = [p for p in result.notifications if p.template == "itinerary_booked"]
    assert email.calendar is None
