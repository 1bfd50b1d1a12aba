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


def provider_registered(provider_id: str, discipline: str, email: str | None,
                        phone: str | None = None) -> Envelope:
    return new_event("provider.registered", {
        "provider_id": provider_id, "name": f"Dr {provider_id}", "discipline": discipline,
        "email": email, "phone": phone}, producer="scheduling")


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


# ------------------------------------------------------------------ safety alerts (notes)

def safety_alert(alert_id: str, patient_id: str, recipients: list[tuple[str, str]], *,
                 raised_by: str, raised_at: datetime, severity: int = 2) -> Envelope:
    """patient.safety_alert v2 as notes publishes it; recipients as (id, role)."""
    return new_event("patient.safety_alert", {
        "alert_id": alert_id, "patient_id": patient_id, "note_id": f"note-{alert_id}",
        "source": "phq9_item9", "severity": severity, "raised_by": raised_by,
        "raised_at": raised_at.isoformat(),
        "recipients": [{"recipient_id": r, "role": role} for r, role in recipients]},
        producer="notes", version=2)


def safety_alert_escalated(alert_id: str, patient_id: str, n: int,
                           recipients: list[tuple[str, str]], *, raised_at: datetime,
                           escalated_at: datetime) -> Envelope:
    return new_event("patient.safety_alert_escalated", {
        "alert_id": alert_id, "patient_id": patient_id, "escalation": n, "severity": 2,
        "raised_at": raised_at.isoformat(), "escalated_at": escalated_at.isoformat(),
        "recipients": [{"recipient_id": r, "role": role} for r, role in recipients]},
        producer="notes")


def safety_alert_acknowledged(alert_id: str, patient_id: str, by: str, at: datetime,
                              recipients: list[tuple[str, str]],
                              action: str = "risk_assessment") -> Envelope:
    return new_event("patient.safety_alert_acknowledged", {
        "alert_id": alert_id, "patient_id": patient_id, "acknowledged_by": by,
        "action": action, "acknowledged_at": at.isoformat(),
        "recipients": [{"recipient_id": r, "role": role} for r, role in recipients]},
        producer="notes")


def safety_alert_closed(alert_id: str, patient_id: str, by: str, at: datetime) -> Envelope:
    return new_event("patient.safety_alert_closed", {
        "alert_id": alert_id, "patient_id": patient_id, "closed_by": by,
        "reason": "risk_managed", "closed_at": at.isoformat()}, producer="notes")


def breach_risk(referral_id: str, patient_id: str, *, due_by: str, first_visit_at: datetime,
                detected_at: datetime) -> Envelope:
    return new_event("referral.breach_risk", {
        "referral_id": referral_id, "patient_id": patient_id, "priority": "urgent",
        "due_by": due_by, "reason": "first_visit_after_due",
        "first_visit_at": first_visit_at.isoformat(), "detected_at": detected_at.isoformat()},
        producer="referrals")
