"""Errors the domain raises in the clinic's words. The web layer turns each into an
RFC 9457 problem document; the domain itself imports nothing from Flask."""

from __future__ import annotations


class ClinicError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, errors: dict[str, object] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}


class InvalidInput(ClinicError):
    """Input the schema let through but the clinic's rules refuse (422)."""

    status = 422
    title = "Unprocessable content"

    def __init__(self, detail: str, *, field: str | None = None,
                 errors: dict[str, object] | None = None) -> None:
        super().__init__(detail, errors=errors or ({field: [detail]} if field else None))


class NotFound(ClinicError):
    status = 404
    title = "Not found"


class Conflict(ClinicError):
    """The request is valid but the clinic's state forbids it now (409): an illegal
    status move, a slot already taken."""

    status = 409
    title = "Conflict"


class Forbidden(ClinicError):
    status = 403
    title = "Forbidden"


class Unauthorized(ClinicError):
    status = 401
    title = "Unauthorized"
