"""Topic names, by producing domain. Keys are the aggregate's id (referral, patient)
so that one patient's events stay in order. The names and which service produces and
reads each live in the service registry (`shared/services.py`); this module names them
for the code."""

from shared.services import (
    FHIR_TOPIC,
    NOTES_TOPIC,
    NOTIFICATIONS_TOPIC,
    PATIENT_CONTACTS_TOPIC,
    PATIENTS_TOPIC,
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
# The patient registry: links (ids only), and contacts (personal data, a protected topic
# that only the notifier and the FHIR gateway may read in production).
PATIENTS = PATIENTS_TOPIC
PATIENT_CONTACTS = PATIENT_CONTACTS_TOPIC

EVENT_TOPICS = (REFERRALS, SCHEDULING, NOTES, NOTIFICATIONS, SYSTEM, FHIR, PATIENTS,
                PATIENT_CONTACTS)

# The services with consumers, so each with a dead-letter topic (the console has none).
SERVICES = WITH_WORKER


def dead_letter(service: str) -> str:
    """Each service's consumers send what they cannot handle to their own DLQ."""
    return f"{service}.dlq"


ALL_TOPICS = EVENT_TOPICS + tuple(dead_letter(s) for s in SERVICES)
