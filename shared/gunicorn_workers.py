"""gunicorn workers whose own refusals speak application/problem+json.

gunicorn rejects some requests before Flask ever sees them (a request line over
`limit_request_line`, too many or too large header fields, a malformed request line or
header) and answers those with its own text/html page. The clinic's rule is that every
bad input gets a clear problem+json answer, so these workers keep gunicorn's limits (they
are protection) and only change what is written back and what is logged.

`deploy/gunicorn.conf.py` names `ProblemThreadWorker` (gthread) as its worker class.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from gunicorn import util
from gunicorn.http import errors as gerr
from gunicorn.http.message import DEFAULT_MAX_HEADERFIELD_SIZE, MAX_HEADERS, MAX_REQUEST_LINE
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from shared import correlation

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_UNSAFE = re.compile(r"[^A-Za-z0-9 /._-]")
PREFIX_CHARS = 24
# RFC 9110's names where Python 3.11's HTTPStatus still has the older ones
_TITLES = {414: "URI Too Long"}


@dataclass(frozen=True)
class Refusal:
    """What gunicorn refused and why: `reason` is a stable code for logs and dashboards,
    `detail` the sentence the client reads."""

    status: int
    reason: str
    detail: str

    @property
    def title(self) -> str:
        return _TITLES.get(self.status) or HTTPStatus(self.status).phrase


def _limits(cfg: Any) -> tuple[int, int, int]:
    """gunicorn's effective limits (its parser maps 0 or out-of-range the same way), so the
    detail names the number that was actually enforced."""
    line = cfg.limit_request_line
    line = MAX_REQUEST_LINE if line < 0 or line >= MAX_REQUEST_LINE else line
    fields = cfg.limit_request_fields
    fields = MAX_HEADERS if fields <= 0 or fields > MAX_HEADERS else fields
    size = cfg.limit_request_field_size
    size = DEFAULT_MAX_HEADERFIELD_SIZE if size <= 0 else size
    return line, fields, size


def _header_name(raw: object) -> str | None:
    """A header's name when gunicorn's exception holds one that is a plain token; None
    when it holds a whole line or garbage (not echoed: it may be a value)."""
    text = str(raw or "")
    return text.title() if _TOKEN.fullmatch(text) else None


def describe(exc: BaseException, cfg: Any) -> Refusal:
    """The problem for one of gunicorn's refusals; anything that is not the client's
    fault is a 500 that says nothing about the server's insides."""
    line_limit, fields_limit, size_limit = _limits(cfg)
    bare_lf = "bare LF" in str(exc)
    if isinstance(exc, (gerr.InvalidResponseHeader, gerr.InvalidResponseHeaderName)):
        pass  # the application's fault, not the client's: 500 below
    elif isinstance(exc, gerr.LimitRequestLine):
        limit = exc.max_size if isinstance(exc.max_size, int) else line_limit
        return Refusal(414, "request_line_too_long",
                       f"the request line is longer than {limit} bytes")
    elif isinstance(exc, gerr.LimitRequestHeaders):
        kind = str(exc)
        if "size" in kind:
            return Refusal(431, "header_field_too_large",
                           f"a header field is longer than {size_limit} bytes")
        if "buffer" in kind:
            total = fields_limit * (size_limit + 2) + 4
            return Refusal(431, "headers_too_large",
                           f"the request's header section is larger than {total} bytes")
        return Refusal(431, "too_many_header_fields",
                       f"the request has more than {fields_limit} header fields")
    elif isinstance(exc, gerr.InvalidRequestLine):
        if bare_lf:
            return Refusal(400, "bare_lf", "the request line ends with a bare LF, not CRLF")
        return Refusal(400, "invalid_request_line",
                       "the request line is not 'METHOD /target HTTP/1.1' (single spaces, "
                       "a target of printable ASCII)")
    elif isinstance(exc, gerr.InvalidRequestMethod):
        return Refusal(400, "invalid_method",
                       "the request method is not a valid HTTP method (3 to 20 letters)")
    elif isinstance(exc, gerr.InvalidHTTPVersion):
        return Refusal(400, "invalid_http_version",
                       "the request line's HTTP version is not HTTP/1.0 or HTTP/1.1")
    elif isinstance(exc, gerr.ObsoleteFolding):
        name = _header_name(exc.hdr)
        return Refusal(400, "obsolete_folding",
                       f"header {name or 'field'} continues on a folded line, which "
                       "HTTP/1.1 no longer accepts")
    elif isinstance(exc, gerr.InvalidHeaderName):
        return Refusal(400, "invalid_header_name",
                       "a header field name is not a valid token (letters, digits and "
                       "!#$%&'*+-.^_`|~ only)")
    elif isinstance(exc, gerr.InvalidHeader):
        if bare_lf:
            return Refusal(400, "bare_lf", "a header line ends with a bare LF, not CRLF")
        name = _header_name(exc.hdr)
        if name in ("Content-Length", "Transfer-Encoding"):
            return Refusal(400, "invalid_framing",
                           f"the {name} header is invalid or conflicts with another "
                           "framing header")
        if name:
            return Refusal(400, "invalid_header",
                           f"the value of header {name} contains characters not allowed")
        return Refusal(400, "invalid_header", "a header line is not 'Name: value'")
    elif isinstance(exc, gerr.UnsupportedTransferCoding):
        return Refusal(501, "unsupported_transfer_coding",
                       "the request's Transfer-Encoding is not supported (only chunked)")
    elif isinstance(exc, gerr.ExpectationFailed):
        return Refusal(417, "expectation_failed",
                       "the Expect header asks for something other than 100-continue")
    elif isinstance(exc, gerr.InvalidSchemeHeaders):
        return Refusal(400, "contradictory_scheme_headers",
                       "the request's scheme headers (X-Forwarded-Proto and the like) "
                       "contradict each other")
    elif isinstance(exc, (gerr.InvalidChunkSize, gerr.ChunkMissingTerminator,
                          gerr.InvalidChunkExtension)):
        return Refusal(400, "invalid_chunk", "the chunked request body is malformed")
    elif isinstance(exc, (gerr.InvalidProxyLine, gerr.InvalidProxyHeader)):
        return Refusal(400, "invalid_proxy_header", "the PROXY protocol header is invalid")
    elif isinstance(exc, gerr.ForbiddenProxyRequest):
        return Refusal(403, "proxy_forbidden",
                       "PROXY protocol requests are not accepted from this address")
    elif isinstance(exc, gerr.InvalidH2CPreface):
        return Refusal(400, "invalid_h2c_preface",
                       "the connection did not start with the HTTP/2 connection preface")
    elif isinstance(exc, ssl.SSLError):
        return Refusal(403, "tls_error", "the TLS handshake failed")
    return Refusal(500, "internal_error",
                   "Something went wrong on our side; it has been logged.")


