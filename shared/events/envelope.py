"""One envelope for every event: id, type, version, occurred_at, producer,
correlation_id, causation_id, payload."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from shared import correlation

MAX_EVENT_BYTES = 256 * 1024

_registry: dict[tuple[str, int], type[Schema]] = {}

S = TypeVar("S", bound=type[Schema])


class InvalidEvent(Exception):
    """A message that is not a valid event: the reason goes to the dead-letter topic."""


class UnknownEvent(InvalidEvent):
    """A well-formed envelope whose (type, version) no schema is registered for."""


def register(event_type: str, version: int = 1) -> Callable[[S], S]:
    """Class decorator: this marshmallow schema validates payloads of (type, version)."""

    def decorate(schema: S) -> S:
        key = (event_type, version)
        if key in _registry and _registry[key] is not schema:
            raise RuntimeError(f"two schemas registered for {key}")
        _registry[key] = schema
        return schema

    return decorate


def registered_types() -> list[tuple[str, int]]:
    return sorted(_registry)


def payload_schema(event_type: str, version: int) -> Schema:
    try:
        return _registry[(event_type, version)](unknown=RAISE)
    except KeyError:
        raise UnknownEvent(f"no schema for event {event_type!r} version {version}") from None


class EnvelopeSchema(Schema):
    id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.Regexp(r"^[a-z_]+\.[a-z_.]+$"))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    occurred_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    producer = fields.String(required=True, validate=validate.Length(min=1, max=64))
    correlation_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    causation_id = fields.String(load_default=None, allow_none=True,
                                 validate=validate.Length(max=64))
    payload = fields.Dict(required=True)


_envelope_schema = EnvelopeSchema(unknown=RAISE)


@dataclass(frozen=True)
class Envelope:
    id: str
    type: str
    version: int
    occurred_at: datetime
    producer: str
    correlation_id: str
    causation_id: str | None
    payload: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "version": self.version,
            "occurred_at": self.occurred_at.isoformat(),
            "producer": self.producer,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "payload": self.payload,
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True).encode()


def new_event(event_type: str, payload: dict[str, Any], *, producer: str,
              version: int = 1) -> Envelope:
    """Validate a payload against its registered schema and wrap it in an envelope that
    carries the current correlation (and the event that caused it, inside a handler)."""
    schema = payload_schema(event_type, version)
    try:
        loaded = schema.load(json.loads(json.dumps(payload, default=str)))
    except ValidationError as exc:
        raise InvalidEvent(f"{event_type} v{version} payload invalid: {exc.messages}") from exc
    event_id = correlation.new_id()
    return Envelope(
        id=event_id,
        type=event_type,
        version=version,
        occurred_at=datetime.now(UTC),
        producer=producer,
        correlation_id=correlation.correlation_id() or event_id,
        causation_id=correlation.causation_id(),
        payload=schema.dump(loaded),
    )


def parse_event(raw: bytes | str) -> Envelope:
    """Parse and validate a message from a topic: envelope first, then its payload."""
    if raw is None:
        raise InvalidEvent("empty message")
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"message of {len(raw)} bytes exceeds {MAX_EVENT_BYTES}")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEvent(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidEvent("envelope is not a JSON object")
    try:
        env = _envelope_schema.load(data)
    except ValidationError as exc:
        raise InvalidEvent(f"envelope invalid: {exc.messages}") from exc
    schema = payload_schema(env["type"], env["version"])
    try:
        payload = schema.dump(schema.load(env["payload"]))
    except ValidationError as exc:
        raise InvalidEvent(
            f"{env['type']} v{env['version']} payload invalid: {exc.messages}") from exc
    return Envelope(
        id=str(env["id"]),
        type=env["type"],
        version=env["version"],
        occurred_at=env["occurred_at"],
        producer=env["producer"],
        correlation_id=env["correlation_id"],
        causation_id=env["causation_id"],
        payload=payload,
    )
