"""Itineraries on the clinic's real diary, on SQLite and PostgreSQL, with answers worked
out by hand.

The clinic (conftest): Dr Okafor (pain medicine), Sam Reid (PT) and Dr Lind (psychology)
work Mon-Fri 09:00-17:00 London time (= UTC in March before the 29th); Consulting room 1
suits pain medicine and psychology, the PT gym suits PT. Now is Fri 20 Mar 2026 08:00.
Searches start on Monday 23 March; the grid is 15 minutes.
"""

from __future__ import annotations

import time
from datetime import date

import pytest
from sqlalchemy import select, update

from services.scheduling.diary.db import appointments, waitlist
from services.scheduling.itineraries.db import itineraries
from services.scheduling.itineraries.handlers import expiry_loop, handlers
from services.scheduling.itineraries.model import WIDENED_NOTE
from services.scheduling.itineraries.planner import Planner
from services.scheduling.itineraries.use_cases import releasing
from shared.events import new_event
from shared.worker import Worker
from tests.support.clinic import bearer, wait_for

PAIN = {"discipline": "pain_medicine", "visit_minutes": 60, "sessions": 1, "interval_days": 0}
PT = {"discipline": "physical_therapy", "visit_minutes": 45, "sessions": 1,
      "interval_days": 7, "after": ["pain_medicine"]}
PSYCH = {"discipline": "psychology", "visit_minutes": 45, "sessions": 1, "interval_days": 7,
         "after": ["pain_medicine"]}


def ask(**extra: object) -> dict:
    return {"patient_id": "p-1", "referral_id": "ref-1", "pathway": [PAIN, PT, PSYCH],
            "from": "2026-03-23", "to": "2026-04-10", **extra}


def plan(clinic, visits: list[dict]) -> list[tuple[str, str, str, str]]:
    """(discipline, provider key, 'Mon 09:00-10:00', room key) for each visit."""
    keys = {v: k for k, v in clinic.ids.items()}

    def hhmm(iso: str) -> str:
        return iso[11:16]

    return [(v["discipline"][:5], keys[v["provider_id"]],
             f"{date.fromisoformat(v['start'][:10]):%a %d} {hhmm(v['start'])}-{hhmm(v['end'])}",
             keys.get(v["room_id"], "-")) for v in visits]


CLUSTER = [("pain_", "pain", "Mon 23 09:00-10:00", "room1"),
           ("physi", "pt", "Mon 23 10:00-10:45", "gym"),
           ("psych", "psych", "Mon 23 10:45-11:30", "room1")]


def propose(clinic, **extra: object) -> dict:
    made = clinic.post("/itineraries", ask(**extra))
    assert made.status_code == 201, made.json
    return made.json


# --- search ------------------------------------------------------------------------------


def test_search_ranks_a_same_day_cluster_in_clinical_order_first(clinic):
    found = clinic.post("/itineraries/search", ask())
    assert found.status_code == 200, found.json
    best = found.json["itineraries"][0]
    assert plan(clinic, best["visits"]) == CLUSTER
    assert best["first_visit_same_day"] is True
    assert best["score"]["trips"] == 1 and best["score"]["waiting_minutes"] == 0
    assert best["notes"][0] == ("Same-day first visit on 2026-03-23: pain medicine, "
                                "physical therapy, psychology.")
    assert [c["rank"] for c in found.json["itineraries"]] == \
        list(range(1, len(found.json["itineraries"]) + 1))
    # a search holds nothing
    assert clinic.get("/appointments", patient_id="p-1").json == []


