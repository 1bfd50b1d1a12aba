"""Recurring series (booked together, each occurrence movable, the unplaceable ones
reported) and the waitlist (a cancelled slot goes to the best match first)."""

from services.scheduling.diary import wishes
from services.scheduling.itineraries.handlers import expiry_loop
from shared.worker import Worker
from tests.support.clinic import wait_for

SERIES = {"patient_id": "p-7", "first_start": "2026-03-23T10:00:00+00:00", "minutes": 45,
          "interval_days": 7, "count": 6, "visit_type": "exercise"}


def test_a_six_week_pt_series_books_what_fits_and_reports_the_rest(clinic):
    sam = clinic.ids["pt"]
    assert clinic.post("/exceptions", {"provider_id": sam, "kind": "training",
                                       "first_day": "2026-04-06"}).status_code == 201
    assert clinic.book("pt", "2026-04-20T10:00:00+01:00", patient="p-8").status_code == 201

    made = clinic.post("/series", {**SERIES, "provider_id": sam, "room_id": clinic.ids["gym"]})
    assert made.status_code == 201, made.json
    booked = made.json["booked"]
    # 10:00 on the clock every Monday, across the change to BST on 29 March
    assert [a["start"] for a in booked] == [
        "2026-03-23T10:00:00+00:00", "2026-03-30T09:00:00+00:00",
        "2026-04-13T09:00:00+00:00", "2026-04-27T09:00:00+00:00"]
    assert [(u["occurrence"], u["start"][:10]) for u in made.json["unplaced"]] == [
        (3, "2026-04-06"), (5, "2026-04-20")]
    assert "not working" in made.json["unplaced"][0]["reason"]
    assert "already booked" in made.json["unplaced"][1]["reason"]
    series_id = made.json["id"]
    assert {a["series_id"] for a in booked} == {series_id}
    events = clinic.events("appointment.booked")
    assert sum(e["payload"]["series_id"] == series_id for e in events) == 4

    second = booked[1]["id"]
    moved = clinic.post(f"/appointments/{second}/reschedule",
                        {"start": "2026-03-31T14:00:00+01:00"})
    assert moved.status_code == 200, moved.json
    shown = clinic.get(f"/series/{series_id}").json
    assert [a["start"] for a in shown["booked"]] == [
        "2026-03-23T10:00:00+00:00", "2026-03-31T13:00:00+00:00",
        "2026-04-13T09:00:00+00:00", "2026-04-27T09:00:00+00:00"]
    assert len(shown["unplaced"]) == 2


def test_a_series_that_cannot_be_placed_at_all_is_refused_with_the_reasons(clinic):
    refused = clinic.post("/series", {**SERIES, "provider_id": clinic.ids["pt"],
                                      "first_start": "2026-03-23T07:00:00+00:00", "count": 2})
    assert refused.status_code == 409
    assert set(refused.json["errors"]) == {"occurrence.1", "occurrence.2"}
    assert clinic.get("/appointments", patient_id="p-7").json == []


def _wish(clinic, patient: str, **kw: object) -> dict:
    made = clinic.post("/waitlist", {"patient_id": patient, "discipline": "physical_therapy",
                                     "visit_minutes": 45, **kw})
    assert made.status_code == 201, made.json
    return made.json


def test_a_cancelled_slot_goes_to_the_best_waiting_match_first(clinic):
    booked = clinic.book("pt", "2026-03-24T10:00:00+00:00", patient="p-1").json
    routine = _wish(clinic, "w-routine")
    _wish(clinic, "w-afternoons", priority="urgent", day_start="13:00")
    _wish(clinic, "w-psych", priority="urgent", discipline="psychology")
    busy = _wish(clinic, "w-busy", priority="urgent")
    clinic.book("psych", "2026-03-24T10:30:00+00:00", patient="w-busy")
    soon = _wish(clinic, "w-soon", priority="soon", weekdays=[1])   # Tuesdays

    cancelled = clinic.post(f"/appointments/{booked['id']}/cancel", {"reason": "moved away"})
    assert cancelled.status_code == 200
    [offer] = clinic.events("waitlist.offered")
    assert offer["payload"]["waitlist_id"] == soon["id"]   # the urgent ones don't fit
    assert offer["payload"]["patient_id"] == "w-soon"
    assert offer["payload"]["start"] == "2026-03-24T10:00:00+00:00"
    assert offer["payload"]["provider_name"] == "Sam Reid"
    assert clinic.get(f"/waitlist/{busy['id']}").json["status"] == "waiting"

    # The offer holds the slot for them
    assert clinic.book("pt", "2026-03-24T10:00:00+00:00", patient="p-9").status_code == 409

    declined = clinic.post(f"/waitlist/{soon['id']}/answer", {"accept": False})
    assert declined.json["status"] == "waiting"
    offers = clinic.events("waitlist.offered")
    assert [o["payload"]["patient_id"] for o in offers] == ["w-soon", "w-routine"]

    accepted = clinic.post(f"/waitlist/{routine['id']}/answer", {"accept": True})
    assert accepted.status_code == 200, accepted.json
    assert accepted.json["status"] == "booked"
    diary = clinic.get("/appointments", provider_id=clinic.ids["pt"], status="booked").json
    assert [(a["patient_id"], a["start"]) for a in diary] == [
        ("w-routine", "2026-03-24T10:00:00+00:00")]
    assert clinic.events("appointment.booked")[-1]["payload"]["patient_id"] == "w-routine"
    assert clinic.post(f"/waitlist/{routine['id']}/answer", {"accept": True}).status_code == 409


