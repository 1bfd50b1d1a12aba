"""Demo data for a freshly started clinic, through the public APIs only (as a clinic's
staff would enter it): the clinic's providers and rooms, referrals, two referrals
triaged and accepted, their proposed itineraries confirmed, and care notes; then the
clinic simulator's patients (`simulator/`) on the same clinic: referrals triaged,
accepted, rejected, withdrawn and held, itineraries confirmed or declined, visits
called off, attended or missed, and signed notes, in a realistic mix.

Safe to run twice: every seed keeps what exists.  python scripts/demo.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.auth import mint_token  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.launcher import PORTS, available_services  # noqa: E402

SETTINGS = Settings.for_service("demo")
URL = {s: f"http://127.0.0.1:{p}" for s, p in PORTS.items()}

PATHWAY = [
    {"discipline": "pain_medicine", "visit_minutes": 45, "sessions": 3, "interval_days": 28},
    {"discipline": "physical_therapy", "visit_minutes": 45, "sessions": 6, "interval_days": 7,
     "after": ["pain_medicine"]},
    {"discipline": "psychology", "visit_minutes": 50, "sessions": 6, "interval_days": 14,
     "after": ["pain_medicine"]},
    {"discipline": "acupuncture", "visit_minutes": 30, "sessions": 6, "interval_days": 7,
     "after": ["pain_medicine"]},
]


def headers(role: str, subject: str, *, also: tuple[str, ...] = (),
            **claims: str) -> dict[str, str]:
    token = mint_token(SETTINGS.jwt_secret, subject=subject, role=role, name=subject,
                       issuer=SETTINGS.jwt_issuer, audience=SETTINGS.jwt_audience, also=also,
                       **claims)
    return {"Authorization": f"Bearer {token}"}


ADMIN = headers("admin", "demo-admin")
SCHEDULER = headers("scheduler", "demo-scheduler")


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def clinic() -> dict:
    from services.scheduling import demo as scheduling_demo

    ids = scheduling_demo.seed(URL["scheduling"], ADMIN)
    say(f"clinic: {len(ids.get('providers', ids))} providers and their rooms")
    return ids


def referrals() -> list[str]:
    from services.referrals import demo as referrals_demo

    ids = referrals_demo.seed(URL["referrals"], SCHEDULER)
    say(f"{len(ids)} referrals received")
    return ids


def triage_and_accept(referral_ids: list[str], lead: dict[str, str]) -> list[str]:
    """The triage lead (a pain-medicine specialist) accepts the first two referrals."""
    accepted = []
    for rid in referral_ids[:2]:
        current = requests.get(f"{URL['referrals']}/referrals/{rid}", headers=lead, timeout=10)
        current.raise_for_status()
        status = current.json()["status"]
        if status == "received":
            requests.post(f"{URL['referrals']}/referrals/{rid}/triage", headers=lead, timeout=10,
                          json={"priority": "soon", "screening": {"tool": "dn4", "score": 6},
                                "pathway": PATHWAY,
                                "reason": "burning feet, allodynia; DN4 positive"}
                          ).raise_for_status()
            status = "triaged"
        if status == "triaged":
            requests.post(f"{URL['referrals']}/referrals/{rid}/accept", headers=lead,
                          timeout=10, json={}).raise_for_status()
        accepted.append(rid)
    say(f"{len(accepted)} referrals triaged and accepted")
    return accepted


def confirm_itineraries(referral_ids: list[str]) -> None:
    """Scheduling proposes an itinerary for each accepted referral by itself; the
    scheduler confirms it with the patient."""
    spec = requests.get(f"{URL['scheduling']}/openapi.json", timeout=10).json()
    if not any(p.startswith("/itineraries") for p in spec.get("paths", {})):
        say("scheduling has no itinerary API: nothing to confirm")
        return
    for rid in referral_ids:
        deadline = time.monotonic() + 60
        found: list = []
        while time.monotonic() < deadline and not found:
            resp = requests.get(f"{URL['scheduling']}/itineraries", headers=SCHEDULER,
                                params={"referral_id": rid}, timeout=10)
            found = resp.json() if resp.ok else []
            if isinstance(found, dict):
                found = found.get("items", [])
            if not found:
                time.sleep(0.5)
        if not found:
            say(f"no itinerary proposed for referral {rid} in 60 s")
            continue
        itinerary = found[0]
        if itinerary.get("status") in ("proposed", "held"):
            resp = requests.post(f"{URL['scheduling']}/itineraries/{itinerary['id']}/confirm",
                                 headers=SCHEDULER, json={}, timeout=30)
            say(f"itinerary for referral {rid}: {resp.status_code}")
        else:
            say(f"itinerary for referral {rid} is {itinerary.get('status')}")


def notes() -> None:
    """The specialists the first patient was booked with write and sign their notes, once
    their appointment.booked has made them the patient's care team in the notes service."""
    from services.notes import demo as notes_demo

    # the referral desk registered the demo patient under PainCare's own id; the demo's
    # "demo-pat-001" is the referrer's id, found as an identifier
    found = requests.get(f"{URL['referrals']}/referrals", headers=SCHEDULER, timeout=10,
                         params={"patient_id": notes_demo.DEMO_PATIENT}).json()["items"]
    if not found:
        say("care notes skipped: the first patient's referral is not there")
        return
    patient = found[0]["patient"]["id"]
    booked = requests.get(f"{URL['scheduling']}/appointments", headers=SCHEDULER, timeout=10,
                          params={"patient_id": patient, "limit": 200}).json()
    by_discipline: dict[str, str] = {}
    for appointment in sorted(booked, key=lambda a: a["start"]):
        by_discipline.setdefault(appointment["discipline"], appointment["provider_id"])
    if not by_discipline:
        say("care notes skipped: the first patient has no appointments")
        return

    def team() -> set[str]:  # as a booked specialist: admin reads no care team
        pid, discipline = next((p, d) for d, p in by_discipline.items())
        resp = requests.get(f"{URL['notes']}/patients/{patient}/care-team", timeout=10,
                            headers=headers("specialist", pid, discipline=discipline,
                                            provider_id=pid))
        return {m["member_id"] for m in resp.json() if m["active"]} if resp.ok else set()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not set(by_discipline.values()) <= team():
        time.sleep(0.5)

    def headers_for(discipline: str) -> dict[str, str]:
        pid = by_discipline[discipline]
        return headers("specialist", pid, discipline=discipline, provider_id=pid)

    try:
        notes_demo.seed(URL["notes"], headers_for)
        say("care notes written and signed")
    except (requests.HTTPError, KeyError) as exc:
        say(f"care notes skipped ({exc})")


