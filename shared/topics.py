"""Topic names, by producing domain. Keys are the aggregate's id (referral, patient)
so that one patient's events stay in order. The names and which service produces and
reads each live in the service registry (`shared/services.py`); this module names them
for the code."""

from shared.services import (
    FHIR_TOPIC,
    NOTES_TOPIC,
    NOTIFICATIONS_TOPIC,
    REFERRALS_TOPIC,
    SCHEDULING_TOPIC,
    SYSTEM_TOPIC,
    WITH_WORKER,
)

REFERRALS = REFERRALS_TOPIC
SCHEDULING = SCHEDULING_TOPIC
NOTES = NOTES_TOPIC
NOTIFICATIONS = NOTIFICATIONS_TOPIC
SYSTEM = SYSTEM_TOPIC
FHIR = FHIR_TOPIC  # the FHIR gateway's: a subscribed referral's Task changed

EVENT_TOPICS = (REFERRALS, SCHEDULING, NOTES, NOTIFICATIONS, SYSTEM, FHIR)

# The services with consumers, so each with a dead-letter topic (the console has none).
SERVICES = WITH_WORKER


def dead_letter(service: str) -> str:
    """Each service's consumers send what they cannot handle to their own DLQ."""
    return f"{service}.dlq"


ALL_TOPICS = EVENT_TOPICS + tuple(dead_letter(s) for s in SERVICES)