def test_without_capacity_for_a_cluster_the_first_visit_splits_and_says_why(clinic):
    """Sam Reid (PT) is on leave on Monday: pain medicine and psychology that morning, PT
    on Tuesday ranks first (two trips, first visit on the earliest day); the whole
    cluster on Tuesday (a day later) ranks next."""
    leave = clinic.post("/exceptions", {"provider_id": clinic.ids["pt"], "kind": "leave",
                                        "first_day": "2026-03-23"})
    assert leave.status_code == 201, leave.json
    split, later = clinic.post("/itineraries/search", ask()).json["itineraries"][:2]
    assert plan(clinic, split["visits"]) == [
        ("pain_", "pain", "Mon 23 09:00-10:00", "room1"),
        ("psych", "psych", "Mon 23 10:00-10:45", "room1"),
        ("physi", "pt", "Tue 24 09:00-09:45", "gym")]
    assert split["first_visit_same_day"] is False
    assert split["notes"][:2] == [
        "No same-day first visit across all 3 disciplines on 2026-03-23 (physical therapy: "
        "no physical therapy provider is free for 45 min on 2026-03-23).",
        "First visit split over 2 days: pain medicine, psychology on 2026-03-23; "
        "physical therapy on 2026-03-24."]
    assert (split["score"]["trips"], split["score"]["total"]) == (2, 16.0)
    assert plan(clinic, later["visits"]) == [
        ("pain_", "pain", "Tue 24 09:00-10:00", "room1"),
        ("physi", "pt", "Tue 24 10:00-10:45", "gym"),
        ("psych", "psych", "Tue 24 10:45-11:30", "room1")]
    assert later["notes"][1] == ("Same-day first visit on 2026-03-24, 1 day(s) after the "
                                 "earliest possible first visit.")
    assert later["score"]["total"] == 33.0


@pytest.mark.parametrize(("body", "field"), [
    ({"from": "0001-01-01"}, "from"),
    ({"to": "9999-12-31"}, "to"),
    ({"patient_id": "p\x00-1"}, "patient_id"),
    ({"rules": {"min_gap_minutes": 90, "max_gap_minutes": 30}}, "rules"),
    ({"pathway": []}, "pathway"),
    ({"unavailable": [{"start": "2026-03-23T11:00:00+00:00",
                       "end": "2026-03-23T10:00:00+00:00"}]}, "unavailable.0.end"),
])
def test_a_search_the_clinic_cannot_run_is_refused_with_the_field(clinic, body, field):
    refused = clinic.post("/itineraries/search", ask(**body))
    assert refused.status_code == 422, refused.json
    assert field in refused.json["errors"]


def test_only_schedulers_and_services_work_with_itineraries(clinic):
    specialist = bearer(clinic.app.extensions["paincare.runtime"].settings, "specialist",
                        discipline="psychology")
    for path in ("/itineraries/search", "/itineraries"):
        assert clinic.post(path, ask(), specialist).status_code == 403
    assert clinic.get("/itineraries", specialist).status_code == 403


def test_gaps_and_the_patients_unavailable_time(clinic):
    """Min gap 15: each visit 15 min after the last. Patient away 10:00-11:00 with a max
    gap of 30: PT cannot follow a 09:00 pain visit, so the whole cluster starts at 11:00."""
    spaced = clinic.post("/itineraries/search", ask(rules={"min_gap_minutes": 15})).json
    assert plan(clinic, spaced["itineraries"][0]["visits"]) == [
        ("pain_", "pain", "Mon 23 09:00-10:00", "room1"),
        ("physi", "pt", "Mon 23 10:15-11:00", "gym"),
        ("psych", "psych", "Mon 23 11:15-12:00", "room1")]
    away = clinic.post("/itineraries/search", ask(
        rules={"max_gap_minutes": 30},
        unavailable=[{"start": "2026-03-23T10:00:00+00:00",
                      "end": "2026-03-23T11:00:00+00:00"}])).json
    assert plan(clinic, away["itineraries"][0]["visits"]) == [
        ("pain_", "pain", "Mon 23 11:00-12:00", "room1"),
        ("physi", "pt", "Mon 23 12:00-12:45", "gym"),
        ("psych", "psych", "Mon 23 12:45-13:30", "room1")]


