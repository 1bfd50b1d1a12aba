"""Topic names, by producing domain. Keys are the aggregate's id (referral, patient)
so that one patient's events stay in order."""

REFERRALS = "referrals.events"
SCHEDULING = "scheduling.events"
NOTES = "notes.events"
NOTIFICATIONS = "notifier.events"
SYSTEM = "system.events"
FHIR = "fhir.events"  # the FHIR gateway's: a subscribed referral's Task changed

EVENT_TOPICS = (REFERRALS, SCHEDULING, NOTES, NOTIFICATIONS, SYSTEM, FHIR)

SERVICES = ("referrals", "scheduling", "notes", "notifier", "dashboard", "fhir")


def dead_letter(service: str) -> str:
    """Each service's consumers send what they cannot handle to their own DLQ."""
    return f"{service}.dlq"


ALL_TOPICS = EVENT_TOPICS + tuple(dead_letter(s) for s in SERVICES)
