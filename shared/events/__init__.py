"""The event envelope and the registry of payload schemas, one for every (type, version).

Producers and consumers validate through the same schemas. Importing this package
loads every domain's catalogue, so the registry is complete wherever it is used.
"""

from shared.events import catalog  # noqa: F401  (registers every schema)
from shared.events.envelope import (
    MAX_EVENT_BYTES,
    Envelope,
    InvalidEvent,
    UnknownEvent,
    new_event,
    parse_event,
    payload_schema,
    register,
    registered_types,
)

__all__ = [
    "MAX_EVENT_BYTES",
    "Envelope",
    "InvalidEvent",
    "UnknownEvent",
    "new_event",
    "parse_event",
    "payload_schema",
    "register",
    "registered_types",
]