def test_a_series_stays_with_its_provider(clinic):
    """Priya Shah (PT) is free at 09:00 on Mon 30 while Sam Reid is booked until 12:00
    (London time, BST from the 29th: 08:00-11:00 UTC); the second PT session still goes to
    Sam, at 12:00 (11:00 UTC)."""
    made = clinic.post("/providers", {"name": "Priya Shah", "discipline": "physical_therapy"},
                       clinic.admin)
    clinic.ids["pt2"] = made.json["id"]
    assert clinic.client.put(f"/providers/{clinic.ids['pt2']}/template", json={"blocks": [
        {"weekday": 0, "start": "09:00", "end": "17:00", "valid_from": "2026-03-30"}]},
        headers=clinic.admin).status_code == 200
    for hour in ("08", "09", "10"):
        taken = clinic.book("pt", f"2026-03-30T{hour}:00:00+00:00", minutes=60, patient="p-9")
        assert taken.status_code == 201, taken.json
    two_pt = {**PT, "sessions": 2}
    best = clinic.post("/itineraries/search", ask(pathway=[PAIN, two_pt],
                                                  rules={"interval_tolerance_days": 0})
                       ).json["itineraries"][0]
    assert plan(clinic, best["visits"]) == [
        ("pain_", "pain", "Mon 23 09:00-10:00", "room1"),
        ("physi", "pt", "Mon 23 10:00-10:45", "gym"),
        ("physi", "pt", "Mon 30 11:00-11:45", "gym")]
    assert best["score"]["provider_changes"] == 0


def test_a_full_clinic_says_why_and_holds_nothing(clinic):
    """Dr Lind works only Mondays 09:00-10:00 and that hour is booked: in the week of the
    23rd there is no psychology visit to be had."""
    assert clinic.client.put(f"/providers/{clinic.ids['psych']}/template", json={"blocks": [
        {"weekday": 0, "start": "09:00", "end": "10:00"}]},
        headers=clinic.admin).status_code == 200
    full = clinic.book("psych", "2026-03-23T09:00:00+00:00", minutes=60, patient="p-9")
    assert full.status_code == 201, full.json
    found = clinic.post("/itineraries/search", ask(to="2026-03-27")).json
    assert found["itineraries"] == []
    assert found["unplaceable"] == ["The clinic has no psychology provider with free time."]
    refused = clinic.post("/itineraries", ask(to="2026-03-27"))
    assert refused.status_code == 409
    assert refused.json["errors"]["reasons"] == found["unplaceable"]
    assert clinic.get("/appointments", patient_id="p-1").json == []
    assert clinic.events("itinerary.proposed") == []


# --- holds -------------------------------------------------------------------------------


def test_held_slots_are_refused_to_everyone_else_until_the_hold_lapses(clinic):
    it = propose(clinic)
    assert it["status"] == "proposed" and it["hold_expires_at"].startswith("2026-03-20T08:15")
    assert plan(clinic, it["visits"]) == CLUSTER
    assert {v["status"] for v in it["visits"]} == {"proposed"}

    provider_held = clinic.book("pain", "2026-03-23T09:30:00+00:00", patient="p-2")
    assert provider_held.status_code == 409
    assert "the provider is already booked" in provider_held.json["detail"]
    room_held = clinic.book("psych", "2026-03-23T09:00:00+00:00", patient="p-3",
                            room_id=clinic.ids["room1"])
    assert room_held.status_code == 409
    assert "room is already in use" in room_held.json["detail"]
    # and a second itinerary search works around the holds
    other = clinic.post("/itineraries/search", ask(patient_id="p-2")).json["itineraries"][0]
    assert plan(clinic, other["visits"])[0] == ("pain_", "pain", "Mon 23 11:30-12:30", "room1")

    proposed = clinic.events("itinerary.proposed")
    assert len(proposed) == 1 and proposed[0]["payload"]["itinerary_id"] == it["id"]
    assert [v["appointment_id"] for v in proposed[0]["payload"]["visits"]] == \
        [v["appointment_id"] for v in it["visits"]]

    clinic.clock.advance(minutes=16)
    assert clinic.get(f"/itineraries/{it['id']}").json["status"] == "expired"
    after = clinic.book("pain", "2026-03-23T09:30:00+00:00", patient="p-2")
    assert after.status_code == 201, after.json


