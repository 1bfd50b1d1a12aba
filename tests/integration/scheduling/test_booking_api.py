"""Booking through the API on a real database: what is refused and why, the visit's life
(check-in, completion, no-show, cancel, move), holds that expire, and the events that
leave through the outbox."""

import pytest
from sqlalchemy import func, select

MON_10 = "2026-03-23T10:00:00+00:00"


def test_a_provider_room_and_patient_are_never_in_two_places_at_once(clinic):
    first = clinic.book("pain", MON_10, patient="p-1", room_id=clinic.ids["room1"])
    assert first.status_code == 201, first.json

    provider_taken = clinic.book("pain", "2026-03-23T10:30:00+00:00", patient="p-2")
    assert provider_taken.status_code == 409
    assert provider_taken.json["detail"] == \
        "the provider is already booked Mon 23 Mar 2026 10:00-10:45"
    room_taken = clinic.book("psych", "2026-03-23T10:15:00+00:00", patient="p-3",
                             room_id=clinic.ids["room1"])
    assert room_taken.status_code == 409
    assert "room is already in use" in room_taken.json["detail"]
    patient_taken = clinic.book("pt", "2026-03-23T10:44:00+00:00", patient="p-1")
    assert patient_taken.status_code == 409
    assert "patient already has an appointment" in patient_taken.json["detail"]

    back_to_back = clinic.book("pain", "2026-03-23T10:45:00+00:00", patient="p-1")
    assert back_to_back.status_code == 201, back_to_back.json
    elsewhere = clinic.book("psych", MON_10, patient="p-3")
    assert elsewhere.status_code == 201


@pytest.mark.parametrize(("provider", "start", "extra", "status", "words"), [
    ("pain", "2026-03-23T08:00:00+00:00", {}, 409, "not working"),
    ("pain", "2026-03-21T10:00:00+00:00", {}, 409, "not working"),          # Saturday
    ("pain", "2026-03-20T07:00:00+00:00", {}, 409, "already passed"),
    ("pain", MON_10, {"visit_type": "acupuncture"}, 422, "does not offer"),
    ("pain", MON_10, {"room_id": "gym"}, 422, "not fit"),
    ("pain", "2026-03-23T16:30:00+00:00", {}, 409, "not working"),          # runs past 17:00
])
def test_bookings_the_clinic_refuses(clinic, provider, start, extra, status, words):
    if extra.get("room_id") == "gym":
        extra = {"room_id": clinic.ids["gym"]}
    refused = clinic.book(provider, start, **extra)
    assert refused.status_code == status, refused.json
    assert words in refused.json["detail"]
    assert refused.headers["Content-Type"] == "application/problem+json"


def test_a_visit_lives_booked_arrived_fulfilled_and_tells_everyone(clinic):
    appt = clinic.book("pt", MON_10, room_id=clinic.ids["gym"], visit_type="exercise",
                       referral_id="ref-9").json
    path = f"/appointments/{appt['id']}"
    too_early = clinic.post(path + "/check-in", {})
    assert too_early.status_code == 409
    clinic.clock.now = clinic.clock.now.replace(day=23, hour=9, minute=55)
    assert clinic.post(path + "/check-in", {}).json["status"] == "arrived"
    assert clinic.post(path + "/check-in", {}).status_code == 409
    clinic.clock.now = clinic.clock.now.replace(hour=10, minute=0)  # the visit has begun
    assert clinic.post(path + "/complete", {}).json["status"] == "fulfilled"
    assert clinic.post(path + "/cancel", {"reason": "too late"}).status_code == 409

    types = [e["type"] for e in clinic.events() if e["type"].startswith("appointment.")]
    assert types == ["appointment.booked", "appointment.checked_in", "appointment.completed"]
    booked = clinic.events("appointment.booked")[0]
    assert {k: booked["payload"][k] for k in ("appointment_id", "patient_id", "provider_id",
                                              "discipline", "room_name", "start", "end",
                                              "referral_id", "visit_type")} == {
        "appointment_id": appt["id"], "patient_id": "p-1", "provider_id": clinic.ids["pt"],
        "discipline": "physical_therapy", "room_name": "PT gym",
        "start": "2026-03-23T10:00:00+00:00", "end": "2026-03-23T10:45:00+00:00",
        "referral_id": "ref-9", "visit_type": "exercise"}
    assert booked["payload"]["provider_name"] == "Sam Reid"