def simulated_patients(count: int) -> None:
    """The simulator's mix of patients, once (their ids are fixed, so a second load
    finds them and adds nobody)."""
    from simulator.run import ClinicSimulation, SimulationPlan

    first = requests.get(f"{URL['referrals']}/referrals", headers=SCHEDULER, timeout=10,
                         params={"patient_id": "sim-demo-00000"})
    if first.ok and first.json()["items"]:
        say("simulated patients: already there")
        return
    plan = SimulationPlan(patients=count, rate=4.0, concurrency=6, short_pathways=False,
                          round_the_clock=False, run_id="demo")
    sim = ClinicSimulation(URL, SETTINGS, plan)
    ledger = sim.run()
    summary = ledger.summary()
    say(f"{count} simulated patients: referrals {dict(summary['referrals'])}, "
        f"visits {dict(summary['visits'])}, {summary['notes'].get('signed', 0)} notes signed")
    for failure in ledger.failures[:5]:
        say(f"  not as expected: {failure}")


def main() -> int:
    services = set(available_services())
    if "scheduling" in services:
        clinic()
    received = referrals() if "referrals" in services else []
    lead = None
    if "scheduling" in services:
        listing = requests.get(f"{URL['scheduling']}/providers", headers=ADMIN, timeout=10).json()
        pain = next(p for p in listing if p["discipline"] == "pain_medicine")
        lead = headers("specialist", pain["id"], discipline="pain_medicine",
                       provider_id=pain["id"], also=("triage_lead",))
    if received and lead:
        accepted = triage_and_accept(received, lead)
        confirm_itineraries(accepted)
    if "notes" in services and "scheduling" in services:
        notes()
    if {"referrals", "scheduling", "notes"} <= services:
        simulated_patients(int(os.environ.get("DEMO_PATIENTS", "16")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
