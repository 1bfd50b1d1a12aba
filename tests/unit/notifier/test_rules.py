"""The notifier's rules as clinic stories: who is told what, on which channel, in which
language, and when reminders fall due. Pure: no database, no broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notifier.domain import (
    SCHEDULERS,
    TRIAGE_LEAD,
    Contact,
    Rules,
    parse_offsets,
    plan,
    reminder_times,
    render,
    retry_delay,
)
from shared.errors import InvalidInput

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RULES = Rules(triage_lead=Contact(TRIAGE_LEAD, "role", "Triage", email="lead@clinic"),
              schedulers=Contact(SCHEDULERS, "role", "Schedulers", email="sched@clinic"))
ANA = Contact("pat-1", "patient", "Ana Silva", email="ana@example.org", phone="+4470000001")
DR_LEE = Contact("prov-1", "provider", "Dr Lee", email="lee@clinic")
DIRECTORY = {c.recipient_id: c for c in (ANA, DR_LEE)}


def _visit(i: int, discipline: str, start: datetime, room: str = "") -> dict:
    return {"appointment_id": f"appt-{i}", "discipline": discipline, "provider_id": "prov-1",
            "provider_name": "Dr Lee", "room_id": f"r{i}", "room_name": room,
            "start": start.isoformat(), "end": (start + timedelta(minutes=45)).isoformat()}


def _plan(event_type: str, payload: dict, directory: dict | None = None, rules=RULES):
    d = DIRECTORY if directory is None else directory
    return plan("ev-1", event_type, payload, d.get, rules, NOW)


def _booked(visits: list[dict]) -> dict:
    return {"itinerary_id": "it-1", "patient_id": "pat-1", "visits": visits,
            "what_to_bring": ["Your medication list", "Glasses"]}


def test_a_booked_itinerary_sends_the_patient_one_email_with_every_visit():
    first = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    visits = [_visit(2, "physical_therapy", first + timedelta(hours=1), "Gym 1"),
              _visit(1, "pain_medicine", first, "Room 3"),
              _visit(3, "psychology", first + timedelta(days=7))]
    result = _plan("itinerary.booked", _booked(visits))
    confirmations = [n for n in result.notifications if n.template == "itinerary_booked"]
    assert len(confirmations) == 1
    mail = confirmations[0]
    assert (mail.recipient_id, mail.channel, mail.address) == ("pat-1", "email", "ana@example.org")
    assert mail.due_at == NOW and mail.dedupe_key == "ev-1"
    assert "Pain medicine with Dr Lee in Room 3" in mail.body
    assert "Physical therapy with Dr Lee in Gym 1" in mail.body
    assert "Psychology with Dr Lee in r3" in mail.body  # no room name: its id
    assert mail.body.index("Pain medicine") < mail.body.index("Physical therapy")  # in order
    assert "Tue 10 Mar 2026 09:00-09:45" in mail.body  # London is on GMT in March
    assert "Your medication list" in mail.body and "Glasses" in mail.body
    assert len([ln for ln in mail.body.splitlines() if ln.startswith("- Tue")]) == 3


def test_each_visit_gets_its_reminders_at_the_configured_offsets():
    start = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    result = _plan("itinerary.booked", _booked([_visit(1, "pain_medicine", start),
                                                _visit(2, "acupuncture", start + timedelta(1))]))
    reminders = sorted((n.appointment_id, n.due_at) for n in result.notifications
                       if n.template == "appointment_reminder")
    assert reminders == [("appt-1", start - timedelta(hours=48)),
                         ("appt-1", start - timedelta(hours=2)),
                         ("appt-2", start + timedelta(1) - timedelta(hours=48)),
                         ("appt-2", start + timedelta(1) - timedelta(hours=2))]


def test_reminders_already_past_are_not_planned():
    soon = NOW + timedelta(hours=5)
    result = _plan("appointment.booked", {**_visit(1, "psychology", soon), "patient_id": "pat-1"})
    assert [n.due_at for n in result.notifications] == [soon - timedelta(hours=2)]
    assert reminder_times(NOW + timedelta(hours=1), parse_offsets("2h"), NOW) == []


def test_the_same_visit_booked_twice_gives_the_same_reminder_keys():
    """itinerary.booked and appointment.booked both describe each visit: one reminder."""
    start = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    via_itinerary = _plan("itinerary.booked", _booked([_visit(1, "pain_medicine", start)]))
    via_appointment = plan("ev-2", "appointment.booked",
                           {**_visit(1, "pain_medicine", start), "patient_id": "pat-1"},
                           DIRECTORY.get, RULES, NOW)
    keys = {n.dedupe_key for n in via_itinerary.notifications
            if n.template == "appointment_reminder"}
    assert keys == {n.dedupe_key for n in via_appointment.notifications}


def test_patient_language_preferred_channel_and_opt_outs_are_honoured():
    start = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    french_sms = Contact("pat-1", "patient", "Jeanne", email="j@example.org",
                         phone="+33600000000", preferred_channel="sms", language="fr-FR")
    result = _plan("itinerary.booked", _booked([_visit(1, "pain_medicine", start, "Salle 2")]),
                   {"pat-1": french_sms})
    mail = result.notifications[0]
    assert (mail.channel, mail.address, mail.language) == ("sms", "+33600000000", "fr")
    assert "10/03 09:00 Médecine de la douleur, Salle 2" in mail.body  # clinic time (London)
    opted_out = Contact("pat-1", "patient", "J", email="j@example.org", phone="+33600000000",
                        preferred_channel="sms", opted_out=frozenset({"sms"}))
    result = _plan("itinerary.booked", _booked([_visit(1, "pain_medicine", start)]),
                   {"pat-1": opted_out})
    assert {n.channel for n in result.notifications} == {"email"}
    everything_off = Contact("pat-1", "patient", opted_out=frozenset({"email", "sms", "in_app"}),
                             email="j@example.org")
    assert _plan("itinerary.booked", _booked([_visit(1, "pain_medicine", start)]),
                 {"pat-1": everything_off}).notifications == []


def test_a_language_we_have_no_words_for_falls_back_to_english():
    subject, _ = render("appointment_reminder", "de", "email",
                        {"discipline": "Psychology", "date": "d", "time": "t", "room": ""})
    assert subject.startswith("Reminder")


def test_someone_not_in_the_directory_still_gets_their_in_app_feed():
    result = _plan("waitlist.offered", {
        "waitlist_id": "w1", "patient_id": "pat-unknown", "discipline": "acupuncture",
        "provider_id": "prov-1", "start": "2026-03-05T10:00:00+00:00",
        "end": "2026-03-05T10:30:00+00:00", "offer_expires_at": "2026-03-03T10:00:00+00:00"})
    (offer,) = result.notifications
    assert (offer.recipient_id, offer.channel, offer.template) == (
        "pat-unknown", "in_app", "waitlist_offered")
    assert offer.provisional and offer.due_at == NOW + RULES.unknown_recipient_grace
    assert offer.subject == "Free Acupuncture appointment on Thu 05 Mar 2026 at 10:00"


def test_a_referral_alerts_the_triage_lead_by_email_and_feed():
    result = _plan("referral.received", {
        "referral_id": "ref-9", "condition": "crps",
        "patient": {"patient_id": "pat-9", "name": "Bo"}, "referrer": {"name": "GP"},
        "received_at": NOW.isoformat()})
    assert sorted((n.recipient_id, n.channel, n.address) for n in result.notifications) == [
        (TRIAGE_LEAD, "email", "lead@clinic"), (TRIAGE_LEAD, "in_app", TRIAGE_LEAD)]
    assert "ref-9" in result.notifications[0].subject


def test_an_unplaceable_itinerary_alerts_the_schedulers_with_the_reasons():
    result = _plan("itinerary.unplaceable", {"patient_id": "pat-1", "referral_id": "ref-1",
                                             "reasons": ["no psychology slot in 30 days"]})
    assert {n.recipient_id for n in result.notifications} == {SCHEDULERS}
    assert all("no psychology slot" in n.body for n in result.notifications)


def test_a_cancelled_visit_tells_patient_and_provider_and_drops_its_reminders():
    payload = {**_visit(1, "physical_therapy", NOW + timedelta(days=3)), "patient_id": "pat-1",
               "reason": "provider ill", "by": "sched-1"}
    result = _plan("appointment.cancelled", payload)
    assert sorted(n.recipient_id for n in result.notifications) == ["pat-1", "prov-1"]
    assert result.cancel_reminders_for == ["appt-1"]


def test_a_moved_visit_tells_both_providers_and_plans_reminders_for_the_new_time():
    new_start = NOW + timedelta(days=4)
    payload = {**_visit(1, "psychology", new_start), "patient_id": "pat-1",
               "previous_start": (NOW + timedelta(days=3)).isoformat(),
               "previous_end": (NOW + timedelta(days=3, hours=1)).isoformat(),
               "previous_provider_id": "prov-2", "by": "sched-1"}
    result = _plan("appointment.rescheduled", payload)
    told = sorted(n.recipient_id for n in result.notifications
                  if n.template == "appointment_rescheduled")
    assert told == ["pat-1", "prov-1", "prov-2"]
    assert result.cancel_reminders_for == ["appt-1"]
    assert sorted(n.due_at for n in result.notifications
                  if n.template == "appointment_reminder") == [
        new_start - timedelta(hours=48), new_start - timedelta(hours=2)]


def test_a_signed_note_tells_the_rest_of_the_care_team_by_id_only():
    payload = {"note_id": "note-7", "patient_id": "pat-1", "author_id": "prov-1",
               "discipline": "psychology", "kind": "progress",
               "signed_at": NOW.isoformat(), "measures": {"phq9": 14.0},
               "notify": ["prov-1", "prov-2", "prov-3", "prov-2"]}
    result = _plan("note.signed", payload)
    assert sorted(n.recipient_id for n in result.notifications) == ["prov-2", "prov-3"]
    for n in result.notifications:
        assert "note-7" in n.body and "pat-1" in n.body
        assert "phq9" not in n.body and "14" not in n.body


def test_events_the_notifier_does_not_care_about_plan_nothing():
    assert _plan("appointment.completed", {"appointment_id": "a"}).notifications == []


def test_offsets_and_backoff():
    assert parse_offsets("2h, 48h,30m") == (timedelta(hours=48), timedelta(hours=2),
                                             timedelta(minutes=30))
    with pytest.raises(InvalidInput):
        parse_offsets("two hours")
    assert [retry_delay(a, 1.0).total_seconds() for a in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert retry_delay(30, 1.0).total_seconds() == 600.0


def test_the_confirmation_greets_the_patient_by_name_when_known():
    start = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    known = _plan("itinerary.booked", _booked([_visit(1, "pain_medicine", start)]))
    assert known.notifications[0].body.startswith("Hello Ana Silva,\n")
    unknown = _plan("itinerary.booked", _booked([_visit(1, "pain_medicine", start)]), {})
    assert unknown.notifications[0].body.startswith("Hello,\n")


def test_an_sms_itinerary_is_short_per_line_and_keeps_every_visit():
    start = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    by_sms = Contact("pat-1", "patient", "Ana", phone="+4470000001", preferred_channel="sms")
    visits = [_visit(i, "physical_therapy", start + timedelta(days=7 * i), f"Gym {i}")
              for i in range(12)]
    result = _plan("itinerary.booked", _booked(visits), {"pat-1": by_sms})
    (sms,) = [n for n in result.notifications if n.template == "itinerary_booked"]
    assert sms.channel == "sms" and len(sms.body) < 1530
    for i in range(12):
        assert f"Physical therapy, Gym {i}" in sms.body
    assert "Bring: Your medication list; Glasses" in sms.body
