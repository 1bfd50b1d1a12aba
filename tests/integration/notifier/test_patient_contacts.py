"""The notifier's patient contacts come from the registry (patient.contact_changed on
patients.contacts): the newest change stands, whatever order they arrive in, and a
patient linked with another is reached at the group's current contacts until unlinked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.notifier import db
from shared import patient_links, topics
from shared.events import Envelope, new_event
from tests.integration.notifier.conftest import Notifier

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def contact_changed(patient_id: str, email: str, as_of: datetime) -> Envelope:
    return new_event("patient.contact_changed", {
        "patient_id": patient_id, "name": "Ann Whitfield", "date_of_birth": "1958-07-14",
        "email": email, "phone": None, "preferred_channel": "email", "language": "en",
        "as_of": as_of, "source": "referral:r-1"}, producer="referrals")


def link_event(event_type: str, surviving: str, linked: str) -> Envelope:
    return new_event(event_type, {"patient_id": surviving, "linked_patient_id": linked,
                                  "by": "sam", "at": T0}, producer="referrals")


def email_of(notifier: Notifier, patient_id: str) -> str | None:
    with notifier.runtime.db.transaction() as s:
        found = db.lookup(s, patient_id)
        return found.email if found else None


def apply(notifier: Notifier, event: Envelope) -> None:
    with notifier.runtime.db.transaction() as s:
        patient_links.handlers(db.patient_links)[event.type](s, event)


def test_an_older_change_arriving_late_never_overwrites_a_newer_one(notifier: Notifier) -> None:
    notifier.receive(contact_changed("p-1", "new@example.org", T0 + timedelta(hours=2)),
                     topic=topics.PATIENT_CONTACTS)
    notifier.receive(contact_changed("p-1", "old@example.org", T0),
                     topic=topics.PATIENT_CONTACTS)
    assert email_of(notifier, "p-1") == "new@example.org"
    notifier.receive(contact_changed("p-1", "newest@example.org", T0 + timedelta(days=1)),
                     topic=topics.PATIENT_CONTACTS)
    assert email_of(notifier, "p-1") == "newest@example.org"
    assert notifier.rows() == []  # a directory change plans nothing


def test_linked_patients_share_the_current_contacts_until_unlinked(notifier: Notifier) -> None:
    notifier.receive(contact_changed("p-a", "a@example.org", T0),
                     topic=topics.PATIENT_CONTACTS)
    notifier.receive(contact_changed("p-b", "b.later@example.org", T0 + timedelta(hours=1)),
                     topic=topics.PATIENT_CONTACTS)
    linked = link_event("patient.linked", "p-a", "p-b")
    apply(notifier, linked)
    apply(notifier, linked)  # a redelivery changes nothing
    assert email_of(notifier, "p-a") == email_of(notifier, "p-b") == "b.later@example.org"
    apply(notifier, link_event("patient.unlinked", "p-a", "p-b"))
    assert email_of(notifier, "p-a") == "a@example.org"  # nothing lost
    assert email_of(notifier, "p-b") == "b.later@example.org"