def test_confirm_books_every_visit_at_once_and_tells_everyone(clinic):
    it = propose(clinic)
    done = clinic.post(f"/itineraries/{it['id']}/confirm", {})
    assert done.status_code == 200, done.json
    assert done.json["status"] == "booked" and done.json["hold_expires_at"] is None
    assert {v["status"] for v in done.json["visits"]} == {"booked"}
    booked = clinic.events("itinerary.booked")
    assert len(booked) == 1
    assert booked[0]["payload"]["referral_id"] == "ref-1"
    assert [v["discipline"] for v in booked[0]["payload"]["visits"]] == \
        ["pain_medicine", "physical_therapy", "psychology"]
    assert len(booked[0]["payload"]["what_to_bring"]) == 3
    per_visit = clinic.events("appointment.booked")
    assert sorted(e["payload"]["appointment_id"] for e in per_visit) == \
        sorted(v["appointment_id"] for v in it["visits"])
    assert {e["payload"]["itinerary_id"] for e in per_visit} == {it["id"]}
    again = clinic.post(f"/itineraries/{it['id']}/confirm", {})
    assert again.status_code == 409


def test_a_slot_stolen_after_the_hold_lapsed_is_searched_again_and_the_caller_told(clinic):
    """The hold lapses; another patient books Dr Okafor at 09:00-09:45. Confirming finds
    the pain visit gone: nothing is booked, the cluster is searched again (09:45 onwards)
    and held anew, and the 409 says what changed. Confirming that one books it."""
    it = propose(clinic)
    clinic.clock.advance(minutes=20)
    thief = clinic.book("pain", "2026-03-23T09:00:00+00:00", patient="p-2")
    assert thief.status_code == 201, thief.json

    lost = clinic.post(f"/itineraries/{it['id']}/confirm", {})
    assert lost.status_code == 409, lost.json
    changes = lost.json["errors"]["changes"]
    assert changes[0] == ("Pain medicine session 1 (Mon 23 Mar 2026 09:00 with Dr Okafor) "
                          "was lost: the provider is already booked Mon 23 Mar 2026 "
                          "09:00-09:45.")
    assert "Pain medicine session 1 moves from Mon 23 Mar 2026 09:00 with Dr Okafor to " \
           "Mon 23 Mar 2026 09:45 with Dr Okafor." in changes
    assert clinic.events("itinerary.booked") == []
    assert [e["payload"]["appointment_id"] for e in clinic.events("appointment.booked")] == \
        [thief.json["id"]]

    fresh = clinic.get(f"/itineraries/{it['id']}").json
    assert fresh["status"] == "proposed" and fresh["revision"] == 2
    assert fresh["hold_expires_at"].startswith("2026-03-20T08:35")
    assert plan(clinic, fresh["visits"]) == [
        ("pain_", "pain", "Mon 23 09:45-10:45", "room1"),
        ("physi", "pt", "Mon 23 10:45-11:30", "gym"),
        ("psych", "psych", "Mon 23 11:30-12:15", "room1")]
    assert fresh["notes"][0] == changes[0]
    assert len(clinic.events("itinerary.proposed")) == 2

    done = clinic.post(f"/itineraries/{it['id']}/confirm", {})
    assert done.status_code == 200, done.json
    assert [v["appointment_id"] for v in clinic.events("itinerary.booked")[0]["payload"]
            ["visits"]] == [v["appointment_id"] for v in fresh["visits"]]


def test_a_lapsed_hold_nobody_took_still_confirms(clinic):
    it = propose(clinic)
    clinic.clock.advance(minutes=30)
    runtime = clinic.app.extensions["paincare.runtime"]
    itins = Planner(clinic.app.extensions["scheduling.diary"])
    with runtime.db.transaction() as s:
        assert releasing.expire_holds(itins, s, clinic.clock.now) == 1
    expired = clinic.get(f"/itineraries/{it['id']}").json
    assert expired["status"] == "expired"
    assert {v["status"] for v in expired["visits"]} == {"cancelled"}
    done = clinic.post(f"/itineraries/{it['id']}/confirm", {})
    assert done.status_code == 200, done.json
    assert plan(clinic, done.json["visits"]) == CLUSTER
    assert {v["status"] for v in done.json["visits"]} == {"booked"}


