"""The ids that tie one clinic action together across HTTP, events and logs."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None)
_causation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "causation_id", default=None)
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None)


def new_id() -> str:
    return str(uuid.uuid4())


def correlation_id() -> str | None:
    return _correlation_id.get()


def causation_id() -> str | None:
    return _causation_id.get()


def request_id() -> str | None:
    return _request_id.get()


def set_request(request: str, correlation: str) -> None:
    _request_id.set(request)
    _correlation_id.set(correlation)
    _causation_id.set(None)


def clear() -> None:
    """End of a request: nothing it set may leak into the next work on this thread."""
    _request_id.set(None)
    _correlation_id.set(None)
    _causation_id.set(None)


@contextmanager
def handling(correlation: str | None, causation: str | None) -> Iterator[None]:
    """While an event is handled, events it causes carry its correlation and its id."""
    tokens = (_correlation_id.set(correlation), _causation_id.set(causation))
    try:
        yield
    finally:
        _correlation_id.reset(tokens[0])
        _causation_id.reset(tokens[1])
