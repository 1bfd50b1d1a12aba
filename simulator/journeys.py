"""One patient's way through the clinic, acted out by the people who handle it: the
referrer's system posts the referral, the pain-medicine lead triages it, scheduling
proposes an itinerary by itself, the scheduler confirms it with the patient (or the
patient declines), the patient calls off a visit now and then; on the day the front
desk checks patients in, marks no-shows, and the specialists write and sign their notes.

Every step waits for what the clinic's own events make happen (the itinerary, the care
team) by polling the public API, as a person at a screen would. A step that gets no
answer (a fault) is checked and, when it is safe, tried again; what stays unknown is
marked uncertain in the ledger.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from simulator.client import ClinicClient, Unanswered, act_once
from simulator.ledger import (
    ItineraryRecord,
    Ledger,
    NoteRecord,
    PatientRecord,
    ReferralRecord,
    VisitRecord,
)
from simulator.people import Decisions, Patient

PATIENCE = 120.0  # how long a person waits for the clinic's events before giving up


@dataclass
class Staff:
    """Who does what: the triage lead (a pain-medicine specialist) and the providers the
    simulated clinic has, by id, with their discipline."""

    lead_id: str
    providers: dict[str, str]  # provider id -> discipline


def _now() -> datetime:
    return datetime.now(UTC)


def moment(value: str) -> datetime:
    """An ISO 8601 time from an API answer, always aware (UTC when it names no zone)."""
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def acted(ledger: Ledger, record: ReferralRecord | VisitRecord, label: str,
          send: Callable[[], Any], happened: Callable[[], bool]) -> bool:
    """Send an action once (act_once) and judge the answer: True when the service did it,
    now or on an earlier try (a 409 with the record already where it was sent). Else the
    ledger says why, and a request never answered leaves the record uncertain."""
    try:
        resp = act_once(send, happened, patience=PATIENCE)
    except Unanswered:
        record.uncertain = True
        ledger.fail(f"{label} never answered")
        return False
    if resp is not None and resp.status_code != 200 and not (
            resp.status_code == 409 and happened()):
        ledger.fail(f"{label}: {resp.status_code} {resp.text[:200]}")
        return False
    return True


class PatientJourney:
    """From referral to a booked itinerary (or a referral that ends earlier)."""

    def __init__(self, client: ClinicClient, ledger: Ledger, staff: Staff, patient: Patient,
                 decisions: Decisions, rng: random.Random, *, short_pathway: bool) -> None:
        self.client, self.ledger, self.staff = client, ledger, staff
        self.patient, self.d, self.rng = patient, decisions, rng
        self.short_pathway = short_pathway
        self.scheduler = client.headers("scheduler", "sim-scheduler")
        self.lead = client.headers("specialist", staff.lead_id, discipline="pain_medicine",
                                   provider_id=staff.lead_id, also=("triage_lead",))

    # ------------------------------------------------------------------ the story
    def run(self) -> None:
        record = self.refer()
        if record is None:
            return
        if self.d.referrer_cancels:
            self.move(record, "cancel", "the patient was seen elsewhere")
            return
        if self.d.held:
            if not self.move(record, "hold", "awaiting the MRI report"):
                return
            if not self.move(record, "resume", None):
                return
        if not self.triage(record):
            return
        if self.d.rejected:
            self.move(record, "reject", "mechanical back pain without neuropathic features")
            return
        if not self.move(record, "accept", None):
            return
        itinerary = self.await_itinerary(record)
        if itinerary is None:
            return
        if self.d.patient_declines:
            if self.cancel_itinerary(itinerary, "the patient prefers to be treated nearer home"):
                self.move(record, "cancel", "the patient declined the offered visits")
            return
        booked = self.confirm(itinerary)
        if booked:
            for visit in self.visits_of(booked, itinerary):
                if visit.plan == "cancel":
                    self.cancel_visit(visit)

    # ---------------------------------------------------------------- referrals
    def refer(self) -> ReferralRecord | None:
        p = self.patient
        key = f"sim-{uuid.uuid4()}"
        body = p.referral(self.rng)
        headers = {"Idempotency-Key": key}
        try:
            resp = self.client.retrying("POST", "referrals", "/referrals", "/referrals",
                                        self.scheduler, json=body, extra_headers=headers,
                                        patience=PATIENCE)
            if resp.status_code not in (200, 201):
                self.ledger.fail(f"referral for {p.patient_id}: {resp.status_code} "
                                 f"{resp.text[:200]}")
                return None
            if self.d.duplicate_post:  # the referrer's system sends it again
                again = self.client.retrying("POST", "referrals", "/referrals", "/referrals",
                                             self.scheduler, json=body, extra_headers=headers,
                                             patience=PATIENCE)
                if again.status_code != 200 or again.json()["id"] != resp.json()["id"]:
                    self.ledger.fail(f"a repeated referral for {p.patient_id} was not folded: "
                                     f"{again.status_code}")
                self.ledger.count("referral sent twice, folded")
        except Unanswered as exc:
            self.ledger.fail(f"referral for {p.patient_id} never answered: {exc}")
            return None
        # from here on the patient is PainCare's (the registry's id); the referrer's id
        # is only an identifier of theirs
        self.patient = replace(p, patient_id=resp.json()["patient"]["id"])
        p = self.patient
        self.ledger.add(PatientRecord(p.patient_id, p.name, p.email, p.phone, p.channel))
        record = ReferralRecord(resp.json()["id"], p.patient_id, key)
        self.ledger.add(record)
        self.ledger.count("referral received")
        return record

    def _referral_status(self, record: ReferralRecord) -> str | None:
        resp = self.client.retrying("GET", "referrals", f"/referrals/{record.referral_id}",
                                    "/referrals/{id}", self.lead, patience=PATIENCE)
        return resp.json()["status"] if resp.status_code == 200 else None

    def _act(self, record: ReferralRecord, send: Callable[[], Any], target: str,
             what: str) -> bool:
        """Send a workflow move, once (see acted)."""
        if not acted(self.ledger, record, f"{what} of {record.referral_id}", send,
                     lambda: self._referral_status(record) == target):
            return False
        record.status = target
        if target == "accepted":
            record.accepted_at = time.time()
        self.ledger.count(f"referral {what}")
        return True

    def move(self, record: ReferralRecord, action: str, reason: str | None) -> bool:
        target = {"accept": "accepted", "reject": "rejected", "cancel": "cancelled",
                  "hold": "on_hold"}.get(action)
        if action == "resume":
            target = "received"  # held straight after arrival in this story
        body = {"reason": reason} if reason else {}
        return self._act(record, lambda: self.client.call(
            "POST", "referrals", f"/referrals/{record.referral_id}/{action}",
            f"/referrals/{{id}}/{action}", self.lead, json=body), target or action, action)

    def triage(self, record: ReferralRecord) -> bool:
        body = self.patient.triage(short=self.short_pathway)
        return self._act(record, lambda: self.client.call(
            "POST", "referrals", f"/referrals/{record.referral_id}/triage",
            "/referrals/{id}/triage", self.lead, json=body), "triaged", "triage")

    # -------------------------------------------------------------- itineraries
    def _itinerary_for(self, referral_id: str) -> dict | None:
        resp = self.client.retrying("GET", "scheduling", "/itineraries", "/itineraries",
                                    self.scheduler, params={"referral_id": referral_id},
                                    patience=PATIENCE)
        if resp.status_code != 200:
            return None
        found = resp.json()
        items = found.get("items", []) if isinstance(found, dict) else found
        return items[0] if items else None

    def await_itinerary(self, record: ReferralRecord) -> ItineraryRecord | None:
        """Scheduling proposes the itinerary when referral.accepted reaches it."""
        deadline = time.monotonic() + PATIENCE
        found = None
        while time.monotonic() < deadline:
            try:
                found = self._itinerary_for(record.referral_id)
            except Unanswered:
                found = None
            if found:
                break
            time.sleep(0.3)
        if not found:
            self.ledger.fail(f"no itinerary for accepted referral {record.referral_id} "
                             f"within {PATIENCE:.0f} s")
            return None
        itinerary = ItineraryRecord(found["id"], record.referral_id, self.patient.patient_id,
                                    found["status"], proposed_seen_at=time.time())
        self.ledger.add(itinerary)
        self.ledger.count(f"itinerary {found['status']}")
        return itinerary if found["status"] == "proposed" else None

    def _itinerary(self, itinerary: ItineraryRecord) -> dict | None:
        resp = self.client.retrying("GET", "scheduling", f"/itineraries/{itinerary.itinerary_id}",
                                    "/itineraries/{id}", self.scheduler, patience=PATIENCE)
        return resp.json() if resp.status_code == 200 else None

    def confirm(self, itinerary: ItineraryRecord) -> dict | None:
        """All or nothing; a slot lost meanwhile means a new proposal to confirm."""
        itinerary.confirm_asked_at = time.time()
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            try:
                resp = self.client.call(
                    "POST", "scheduling", f"/itineraries/{itinerary.itinerary_id}/confirm",
                    "/itineraries/{id}/confirm", self.scheduler, json={})
            except Unanswered:
                try:
                    view = self._itinerary(itinerary)
                except Unanswered:
                    view = None
                if view and view["status"] == "booked":
                    return self._booked(itinerary, view)
                time.sleep(0.5)
                continue
            if resp.status_code == 200:
                return self._booked(itinerary, resp.json())
            if resp.status_code == 409:
                self.ledger.count("itinerary searched again after a lost slot")
                view = self._itinerary(itinerary)
                if view and view["status"] == "booked":
                    return self._booked(itinerary, view)
                if view and view["status"] == "proposed":
                    continue
                itinerary.status = view["status"] if view else itinerary.status
                self.ledger.count(f"itinerary {itinerary.status} before confirmation")
                return None
            self.ledger.fail(f"confirm {itinerary.itinerary_id}: {resp.status_code} "
                             f"{resp.text[:200]}")
            return None
        itinerary.uncertain = True
        self.ledger.fail(f"confirm {itinerary.itinerary_id} never answered")
        return None

    def _booked(self, itinerary: ItineraryRecord, view: dict) -> dict:
        itinerary.status = "booked"
        itinerary.confirmed_at = time.time()
        self.ledger.count("itinerary booked")
        return view

    def visits_of(self, view: dict, itinerary: ItineraryRecord) -> list[VisitRecord]:
        out = []
        for i, v in enumerate(sorted(view["visits"], key=lambda v: v["start"])):
            plan = self.d.visit_plans[i % len(self.d.visit_plans)]
            record = VisitRecord(v["appointment_id"], itinerary.itinerary_id,
                                 self.patient.patient_id, v["provider_id"], v["discipline"],
                                 v["start"], status=v["status"], plan=plan)
            self.ledger.add(record)
            out.append(record)
        return out

    def cancel_itinerary(self, itinerary: ItineraryRecord, reason: str) -> bool:
        path = f"/itineraries/{itinerary.itinerary_id}/cancel"
        try:
            resp = self.client.retrying("POST", "scheduling", path, "/itineraries/{id}/cancel",
                                        self.scheduler, json={"reason": reason},
                                        patience=PATIENCE)
        except Unanswered:
            itinerary.uncertain = True
            self.ledger.fail(f"cancel of itinerary {itinerary.itinerary_id} never answered")
            return False
        if resp.status_code == 200 or (resp.status_code == 409 and (
                self._itinerary(itinerary) or {}).get("status") == "cancelled"):
            itinerary.status = "cancelled"
            self.ledger.count("itinerary declined by the patient")
            return True
        self.ledger.fail(f"cancel of itinerary {itinerary.itinerary_id}: {resp.status_code}")
        return False

    def cancel_visit(self, visit: VisitRecord) -> None:
        """The patient rings to call one visit off."""
        path = f"/appointments/{visit.appointment_id}/cancel"
        try:
            resp = self.client.retrying("POST", "scheduling", path, "/appointments/{id}/cancel",
                                        self.scheduler, json={"reason": "patient unwell"},
                                        patience=PATIENCE)
        except Unanswered:
            visit.uncertain = True
            self.ledger.fail(f"cancel of visit {visit.appointment_id} never answered")
            return
        if resp.status_code == 200 or (resp.status_code == 409 and
                                       visit_status(self.client, visit) == "cancelled"):
            visit.status = "cancelled"
            self.ledger.count("visit cancelled by the patient")
        else:
            self.ledger.fail(f"cancel of visit {visit.appointment_id}: {resp.status_code} "
                             f"{resp.text[:200]}")


def visit_status(client: ClinicClient, visit: VisitRecord) -> str | None:
    resp = client.retrying("GET", "scheduling", f"/appointments/{visit.appointment_id}",
                           "/appointments/{id}", client.headers("scheduler", "sim-scheduler"),
                           patience=PATIENCE)
    return resp.json()["status"] if resp.status_code == 200 else None


# --------------------------------------------------------------------- the day itself

NOTE_BODIES: dict[str, dict[str, Any]] = {
    "pain_medicine": {
        "kind": "progress",
        "sections": {"subjective": "Burning pain, worse at night.",
                     "assessment": "Neuropathic pain, partly controlled.",
                     "plan": "Continue the pathway; review in four weeks."},
        "measures": {"nrs": {"current": 6, "average": 6, "worst": 8},
                     "phq9": {"items": [1, 1, 1, 1, 0, 0, 1, 0, 0]}}},
    "physical_therapy": {
        "kind": "treatment_record",
        "sections": {"treatment": "Graded activity and balance work.",
                     "response": "Managed the programme with pain at 5/10."},
        "measures": {"nrs": {"current": 5}},
        "treatment": {"physical_therapy": {"exercises": [
            {"name": "Sit to stand", "sets": 3, "reps": 10}]}}},
    "psychology": {
        "kind": "progress",
        "sections": {"subjective": "Sleeping a little better.",
                     "plan": "Pacing next session."},
        "measures": {"phq9": {"items": [1, 1, 1, 0, 0, 0, 1, 0, 0]}, "pseq": 30},
        "treatment": {"psychology": {"cbt_module": "pacing", "session_number": 2}}},
    "acupuncture": {
        "kind": "treatment_record",
        "sections": {"treatment": "Manual acupuncture, 20 minutes.",
                     "response": "No adverse effects."},
        "measures": {"nrs": {"current": 5}},
        "treatment": {"acupuncture": {"points": ["LI4", "ST36", "SP6"], "needle_count": 6,
                                      "retention_minutes": 20}}},
}


class FrontDesk:
    """The day of a visit: check-in when the clinic allows it (12 h before), the visit
    completed and the specialist's note signed once it has begun; a no-show once it has
    begun. The service refuses each step earlier."""

    def __init__(self, client: ClinicClient, ledger: Ledger, *,
                 check_in_from: timedelta = timedelta(hours=11)) -> None:
        """`check_in_from`: how long before its start a visit is checked in: early, so
        that a run of minutes reaches visits booked hours ahead (within the service's
        12 h); a clinic living in real time (simulator.clinic_day) uses minutes."""
        self.client, self.ledger = client, ledger
        self.check_in_from = check_in_from
        self.desk = client.headers("scheduler", "sim-front-desk")

    def next_step(self, visit: VisitRecord, now: datetime) -> str | None:
        """What the desk does for this visit now: "check-in", "complete", "no-show", or
        nothing (its moment has not come, or it is not the desk's)."""
        if visit.uncertain:
            return None
        start = moment(visit.start)
        if visit.plan == "no_show":
            return "no-show" if visit.status == "booked" and start <= now else None
        if visit.plan != "attend":
            return None
        if visit.status == "booked" and start - self.check_in_from <= now:
            return "check-in"
        if visit.status == "arrived" and start <= now:
            return "complete"
        return None

    def due(self, now: datetime) -> list[VisitRecord]:
        with self.ledger.lock:
            visits = list(self.ledger.visits.values())
        return [v for v in visits if self.next_step(v, now) is not None]

    def work(self, now: datetime) -> int:
        """One round: every visit whose moment has come; returns how many there were."""
        due = self.due(now)
        for visit in due:
            try:
                self.handle(visit, now)
            except Unanswered as exc:
                self.ledger.fail(f"front desk gave up on {visit.appointment_id}: {exc}")
        return len(due)

    def handle(self, visit: VisitRecord, now: datetime) -> None:
        """Check in, and complete at once if the visit had begun by `now` (a late
        arrival); or complete a visit checked in earlier; or record the no-show."""
        step = self.next_step(visit, now)
        if step == "no-show":
            self._status(visit, "no-show", "noshow")
            return
        if step == "check-in":
            if not self._status(visit, "check-in", "arrived"):
                return
            step = self.next_step(visit, now)
        if step == "complete" and self._status(visit, "complete", "fulfilled"):
            self.write_note(visit)

    def _status(self, visit: VisitRecord, action: str, target: str) -> bool:
        path = f"/appointments/{visit.appointment_id}/{action}"
        if not acted(self.ledger, visit, f"{action} of {visit.appointment_id}",
                     lambda: self.client.call("POST", "scheduling", path,
                                              f"/appointments/{{id}}/{action}", self.desk,
                                              json={}),
                     lambda: visit_status(self.client, visit) == target):
            if not visit.uncertain:  # refused, not unanswered: the desk stops following it
                visit.plan = "failed"
            return False
        visit.status = target
        self.ledger.count(f"visit {target}")
        return True

    def write_note(self, visit: VisitRecord) -> None:
        """The visit's specialist writes and signs a note, once the care team (made from
        appointment.booked) includes them; a 403 before then is the event still on its way."""
        author = self.client.headers("specialist", visit.provider_id,
                                     discipline=visit.discipline, provider_id=visit.provider_id)
        body = dict(NOTE_BODIES[visit.discipline])
        body["encounter_at"] = min(moment(visit.start), _now()).isoformat()
        deadline = time.monotonic() + PATIENCE
        note_id = None
        while note_id is None:
            try:
                resp = self.client.call("POST", "notes", f"/patients/{visit.patient_id}/notes",
                                        "/patients/{id}/notes", author, json=body)
            except Unanswered:
                # Made without our hearing of it? Look before writing a second one.
                note_id = self._find_note(visit, author, body["encounter_at"])
                if note_id is None and time.monotonic() > deadline:
                    self.ledger.fail(f"note for visit {visit.appointment_id} never answered")
                    return
                if note_id is None:
                    time.sleep(0.5)
                continue
            if resp.status_code == 201:
                note_id = resp.json()["id"]
            elif resp.status_code == 403 and time.monotonic() < deadline:
                time.sleep(0.5)
            else:
                self.ledger.fail(f"note for visit {visit.appointment_id}: {resp.status_code} "
                                 f"{resp.text[:200]}")
                return
        note = NoteRecord(note_id, visit.patient_id, visit.provider_id, visit.appointment_id)
        self.ledger.add(note)
        try:
            resp = self.client.retrying("POST", "notes", f"/notes/{note_id}/sign",
                                        "/notes/{id}/sign", author, patience=PATIENCE)
        except Unanswered:
            note.uncertain = True
            self.ledger.fail(f"signing note {note_id} never answered")
            return
        if resp.status_code == 200 or (resp.status_code == 409 and "signed" in resp.text):
            note.status = "signed"
            self.ledger.count("note signed")
        else:
            self.ledger.fail(f"signing note {note_id}: {resp.status_code} {resp.text[:200]}")

    def _find_note(self, visit: VisitRecord, author: dict[str, str],
                   encounter_at: str) -> str | None:
        """The author's own note of this visit, draft or signed, if one was made."""
        try:
            resp = self.client.call(
                "GET", "notes", f"/patients/{visit.patient_id}/timeline",
                "/patients/{id}/timeline", author,
                params={"author_id": visit.provider_id})
        except Unanswered:
            return None
        if resp.status_code != 200:
            return None
        mine = [n for n in resp.json()["notes"]
                if moment(n["encounter_at"]) == moment(encounter_at)]
        return mine[0]["id"] if mine else None