def test_the_workers_expiry_loop_releases_a_lapsed_hold(clinic):
    it = propose(clinic)
    runtime = clinic.app.extensions["paincare.runtime"]
    loop = expiry_loop(runtime, clock=clinic.clock, every=0.05)
    with Worker(runtime, [], relay=False, extra_loops=[loop]):
        clinic.clock.advance(minutes=14)
        time.sleep(0.3)
        assert clinic.get(f"/itineraries/{it['id']}").json["status"] == "proposed"
        clinic.clock.advance(minutes=2)
        wait_for(lambda: clinic.get(f"/itineraries/{it['id']}").json["visits"][0]["status"]
                 == "cancelled", timeout=10, what="the expiry loop")
    released = clinic.get(f"/itineraries/{it['id']}").json
    assert released["status"] == "expired"
    assert {v["status"] for v in released["visits"]} == {"cancelled"}
    assert clinic.book("pain", "2026-03-23T09:00:00+00:00", patient="p-2").status_code == 201


# --- cancel and move ---------------------------------------------------------------------


def test_cancel_the_whole_itinerary(clinic):
    it = propose(clinic)
    assert clinic.post(f"/itineraries/{it['id']}/confirm", {}).status_code == 200
    gone = clinic.post(f"/itineraries/{it['id']}/cancel", {"reason": "patient moved away"})
    assert gone.status_code == 200, gone.json
    assert gone.json["status"] == "cancelled"
    assert {v["status"] for v in gone.json["visits"]} == {"cancelled"}
    assert len(clinic.events("appointment.cancelled")) == 3
    assert clinic.events("itinerary.cancelled")[0]["payload"]["reason"] == "patient moved away"
    assert clinic.book("pain", "2026-03-23T09:00:00+00:00", patient="p-2").status_code == 201


def test_move_one_visit_only_within_the_pathways_constraints(clinic):
    it = propose(clinic)
    by = {v["discipline"]: v["appointment_id"] for v in it["visits"]}
    path = f"/itineraries/{it['id']}/visits/{{}}/move"

    before_pain = clinic.post(path.format(by["physical_therapy"]),
                              {"start": "2026-03-23T11:30:00+00:00"})
    assert before_pain.status_code == 200, before_pain.json  # PT last, after psychology
    early = clinic.post(path.format(by["psychology"]), {"start": "2026-03-23T08:00:00+00:00"})
    assert early.status_code == 409
    assert "The first psychology visit must come after the first pain medicine visit." in \
        early.json["errors"]["start"]
    far = clinic.post(path.format(by["psychology"]), {"start": "2026-03-23T14:00:00+00:00"})
    assert far.status_code == 409
    assert any("allowed 0-60" in p for p in far.json["errors"]["start"])

    moved = clinic.post(path.format(by["psychology"]), {"start": "2026-03-23T10:15:00+00:00"})
    assert moved.status_code == 200, moved.json
    assert plan(clinic, moved.json["visits"]) == [
        ("pain_", "pain", "Mon 23 09:00-10:00", "room1"),
        ("psych", "psych", "Mon 23 10:15-11:00", "room1"),
        ("physi", "pt", "Mon 23 11:30-12:15", "gym")]


def _propose_a_pt_series(clinic, **rules: int) -> tuple[dict, dict]:
    """Pain medicine and PT on Mon 23; the second PT session a week later, Mon 30 at 09:00
    London (08:00 UTC, BST from the 29th). Tolerance 1: session 2 may fall 6-8 days after
    session 1, i.e. Sun 29 (closed), Mon 30 or Tue 31; Wed 1 Apr is 9 days."""
    it = propose(clinic, pathway=[PAIN, {**PT, "sessions": 2}],
                 rules={"interval_tolerance_days": 1, **rules})
    follow_up = next(v for v in it["visits"] if v["session_index"] == 2)
    assert (follow_up["start"], follow_up["provider_id"]) == \
        ("2026-03-30T08:00:00+00:00", clinic.ids["pt"])
    return it, follow_up


