"""Events as the other services publish them, for the notifier's tests and benchmark."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.events import Envelope, new_event

DISCIPLINES = ("pain_medicine", "physical_therapy", "psychology", "acupuncture")


def referral_received(patient_id: str, *, email: str | None = None, phone: str | None = None,
                      channel: str = "email", language: str = "en") -> Envelope:
    return new_event("referral.received", {
        "referral_id": f"ref-{patient_id}", "condition": "diabetic_neuropathy",
        "patient": {"patient_id": patient_id, "name": f"Patient {patient_id}",
                    "date_of_birth": "1960-05-04", "email": email, "phone": phone,
                    "preferred_channel": channel, "language": language},
        "referrer": {"name": "Dr GP", "organisation": "Riverside Practice"},
        "received_at": "2026-03-01T10:00:00+00:00"}, producer="referrals")


def provider_registered(provider_id: str, discipline: str, email: str) -> Envelope:
    return new_event("provider.registered", {
        "provider_id": provider_id, "name": f"Dr {provider_id}", "discipline": discipline,
        "email": email}, producer="scheduling")


def visit(i: int, start: datetime, discipline: str | None = None) -> dict:
    discipline = discipline or DISCIPLINES[i % len(DISCIPLINES)]
    return {"appointment_id": f"appt-{i}", "discipline": discipline,
            "provider_id": f"prov-{discipline}", "provider_name": f"Dr {discipline}",
            "room_id": f"room-{i}", "room_name": f"Room {i}", "start": start.isoformat(),
            "end": (start + timedelta(minutes=45)).isoformat()}


def itinerary_booked(patient_id: str, visits: list[dict], itinerary_id: str = "it-1"
                     ) -> Envelope:
    return new_event("itinerary.booked", {
        "itinerary_id": itinerary_id, "referral_id": f"ref-{patient_id}",
        "patient_id": patient_id, "visits": visits,
        "what_to_bring": ["Your medication list", "Your glucose diary"]}, producer="scheduling")


def appointment_event(event_type: str, patient_id: str, v: dict, **extra: object) -> Envelope:
    return new_event(event_type, {**v, "patient_id": patient_id, **extra},
                     producer="scheduling")


def waitlist_offered(patient_id: str, n: int, start: datetime) -> Envelope:
    return new_event("waitlist.offered", {
        "waitlist_id": f"wl-{n}", "patient_id": patient_id, "discipline": "psychology",
        "provider_id": "prov-psychology", "start": start.isoformat(),
        "end": (start + timedelta(minutes=50)).isoformat(),
        "offer_expires_at": (start - timedelta(days=1)).isoformat()}, producer="scheduling")