def test_no_show_only_once_the_visit_has_started(clinic):
    appt = clinic.book("pain", MON_10).json
    path = f"/appointments/{appt['id']}/no-show"
    assert clinic.post(path, {}).status_code == 409
    clinic.clock.now = clinic.clock.now.replace(day=23, hour=10, minute=20)
    assert clinic.post(path, {}).json["status"] == "noshow"
    assert clinic.events("appointment.no_show")[0]["payload"]["appointment_id"] == appt["id"]


def test_cancel_frees_the_slot_and_reschedule_moves_it(clinic):
    appt = clinic.book("pain", MON_10).json
    missing_reason = clinic.post(f"/appointments/{appt['id']}/cancel", {})
    assert missing_reason.status_code == 422
    assert "reason" in missing_reason.json["errors"]
    cancelled = clinic.post(f"/appointments/{appt['id']}/cancel", {"reason": "patient ill"})
    assert cancelled.json["status"] == "cancelled"
    assert cancelled.json["cancel_reason"] == "patient ill"
    again = clinic.book("pain", MON_10, patient="p-2").json
    assert again["status"] == "booked"
    [event] = clinic.events("appointment.cancelled")
    assert event["payload"]["reason"] == "patient ill"
    assert event["payload"]["by"] == "scheduler-1"

    moved = clinic.post(f"/appointments/{again['id']}/reschedule",
                        {"start": "2026-03-23T10:15:00+00:00"})   # overlaps only itself
    assert moved.status_code == 200, moved.json
    assert moved.json["start"] == "2026-03-23T10:15:00+00:00"
    assert moved.json["end"] == "2026-03-23T11:00:00+00:00"
    blocker = clinic.book("pain", "2026-03-24T10:00:00+00:00", patient="p-3").json
    clash = clinic.post(f"/appointments/{again['id']}/reschedule",
                        {"start": "2026-03-24T10:30:00+00:00"})
    assert clash.status_code == 409
    assert blocker["id"] != again["id"]
    [event] = clinic.events("appointment.rescheduled")
    assert event["payload"]["previous_start"] == MON_10
    assert event["payload"]["start"] == "2026-03-23T10:15:00+00:00"
    other_discipline = clinic.post(f"/appointments/{again['id']}/reschedule",
                                   {"start": MON_10, "provider_id": clinic.ids["pt"]})
    assert other_discipline.status_code == 422


def test_a_hold_blocks_the_slot_until_it_expires_then_gives_way(clinic):
    hold = clinic.book("psych", MON_10, status="proposed", hold_minutes=15).json
    assert hold["status"] == "proposed"
    assert clinic.book("psych", MON_10, patient="p-2").status_code == 409
    assert clinic.events("appointment.booked") == []

    clinic.clock.advance(minutes=16)
    taken = clinic.book("psych", MON_10, patient="p-2")
    assert taken.status_code == 201, taken.json
    expired = clinic.get(f"/appointments/{hold['id']}").json
    assert (expired["status"], expired["cancel_reason"]) == ("cancelled", "hold expired")
    assert clinic.post(f"/appointments/{hold['id']}/confirm", {}).status_code == 409


def test_a_confirmed_hold_is_booked(clinic):
    hold = clinic.book("psych", MON_10, status="pending", hold_minutes=30,
                       itinerary_id="it-1").json
    confirmed = clinic.post(f"/appointments/{hold['id']}/confirm", {})
    assert confirmed.json["status"] == "booked"
    assert confirmed.json["hold_expires_at"] is None
    [event] = clinic.events("appointment.booked")
    assert event["payload"]["itinerary_id"] == "it-1"


def test_exclusion_constraints_refuse_an_overlap_the_check_missed(clinic, backend, monkeypatch):
    """On PostgreSQL the database itself refuses the second booking, even if the
    application's overlap check were fooled (as it can be under concurrency)."""
    if backend != "postgres":
        pytest.skip("SQLite relies on BEGIN IMMEDIATE; the race test proves it")
    from services.scheduling.diary import booking

    monkeypatch.setattr(booking, "_clash", lambda *a, **kw: None)
    assert clinic.book("pain", MON_10, patient="p-1", room_id=clinic.ids["room1"]
                       ).status_code == 201
    for provider, patient, room in (("pain", "p-2", None), ("psych", "p-3", "room1"),
                                    ("pt", "p-1", None)):
        extra = {"room_id": clinic.ids[room]} if room else {}
        refused = clinic.book(provider, "2026-03-23T10:30:00+00:00", patient=patient, **extra)
        assert refused.status_code == 409, refused.json
        assert "overlapping" in refused.json["detail"]
    runtime = clinic.app.extensions["paincare.runtime"]
    from services.scheduling.diary.db import appointments

    with runtime.db.transaction() as s:
        assert s.execute(select(func.count()).select_from(appointments)).scalar_one() == 1
