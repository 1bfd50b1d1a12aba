"""The Flask side every service shares: app factory pieces, problem+json errors,
authentication, request/correlation ids, health, readiness, metrics and API docs."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import marshmallow as ma
from flask import Flask, Response, g, jsonify, request
from flask_smorest import Api, Blueprint
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from shared import correlation, logs, metrics
from shared.auth import Principal, verifier_for
from shared.config import Settings
from shared.errors import ClinicError, Forbidden, Unauthorized

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/static/")

F = TypeVar("F", bound=Callable[..., Any])


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """webargs' nested {"json": {"patient": {"name": [...]}}} -> {"patient.name": [...]}."""
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "body": messages}
    if isinstance(messages, dict):
        out: dict[str, list[str]] = {}
        for key, value in messages.items():
            if not prefix and key in ("json", "query", "form", "headers", "view_args", "files"):
                name = "" if key == "json" else str(key)
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, name))
        return out
    return {prefix or "body": [str(messages)]}


def problem(status: int, title: str, detail: str, *,
            errors: dict[str, Any] | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "status": status, "title": title,
                            "detail": detail, "instance": request.path if request else None}
    if errors:
        flat = _flatten(errors)
        body["errors"] = flat
        body["invalid_params"] = [{"name": k, "reason": "; ".join(v)} for k, v in flat.items()]
    if correlation.request_id():
        body["request_id"] = correlation.request_id()
    body.update(extra)
    resp = jsonify(body)
    resp.status_code = status
    resp.mimetype = PROBLEM
    return resp


class ClinicApi(Api):
    """flask-smorest's Api answering every HTTP error as application/problem+json."""

    def handle_http_exception(self, error: HTTPException) -> Response:
        data = getattr(error, "data", None) or {}
        errors = data.get("errors") or data.get("messages")
        status = error.code or 500
        if status == 422 and errors:
            detail = "The request has invalid fields: " + ", ".join(sorted(_flatten(errors)))
        else:
            detail = data.get("message") or error.description or error.name
        resp = problem(status, error.name, str(detail), errors=errors)
        for k, v in (data.get("headers") or {}).items():
            resp.headers[k] = v
        return resp


def current_principal() -> Principal:
    principal: Principal | None = getattr(g, "principal", None)
    if principal is None:
        raise Unauthorized("a bearer token is required")
    return principal


def roles(*allowed: str) -> Callable[[F], F]:
    """Route decorator: only these roles may call it. No role passes implicitly: admin
    is the operations role and is named only on operational routes (least privilege)."""
    allowed_set = set(allowed)

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            current_principal().require(*allowed_set)
            return view(*args, **kwargs)

        # the roles ride on the view for the OpenAPI document and the security matrix;
        # functools.wraps keeps the view's signature, which F cannot say to mypy
        wrapper._paincare_roles = sorted(allowed_set)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def create_service_app(settings: Settings, *, title: str, description: str,
                       blueprints: Iterable[Blueprint],
                       ready_checks: Iterable[Callable[[], None]] = (),
                       extensions: dict[str, Any] | None = None,
                       secret_url_paths: tuple[str, ...] = ()) -> Flask:
    """The app every service builds on; the service adds its blueprints and extensions.
    `secret_url_paths`: path prefixes whose URL itself is the credential (a provider's
    iCal feed: calendar programs cannot send a bearer token); the route checks it."""
    logs.configure(settings.service, settings.log_level)
    settings.check_key_source()  # fail closed: no key source outside development
    # root_path as Flask finds it for a name that is not a module (the working directory),
    # said outright: a service named like an installed namespace package ("fhir") would
    # otherwise make Flask refuse to start
    app = Flask(settings.service, root_path=os.getcwd())
    app.config.update(
        API_TITLE=title,
        API_VERSION="1.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/static/swagger-ui/",
        API_SPEC_OPTIONS={
            "info": {"description": description},
            "components": {"securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
            "security": [{"bearer": []}],
        },
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.extensions["paincare.settings"] = settings
    app.extensions["paincare.public_paths"] = PUBLIC_PATHS + tuple(secret_url_paths)
    for name, ext in (extensions or {}).items():
        app.extensions[name] = ext
    api = ClinicApi(app)
    for bp in blueprints:
        api.register_blueprint(bp)
    _serve_swagger_assets(app)
    _install_request_hooks(app, settings)
    _install_probes(app, settings, list(ready_checks))

    @app.errorhandler(ClinicError)
    def _clinic_error(exc: ClinicError) -> Response:
        return problem(exc.status, exc.title, exc.detail, errors=exc.errors or None)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return api.handle_http_exception(exc)
        if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)):
            log.warning("database unavailable", extra={"error": repr(exc)[:300]})
            resp = problem(503, "Service unavailable",
                           "The database cannot be reached just now; nothing was saved. "
                           "Try again shortly.")
            resp.headers["Retry-After"] = "5"
            return resp
        log.exception("unhandled error")
        return problem(500, "Internal server error",
                       "Something went wrong on our side; it has been logged.")

    return app


