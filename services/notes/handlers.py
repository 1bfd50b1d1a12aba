"""Events in: the care team is built from what referrals and scheduling announce.

- referral.accepted: the accepting specialist (`accepted_by`, a token subject) joins.
- appointment.booked: the booked provider (`provider_id`) joins.
- referral.discharged: the memberships of that referral (and those with no referral)
  close; a booking of a discharged referral that arrives late adds no one.

Each handler runs in the inbox's transaction, so a redelivered event changes nothing.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.notes.db import CareTeamRepository
from shared.events import Envelope
from shared.kafka import Subscription
from shared.topics import REFERRALS, SCHEDULING


def on_referral_accepted(session: Session, event: Envelope) -> None:
    p = event.payload
    CareTeamRepository(session).join(
        patient_id=p["patient_id"], member_id=p["accepted_by"], discipline=None,
        source="referral.accepted", referral_id=p["referral_id"], at=event.occurred_at)


def on_appointment_booked(session: Session, event: Envelope) -> None:
    p = event.payload
    CareTeamRepository(session).join(
        patient_id=p["patient_id"], member_id=p["provider_id"], discipline=p["discipline"],
        source="appointment.booked", referral_id=p.get("referral_id"), at=event.occurred_at)


def on_referral_discharged(session: Session, event: Envelope) -> None:
    p = event.payload
    CareTeamRepository(session).discharge(
        patient_id=p["patient_id"], referral_id=p["referral_id"], at=event.occurred_at)


HANDLERS = {
    "referral.accepted": on_referral_accepted,
    "appointment.booked": on_appointment_booked,
    "referral.discharged": on_referral_discharged,
}


def care_team_subscription() -> Subscription:
    return Subscription("care_team", (REFERRALS, SCHEDULING), HANDLERS)