def sanitised_prefix(text: object) -> str | None:
    """At most the method and first path segment, in a few safe characters: enough to
    tell a probe from a client bug, never a patient id, query or header value."""
    if not text:
        return None
    head = str(text).split("?", 1)[0].split("#", 1)[0]
    method, _, target = head.partition(" ")
    if target.startswith("/"):
        segment = target[1:].split("/", 1)
        head = f"{method} /{segment[0]}" + ("/" if len(segment) > 1 else "")
    return _UNSAFE.sub("?", head[:PREFIX_CHARS]) or None


def _request_line(req: Any, exc: BaseException) -> object:
    """Whatever of the request line gunicorn read before it gave up (often nothing)."""
    if req is not None and getattr(req, "method", None):
        return f"{req.method} {getattr(req, 'path', '') or ''}"
    if isinstance(exc, gerr.InvalidRequestLine):
        return exc.req
    if isinstance(exc, gerr.InvalidRequestMethod):
        return exc.method
    return None


def problem_response(refusal: Refusal, request_id: str) -> bytes:
    """A complete HTTP/1.1 response: problem+json, exact Content-Length, and
    `Connection: close`, since after a refusal the rest of the stream cannot be trusted."""
    body = json.dumps({"type": "about:blank", "status": refusal.status,
                       "title": refusal.title, "detail": refusal.detail,
                       "request_id": request_id}).encode()
    head = (f"HTTP/1.1 {refusal.status} {refusal.title}\r\n"
            f"Content-Type: {PROBLEM}\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"X-Request-ID: {request_id}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("latin-1") + body


class ProblemErrors:
    """Replaces gunicorn's `Worker.handle_error` (HTML page, raw request line in its log)
    with a problem+json answer and one JSON log line."""

    cfg: Any

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        refusal = describe(exc, self.cfg)
        request_id = str(uuid.uuid4())
        fields = {"status": refusal.status, "reason": refusal.reason,
                  "client_ip": (addr or ("",))[0] or None,
                  "request_line_prefix": sanitised_prefix(_request_line(req, exc)),
                  "error": type(exc).__name__}
        correlation.set_request(request_id, request_id)
        try:
            if refusal.status >= 500:
                log.error("request failed in gunicorn", extra=fields, exc_info=exc)
            else:
                log.warning("request refused by gunicorn", extra=fields)
        finally:
            correlation.clear()
        try:
            util.write_nonblock(client, problem_response(refusal, request_id))
        except Exception:  # the client may be gone already; nothing more to tell it
            log.debug("could not send the refusal", exc_info=True)


class ProblemThreadWorker(ProblemErrors, ThreadWorker):
    """gunicorn's gthread worker, refusing bad requests in problem+json."""


class ProblemSyncWorker(ProblemErrors, SyncWorker):
    """gunicorn's sync worker, refusing bad requests in problem+json."""