def _serve_swagger_assets(app: Flask) -> None:
    """The interactive docs use Swagger UI from a Python package, not a CDN: clinics may
    have no internet."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # pragma: no cover
        return
    from flask import send_from_directory

    @app.get("/static/swagger-ui/<path:filename>")
    def _swagger_asset(filename: str) -> Response:
        return send_from_directory(swagger_ui_path, filename)


def _declared_roles(app: Flask, endpoint: str | None, method: str) -> list[str] | None:
    """The roles `@roles` put on the view (or on a MethodView's method), if any."""
    view = app.view_functions.get(endpoint) if endpoint else None
    allowed = getattr(view, "_paincare_roles", None)
    view_class = getattr(view, "view_class", None)
    if allowed is None and view_class is not None:
        allowed = getattr(getattr(view_class, method.lower(), None), "_paincare_roles", None)
    return allowed


def _has_control_characters(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _audit_refusal(app: Flask, principal: Principal | None, reason: str) -> None:
    """A role refused at the door still leaves its trace in the service's audit trail,
    in a transaction of its own (the request does no work of its own)."""
    runtime = app.extensions.get("paincare.runtime")
    if runtime is None or principal is None:
        return
    try:
        with runtime.db.transaction() as session:
            runtime.audit.record(session, principal, f"{request.method} {request.path}"[:60],
                                 (request.url_rule.rule if request.url_rule else "route")[:60],
                                 outcome="denied", reason=reason)
    except Exception:  # the refusal is answered even if the audit write fails
        log.exception("could not audit a refused request")


def _unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """Text no column can hold: a NUL character (PostgreSQL refuses it) or a lone
    surrogate (not UTF-8). Found anywhere in a JSON body, it is refused as input naming
    the field (`patient.name`, `medications.0.dose`), not answered with a 500."""
    if isinstance(value, str):
        if "\x00" in value:
            return path or "body", "a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body", "a lone surrogate (not UTF-8)"
        return None
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            items += [(name, key), (name, item)]
    elif isinstance(value, list):
        items = [(f"{path}.{i}" if path else str(i), item) for i, item in enumerate(value)]
    for name, item in items:
        found = _unstorable(item, name)
        if found:
            return found
    return None


def _install_request_hooks(app: Flask, settings: Settings) -> None:
    verifier = verifier_for(settings)

    @app.before_request
    def _identify() -> Response | None:
        g.started = time.perf_counter()
        rid = request.headers.get("X-Request-ID") or str(uuid.uuid4())
        cid = request.headers.get("X-Correlation-ID") or rid
        correlation.set_request(rid[:64], cid[:64])
        g.principal = None
        if _has_control_characters(request.path):
            return problem(400, "Bad request", "the URL's path contains control characters")
        bad_args = sorted({f"query.{k}" for k, v in request.args.items(multi=True)
                           if _has_control_characters(k + v)})
        if bad_args:
            return problem(422, "Unprocessable content",
                           "query parameters may not contain control characters",
                           errors={k: ["may not contain control characters"] for k in bad_args})
        if request.path.startswith(app.extensions["paincare.public_paths"]) \
                or request.method == "OPTIONS":
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return problem(401, "Unauthorized", "a bearer token is required")
        try:
            g.principal = verifier.verify(token.strip())
            # A role the route does not allow is refused before its arguments are parsed:
            # otherwise it gets a 422 that describes the request schema instead of a 403.
            allowed = _declared_roles(app, request.endpoint, request.method)
            if allowed is not None:
                g.principal.require(*allowed)
        except Forbidden as exc:
            _audit_refusal(app, g.principal, str(exc))
            return problem(exc.status, exc.title, exc.detail)
        except ClinicError as exc:
            return problem(exc.status, exc.title, exc.detail)
        found = _unstorable(request.get_json(silent=True)) if request.is_json else None
        if found:
            field, what = found
            return problem(422, "Unprocessable content", f"{field} may not contain {what}",
                           errors={field: [f"may not contain {what}"]})
        return None

    @app.after_request
    def _measure(resp: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        metrics.HTTP_REQUESTS.labels(settings.service, request.method, route,
                                     str(resp.status_code)).inc()
        metrics.HTTP_SECONDS.labels(settings.service, request.method, route).observe(elapsed)
        if resp.status_code >= 500:
            metrics.HTTP_ERRORS.labels(settings.service, route).inc()
        resp.headers["X-Request-ID"] = correlation.request_id() or ""
        resp.headers["X-Correlation-ID"] = correlation.correlation_id() or ""
        if resp.status_code == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="paincare"'
        if not request.path.startswith(("/metrics", "/healthz", "/readyz")):
            log.info("request", extra={"method": request.method, "route": route,
                                       "status": resp.status_code,
                                       "ms": round(elapsed * 1000, 1)})
        return resp

    @app.teardown_request
    def _forget(_exc: BaseException | None) -> None:
        correlation.clear()


def _install_probes(app: Flask, settings: Settings, checks: list[Callable[[], None]]) -> None:
    @app.get("/healthz")
    def _healthz() -> Response:
        return jsonify(status="alive", service=settings.service)

    @app.get("/readyz")
    def _readyz() -> Response:
        failures: dict[str, str] = {}
        for check in checks:
            try:
                check()
            except Exception as exc:
                failures[getattr(check, "__name__", "check")] = str(exc)[:200]
        if failures:
            resp = problem(503, "Service unavailable", " | ".join(failures.values()),
                           service=settings.service, failures=failures)
            resp.headers["Retry-After"] = "5"
            return resp
        return jsonify(status="ready", service=settings.service)

    @app.get("/metrics")
    def _metrics() -> Response:
        runtime = app.extensions.get("paincare.runtime")
        if runtime is not None:
            runtime.refresh_metrics()
        return Response(metrics.exposition(), mimetype="text/plain; version=0.0.4")


class PageArgs(ma.Schema):
    """Paging for every list route: ?limit=&offset=."""

    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=500))
    # bounded: an offset past a 64-bit integer reached the database and answered 500
    offset = ma.fields.Integer(load_default=0,
                               validate=ma.validate.Range(min=0, max=1_000_000_000))


PAGE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class _PageAtRoot:
    """WSGI middleware: `/` is the page (which routes itself by its #fragment). Every
    other path is the app's, under its authentication."""

    def __init__(self, app: Callable[..., Iterable[bytes]], index: str) -> None:
        self.app = app
        self.index = index

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in ("/", "", "/index.html"):
            environ["PATH_INFO"] = self.index
        return self.app(environ, start_response)


def serve_page(app: Flask, name: str, static_dir: Path) -> None:
    """Serve a service's web page from its own files (no CDN: a clinic may have no
    internet) under the public `/static/<name>/`, with `/` as its index.html and a
    same-origin Content-Security-Policy. A page carries no data; it signs in and asks
    the service's APIs, which are not public."""
    from flask import send_from_directory

    base = f"/static/{name}"

    def asset(filename: str) -> Response:
        response = send_from_directory(static_dir, filename, max_age=0)
        response.headers["Content-Security-Policy"] = PAGE_CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    app.add_url_rule(base + "/<path:filename>", f"{name}_page_asset", asset)
    # the WSGI middleware pattern Flask documents: wrap the app's wsgi_app in place
    app.wsgi_app = _PageAtRoot(app.wsgi_app, base + "/index.html")  # type: ignore[method-assign]
