"""The live front desk after `make up`: which visits it follows, and which it lets be
missed (the same answer on every round and after a restart)."""

from __future__ import annotations

from simulator.clinic_day import plan_of, visits_to_follow


def appointment(n: int, patient: str = "sim-demo-00001", status: str = "booked") -> dict:
    return {"id": f"appt-{n}", "itinerary_id": "it-1", "patient_id": patient,
            "provider_id": "prov-1", "discipline": "psychology",
            "start": "2026-11-26T09:00:00+00:00", "status": status}


def test_the_missed_visits_are_the_mix_and_drawn_the_same_way_every_time() -> None:
    plans = [plan_of(f"appt-{n}") for n in range(5000)]
    assert plans == [plan_of(f"appt-{n}") for n in range(5000)]
    assert 0.06 < plans.count("no_show") / 5000 < 0.10
    assert plan_of("appt-1", no_show_percent=0) == "attend"
    assert plan_of("appt-1", no_show_percent=100) == "no_show"


def test_only_booked_or_checked_in_visits_of_simulated_patients_not_yet_followed() -> None:
    listing = [appointment(1), appointment(2, patient="demo-pat-003"),  # curated story
               appointment(3, status="arrived"), appointment(4),
               appointment(5, status="fulfilled"), appointment(6, status="noshow")]
    got = visits_to_follow(listing, known={"appt-4": object()})
    assert [v.appointment_id for v in got] == ["appt-1", "appt-3"]
    assert got[0].status == "booked" and got[0].plan in ("attend", "no_show")
    assert got[0].itinerary_id == "it-1" and got[0].discipline == "psychology"
    # checked in before a restart: the patient came, so the visit is still to complete
    assert got[1].status == "arrived" and got[1].plan == "attend"
