"""App factory for the notes service's HTTP API, served by gunicorn (docs at /docs)."""

from flask import Flask

from services.notes.alerting import ack_interval
from services.notes.api import admin_blp, blp
from services.notes.care_notes import scoring
from services.notes.safety_api import safety_blp
from services.notes.wiring import build_runtime
from shared import ops
from shared.config import Settings
from shared.runtime import Runtime
from shared.web import create_service_app


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Flask:
    runtime = runtime or build_runtime(settings)
    scoring(runtime)   # a cut-off or threshold outside its instrument's range: refuse to start
    ack_interval(runtime)  # a bad SAFETY_ACK_MINUTES refuses to start, not to save a note
    runtime.create_schema()
    return create_service_app(
        runtime.settings,
        title="PainCare care notes",
        description="Shared care notes, outcome measures, signing, addenda and care-team access.",
        blueprints=[blp, safety_blp, admin_blp, ops.blp],
        ready_checks=runtime.ready_checks(),
        extensions={"paincare.runtime": runtime},
    )