def test_a_wish_must_make_sense(clinic):
    for bad, field in (({"earliest": "2026-04-02", "latest": "2026-04-01"}, "latest"),
                       ({"day_start": "14:00", "day_end": "09:00"}, "day_end"),
                       ({"provider_id": "nobody"}, None),
                       ({"provider_id": ""}, "provider_id"),  # was a foreign-key 500
                       ({"weekdays": [7]}, "weekdays.0")):
        refused = clinic.post("/waitlist", {"patient_id": "p-1", "discipline": "psychology",
                                            "visit_minutes": 50, **bad})
        assert refused.status_code in (404, 422), refused.json
        if field:
            assert field in refused.json["errors"], refused.json


def test_nobody_waiting_means_no_offer(clinic):
    booked = clinic.book("pt", "2026-03-24T10:00:00+00:00").json
    clinic.post(f"/appointments/{booked['id']}/cancel", {"reason": "weather"})
    assert clinic.events("waitlist.offered") == []


def test_moving_a_visit_offers_the_part_of_the_old_slot_that_is_really_free(clinic):
    booked = clinic.book("pt", "2026-03-24T10:00:00+00:00", minutes=60).json
    waiting = _wish(clinic, "w-short", visit_minutes=30)
    moved = clinic.post(f"/appointments/{booked['id']}/reschedule",
                        {"start": "2026-03-24T10:30:00+00:00"})
    assert moved.status_code == 200, moved.json
    [offer] = clinic.events("waitlist.offered")
    assert offer["payload"]["waitlist_id"] == waiting["id"]
    assert (offer["payload"]["start"], offer["payload"]["end"]) == (
        "2026-03-24T10:00:00+00:00", "2026-03-24T10:30:00+00:00")


def test_an_unanswered_offer_expires_and_goes_to_the_next_in_line(clinic):
    booked = clinic.book("pt", "2026-03-24T10:00:00+00:00").json
    first = _wish(clinic, "w-first", priority="urgent")
    _wish(clinic, "w-second")
    clinic.post(f"/appointments/{booked['id']}/cancel", {"reason": "moved away"})
    [offer] = clinic.events("waitlist.offered")
    assert offer["payload"]["offer_expires_at"] == "2026-03-21T08:00:00+00:00"  # a day

    desk = clinic.app.extensions["scheduling.diary"]
    assert desk.run(lambda s, now: wishes.expire_holds(desk, s, now)) == 0
    clinic.clock.advance(hours=25)
    assert desk.run(lambda s, now: wishes.expire_holds(desk, s, now)) == 1
    assert clinic.get(f"/waitlist/{first['id']}").json["status"] == "waiting"
    assert [o["payload"]["patient_id"] for o in clinic.events("waitlist.offered")] == [
        "w-first", "w-second"]
    late = clinic.post(f"/waitlist/{first['id']}/answer", {"accept": True})
    assert late.status_code == 409


def test_the_workers_expiry_loop_passes_an_unanswered_offer_on(clinic):
    booked = clinic.book("pt", "2026-03-24T10:00:00+00:00").json
    first = _wish(clinic, "w-first", priority="urgent")
    _wish(clinic, "w-second")
    clinic.post(f"/appointments/{booked['id']}/cancel", {"reason": "moved away"})
    runtime = clinic.app.extensions["paincare.runtime"]
    loop = expiry_loop(runtime, clock=clinic.clock, every=0.05)
    with Worker(runtime, [], relay=False, extra_loops=[loop]):
        clinic.clock.advance(hours=25)
        wait_for(lambda: clinic.get(f"/waitlist/{first['id']}").json["status"] == "waiting",
                 timeout=10, what="the worker to let the offer lapse")
    assert [o["payload"]["patient_id"] for o in clinic.events("waitlist.offered")] == [
        "w-first", "w-second"]
