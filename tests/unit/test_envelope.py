"""The envelope and the schema registry, alone (no broker, no database)."""

import json

import pytest

from shared.events import InvalidEvent, UnknownEvent, new_event, parse_event, registered_types


def test_a_new_event_round_trips_through_its_schema():
    env = new_event("system.ping", {"ping_id": "p-1", "message": "hello"}, producer="tests")
    back = parse_event(env.to_bytes())
    assert back == env
    assert back.correlation_id == env.id  # a first event starts its own correlation


def test_the_registry_knows_every_event_by_type_and_version():
    assert ("system.ping", 1) in registered_types()


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
