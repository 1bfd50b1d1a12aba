"""Topic names, by producing domain. Keys are the aggregate's id (referral, patient)
so that one patient's events stay in order."""

REFERRALS = "referrals.events"
SCHEDULING = "scheduling.events"
NOTES = "notes.events"
NOTIFICATIONS = "notifier.events"
SYSTEM = "system.events"
# The patient registry: links (ids only), and contacts (personal data, a protected topic
# that only the notifier and the FHIR gateway may read in production).
PATIENTS = "patients.events"
PATIENT_CONTACTS = "patients.contacts"

EVENT_TOPICS = (REFERRALS, SCHEDULING, NOTES, NOTIFICATIONS, SYSTEM, PATIENTS, PATIENT_CONTACTS)

SERVICES = ("referrals", "scheduling", "notes", "notifier", "dashboard", "fhir")


def dead_letter(service: str) -> str:
    """Each service's consumers send what they cannot handle to their own DLQ."""
    return f"{service}.dlq"


ALL_TOPICS = EVENT_TOPICS + tuple(dead_letter(s) for s in SERVICES)
