"""The dashboard's JSON API, for admins only: the platform, the clinic's figures, and the
two things an admin may do from the page (replay dead letters, rebuild the read model)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint

from services.dashboard import domain
from services.dashboard.db import ReadModelStore
from services.dashboard.probe import PlatformProbe
from shared import topics
from shared.errors import NotFound
from shared.runtime import Runtime
from shared.web import roles

blp = Blueprint("dashboard", __name__, url_prefix="/api",
                description="The ops dashboard's figures (admins only)")

# Only for providers whose provider.capacity_changed has not arrived (marked
# capacity_known: false); everyone else's capacity is their template minus time off.
DEFAULT_WEEKLY_HOURS = "37.5"


class ReadModelOut(ma.Schema):
    generation = ma.fields.Integer()
    records = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())


class ReplayOut(ma.Schema):
    service = ma.fields.String()
    replayed = ma.fields.Integer()


def _runtime() -> Runtime:
    return current_app.extensions["paincare.runtime"]


def _probe() -> PlatformProbe:
    return current_app.extensions["dashboard.probe"]


def clinic_figures(runtime: Runtime, now: datetime | None = None) -> dict:
    """The clinic's figures from the read model, as of now."""
    settings = runtime.settings
    store = ReadModelStore()
    with runtime.db.transaction() as s:
        snap = store.snapshot(s)
        generation = store.generation(s)
    figures = domain.clinic_figures(
        snap, now=now or datetime.now(UTC), tz=ZoneInfo(settings.clinic_timezone),
        weekly_hours=float(settings.setting("DASHBOARD_PROVIDER_WEEKLY_HOURS",
                                            DEFAULT_WEEKLY_HOURS)))
    figures["read_model_generation"] = generation
    return figures


@blp.get("/platform")
@blp.response(200)
@roles("admin")
def platform() -> dict:
    """Each service's readiness and outbox backlog; Kafka topics, lag and dead letters."""
    return _probe().snapshot()


@blp.get("/clinic")
@blp.response(200)
@roles("admin")
def clinic() -> dict:
    """Referrals, waits, today's appointments, utilisation, no-shows and notifications."""
    return clinic_figures(_runtime())


@blp.get("/read-model")
@blp.response(200, ReadModelOut)
@roles("admin")
def read_model() -> dict:
    runtime = _runtime()
    store = ReadModelStore()
    with runtime.db.transaction() as s:
        return {"generation": store.generation(s), "records": store.counts(s)}


@blp.post("/read-model/rebuild")
@blp.response(202, ReadModelOut)
@roles("admin")
def rebuild() -> dict:
    """Empty the read model; the worker refills it from the beginning of every topic
    under a new consumer group."""
    runtime = _runtime()
    store = ReadModelStore()
    with runtime.db.transaction() as s:
        generation = store.reset(s, runtime.tables.inbox)
        return {"generation": generation, "records": store.counts(s)}


@blp.post("/dead-letters/<service>/replay")
@blp.response(200, ReplayOut)
@roles("admin")
def replay(service: str) -> dict:
    """Send a service's dead letters back to their topics, each once."""
    if service not in topics.SERVICES:
        raise NotFound(f"no service called {service!r}")
    return {"service": service, "replayed": _probe().replay(service)}