def test_the_moves_offered_for_a_follow_up_are_the_moves_the_clinic_accepts(clinic):
    it, follow_up = _propose_a_pt_series(clinic)
    path = f"/itineraries/{it['id']}/visits/{follow_up['appointment_id']}"
    offered = clinic.get(f"{path}/moves")
    assert offered.status_code == 200, offered.json
    options = offered.json
    assert options, "Sam Reid is free on Mon 30 and Tue 31"
    # every option keeps the series' interval (6-8 days after Mon 23), is not where the
    # visit already is, keeps its length, and lands in the PT gym
    assert {o["start"][:10] for o in options} == {"2026-03-30", "2026-03-31"}
    assert follow_up["start"] not in [o["start"] for o in options]
    assert {(o["provider_id"], o["room_id"]) for o in options} == \
        {(clinic.ids["pt"], clinic.ids["gym"])}
    assert all(o["start"][11:16] >= "08:00" and o["end"][11:16] <= "16:00" for o in options)
    # Sam is free on Wed 1 Apr (the diary offers it), but 9 days breaks the interval
    wednesday = "2026-04-01T08:00:00+00:00"
    free = clinic.get("/availability", **{"from": "2026-03-28", "to": "2026-04-01"},
                      provider_id=clinic.ids["pt"], visit_minutes=45, step_minutes=30).json
    assert wednesday in [s["start"] for s in free[0]["slots"]]
    assert not any(o["start"].startswith("2026-04-01") for o in options)
    refused = clinic.post(f"{path}/move", {"start": wednesday})
    assert refused.status_code == 409
    assert "physical therapy sessions 1 and 2 are 9 days apart; allowed 6-8." in \
        refused.json["errors"]["start"]
    # the first and the last option are each accepted by the move
    for option in (options[0], options[-1]):
        moved = clinic.post(f"{path}/move", {"start": option["start"]})
        assert moved.status_code == 200, moved.json
        now_at = next(v for v in moved.json["visits"]
                      if v["appointment_id"] == follow_up["appointment_id"])
        assert (now_at["start"], now_at["room_id"]) == (option["start"], option["room_id"])


def test_a_widened_itinerary_is_offered_the_moves_its_wider_tolerance_allows(clinic):
    """Placed at the fallback tolerance (its note says so): the move accepts 5-9 days, and
    so the offers reach Wed 1 Apr as well."""
    it, follow_up = _propose_a_pt_series(clinic, fallback_tolerance_days=2)
    runtime = clinic.app.extensions["paincare.runtime"]
    with runtime.db.transaction() as s:
        s.execute(update(itineraries).where(itineraries.c.id == it["id"]).values(
            notes=[f"{WIDENED_NOTE} within +/- 1 day(s): searched at +/- 2."]))
    path = f"/itineraries/{it['id']}/visits/{follow_up['appointment_id']}"
    options = clinic.get(f"{path}/moves").json
    wednesday = [o for o in options if o["start"].startswith("2026-04-01")]
    assert wednesday
    assert clinic.post(f"{path}/move", {"start": wednesday[-1]["start"]}).status_code == 200


def test_moves_of_a_visit_that_cannot_move_or_a_question_that_cannot_be_asked(clinic):
    it, follow_up = _propose_a_pt_series(clinic)
    path = f"/itineraries/{it['id']}/visits/{follow_up['appointment_id']}/moves"
    for query, field in (({"days": 8}, "days"), ({"step_minutes": 0}, "step_minutes"),
                         ({"days": "soon"}, "days"),
                         ({"provider_id": clinic.ids["psych"]}, "provider_id")):
        refused = clinic.get(path, **query)
        assert refused.status_code == 422, (query, refused.json)
        assert refused.mimetype == "application/problem+json"
        assert f"query.{field}" in refused.json["errors"]
    assert clinic.get(f"/itineraries/{it['id']}/visits/nobody/moves").status_code == 404
    assert clinic.get(f"/itineraries/nothing/visits/{follow_up['appointment_id']}/moves"
                      ).status_code == 404
    specialist = bearer(clinic.app.extensions["paincare.runtime"].settings, "specialist",
                        discipline="physical_therapy")
    assert clinic.get(path, specialist).status_code == 403
    assert clinic.post(f"/itineraries/{it['id']}/cancel", {"reason": "moved away"}
                       ).status_code == 200
    cancelled = clinic.get(path)
    assert cancelled.status_code == 409
    assert cancelled.json["detail"] == "a visit of a cancelled itinerary cannot be moved"


