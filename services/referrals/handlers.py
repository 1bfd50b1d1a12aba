"""Events in: scheduling tells the referral desk when a patient's itinerary is proposed
or booked (its first visit judged against the due date), who is booked to see them (their
care team: who may read the referral) and when their first visit has happened."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from services.referrals import use_cases
from services.referrals.db import Referrals
from services.referrals.domain import Actor
from shared.events import Envelope
from shared.kafka import Handler, PermanentFailure
from shared.runtime import Runtime


def _actor(envelope: Envelope) -> Actor:
    return Actor(id=envelope.producer, role="service")


def _referral_id(session: Session, envelope: Envelope) -> str | None:
    """The referral an event is about; None if it is about no referral (a follow-up
    booked by hand). A referral we never had is a data error: dead-letter it."""
    referral_id = envelope.payload.get("referral_id")
    if not referral_id:
        return None
    if Referrals(session).find(referral_id) is None:
        raise PermanentFailure(f"{envelope.type} names unknown referral {referral_id}")
    return referral_id


def handlers(runtime: Runtime) -> dict[str, Handler]:
    def on_itinerary_booked(session: Session, envelope: Envelope) -> None:
        """The whole pathway is booked: the referral is scheduled, and at breach risk if
        its first visit falls after the due date (cleared if it is within it)."""
        referral_id = _referral_id(session, envelope)
        if referral_id is None:
            return
        first = _first_visit(envelope)
        now = datetime.now(UTC)
        use_cases.itinerary_booked(
            runtime, session, referral_id, itinerary_id=envelope.payload["itinerary_id"],
            first_visit_at=first, actor=_actor(envelope), now=now, event_id=envelope.id)
        use_cases.itinerary_planned(
            runtime, session, referral_id, itinerary_id=envelope.payload["itinerary_id"],
            first_visit_at=first, booked=True, actor=_actor(envelope), now=now)

    def on_itinerary_proposed(session: Session, envelope: Envelope) -> None:
        """A proposal whose first visit falls after the due date: warn before it is
        confirmed, while there is still time to find another."""
        referral_id = _referral_id(session, envelope)
        if referral_id is None:
            return
        use_cases.itinerary_planned(
            runtime, session, referral_id, itinerary_id=envelope.payload["itinerary_id"],
            first_visit_at=_first_visit(envelope), booked=False, actor=_actor(envelope),
            now=datetime.now(UTC))

    def on_appointment_completed(session: Session, envelope: Envelope) -> None:
        """The first completed visit takes the patient into care; later ones do nothing."""
        referral_id = _referral_id(session, envelope)
        if referral_id is None:
            return
        use_cases.appointment_completed(
            runtime, session, referral_id, appointment_id=envelope.payload["appointment_id"],
            actor=_actor(envelope), now=datetime.now(UTC), event_id=envelope.id)

    def on_appointment_booked(session: Session, envelope: Envelope) -> None:
        """The booked provider joins the patient's care team (who may read the referral);
        the inbox makes a redelivery change nothing."""
        referral_id = _referral_id(session, envelope)
        if referral_id is None:
            return
        use_cases.provider_booked(session, referral_id,
                                  provider_id=envelope.payload["provider_id"],
                                  discipline=envelope.payload.get("discipline"),
                                  at=envelope.occurred_at)

    return {"itinerary.booked": on_itinerary_booked,
            "appointment.booked": on_appointment_booked,
            "itinerary.proposed": on_itinerary_proposed,
            "appointment.completed": on_appointment_completed}


def _first_visit(envelope: Envelope) -> datetime | None:
    starts = [datetime.fromisoformat(v["start"]) if isinstance(v["start"], str) else v["start"]
              for v in envelope.payload["visits"]]
    return min(starts) if starts else None
