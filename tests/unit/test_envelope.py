"""The envelope and the schema registry, alone (no broker, no database)."""

import json

import pytest

from shared.events import (
    InvalidEvent,
    UnknownEvent,
    catalog,
    new_event,
    parse_event,
    payload_schema,
    registered_types,
)

# The catalogue: every (type, version) a service produces today, by producing domain. A
# domain module lost or an event dropped from it fails here, not in a consumer's DLQ.
CATALOGUE = {
    "system": {("system.ping", 1)},
    "referrals": {(f"referral.{t}", 1) for t in (
        "received", "triaged", "accepted", "rejected", "cancelled", "discharged",
        "status_changed", "breach_risk")} | {("referral.received", 2)},
    "scheduling": {("provider.registered", 1), ("provider.capacity_changed", 1),
                   ("waitlist.offered", 1)}
    | {(f"appointment.{t}", 1) for t in (
        "booked", "cancelled", "rescheduled", "checked_in", "completed", "no_show")}
    | {(f"itinerary.{t}", 1) for t in ("proposed", "booked", "unplaceable", "cancelled")},
    "notes": {(f"note.{t}", 1) for t in ("signed", "amended", "entered_in_error", "shared")}
    | {("patient.safety_alert", 1), ("patient.safety_alert", 2),
       ("patient.safety_alert_escalated", 1), ("patient.safety_alert_acknowledged", 1),
       ("patient.safety_alert_closed", 1), ("patient.break_glass", 1)},
    "notifications": {("notification.sent", 1), ("notification.failed", 1)},
    "fhir": {("fhir.task_changed", 1)},
    "patients": {("patient.linked", 1), ("patient.unlinked", 1),
                 ("patient.contact_changed", 1)},
}


def test_a_new_event_round_trips_through_its_schema():
    env = new_event("system.ping", {"ping_id": "p-1", "message": "hello"}, producer="tests")
    back = parse_event(env.to_bytes())
    assert back == env
    assert back.correlation_id == env.id  # a first event starts its own correlation


def test_the_registry_knows_every_event_by_type_and_version():
    known = set(registered_types())
    for domain, events in CATALOGUE.items():
        assert events <= known, f"{domain}: not registered: {sorted(events - known)}"


@pytest.mark.parametrize("domain", sorted(CATALOGUE))
def test_each_event_is_declared_in_its_producing_domains_module(domain):
    for event_type, version in CATALOGUE[domain]:
        schema = payload_schema(event_type, version)
        assert type(schema).__module__ == f"shared.events.{domain}", (event_type, version)


def test_the_catalogue_loads_every_domain_module():
    assert set(catalog.DOMAINS) == set(CATALOGUE)


def test_a_missing_domain_module_fails_loudly_instead_of_being_skipped():
    with pytest.raises(ModuleNotFoundError, match=r"shared\.events\.radiology"):
        catalog.load(("system", "radiology"))


def test_a_payload_that_breaks_its_schema_is_refused_at_the_producer():
    with pytest.raises(InvalidEvent, match="ping_id"):
        new_event("system.ping", {"message": "no id"}, producer="tests")


def test_an_unknown_version_is_named_as_such():
    raw = json.loads(new_event("system.ping", {"ping_id": "p"}, producer="t").to_bytes())
    raw["version"] = 9
    with pytest.raises(UnknownEvent, match="version 9"):
        parse_event(json.dumps(raw).encode())


@pytest.mark.parametrize("raw, reason", [
    (b"not json", "not JSON"),
    (b"[1,2]", "not a JSON object"),
    (b'{"type": "system.ping"}', "envelope invalid"),
    (b"x" * (300 * 1024), "exceeds"),
])
def test_malformed_messages_are_refused_with_a_reason(raw, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(raw)


def test_unexpected_payload_fields_are_refused():
    raw = json.loads(new_event("system.ping", {"ping_id": "p"}, producer="t").to_bytes())
    raw["payload"]["note_body"] = "should never travel"
    with pytest.raises(InvalidEvent, match="note_body"):
        parse_event(json.dumps(raw).encode())