def test_the_moves_are_in_the_api_document(clinic):
    spec = clinic.client.get("/openapi.json").json
    moves = spec["paths"]["/itineraries/{itinerary_id}/visits/{appointment_id}/moves"]["get"]
    assert {p["name"] for p in moves["parameters"] if p["in"] == "query"} == \
        {"provider_id", "days", "step_minutes"}
    assert {"200", "409", "422"} <= set(moves["responses"])


# --- referral.accepted -------------------------------------------------------------------


def accepted(referral_id: str, patient_id: str, pathway: list[dict]) -> object:
    return new_event("referral.accepted", {
        "referral_id": referral_id, "patient_id": patient_id, "priority": "soon",
        "target_days": 14, "due_by": "2026-04-03", "pathway": pathway,
        "accepted_by": "lead-1"}, producer="referrals")


def handle(clinic, envelope) -> None:
    runtime = clinic.app.extensions["paincare.runtime"]
    with runtime.db.transaction() as s:
        handlers(runtime, clock=clinic.clock)[envelope.type](s, envelope)


def test_an_accepted_referral_is_proposed_an_itinerary_by_scheduling_itself(clinic):
    handle(clinic, accepted("ref-7", "p-7", [PAIN, PT]))
    proposed = clinic.events("itinerary.proposed")
    assert len(proposed) == 1
    payload = proposed[0]["payload"]
    assert payload["referral_id"] == "ref-7" and payload["patient_id"] == "p-7"
    # now is Fri 20 Mar 08:00: the first clinic slot is that very morning
    assert [(v["discipline"], v["start"]) for v in payload["visits"]] == [
        ("pain_medicine", "2026-03-20T09:00:00+00:00"),
        ("physical_therapy", "2026-03-20T10:00:00+00:00")]
    held = clinic.get("/appointments", patient_id="p-7").json
    assert {a["status"] for a in held} == {"proposed"}
    # a second delivery of an accepted referral proposes nothing new
    handle(clinic, accepted("ref-7", "p-7", [PAIN, PT]))
    assert len(clinic.events("itinerary.proposed")) == 1
    listed = clinic.get("/itineraries", referral_id="ref-7").json
    assert [i["status"] for i in listed] == ["proposed"]


def test_an_unplaceable_referral_is_reported_and_waitlisted(clinic):
    closed = clinic.post("/exceptions", {"provider_id": clinic.ids["pain"], "kind": "leave",
                                         "first_day": "2026-03-20", "last_day": "2026-09-30"})
    assert closed.status_code == 201, closed.json
    handle(clinic, accepted("ref-8", "p-8", [PAIN, PSYCH]))
    assert clinic.events("itinerary.proposed") == []
    unplaceable = clinic.events("itinerary.unplaceable")
    assert len(unplaceable) == 1
    assert unplaceable[0]["payload"]["reasons"] == [
        "The clinic has no pain medicine provider with free time."]
    runtime = clinic.app.extensions["paincare.runtime"]
    with runtime.db.transaction() as s:
        waiting = s.execute(select(waitlist.c.discipline, waitlist.c.priority,
                                   waitlist.c.referral_id, waitlist.c.status)
                            .where(waitlist.c.patient_id == "p-8")
                            .order_by(waitlist.c.discipline)).all()
        held = s.execute(select(appointments.c.id)
                         .where(appointments.c.patient_id == "p-8")).all()
    assert [tuple(w) for w in waiting] == [("pain_medicine", "soon", "ref-8", "waiting"),
                                           ("psychology", "soon", "ref-8", "waiting")]
    assert held == []
    assert [i["status"] for i in clinic.get("/itineraries", patient_id="p-8").json] == \
        ["unplaceable"]
