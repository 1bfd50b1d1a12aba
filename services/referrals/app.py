"""App factory for the referrals service's HTTP API, served by gunicorn."""

from flask import Flask

from services.referrals.api import blp, targets_blp
from services.referrals.patients.api import patients_blp
from services.referrals.wiring import build_runtime
from shared import ops
from shared.config import Settings
from shared.runtime import Runtime
from shared.web import create_service_app


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Flask:
    """The API over a runtime (built from the environment unless a test hands one in)."""
    runtime = runtime or build_runtime(settings)
    runtime.create_schema()
    return create_service_app(
        runtime.settings,
        title="PainCare referrals",
        description="Referrals in, triage, care pathway and status workflow.",
        blueprints=[blp, targets_blp, patients_blp, ops.blp],
        ready_checks=runtime.ready_checks(),
        extensions={"paincare.runtime": runtime},
    )
