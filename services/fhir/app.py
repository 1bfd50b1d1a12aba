"""App factory for the FHIR R4 gateway: /fhir, with every error answered as a FHIR
OperationOutcome naming the element (FHIR clients read those, not problem+json)."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, json, request

from services.fhir import api
from services.fhir.referrals_client import ReferralsIntake
from services.fhir.wiring import build_runtime, referrals_intake
from shared import ops
from shared.config import Settings
from shared.runtime import Runtime
from shared.web import PROBLEM, create_service_app

# problem status -> OperationOutcome.issue.code
ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found",
               405: "not-supported", 409: "conflict", 413: "too-costly", 415: "invalid",
               422: "invalid", 429: "throttled", 503: "transient"}


def operation_outcome(problem: dict[str, Any]) -> dict[str, Any]:
    """A problem document in FHIR's words: one issue per named element."""
    status = int(problem.get("status") or 500)
    code = ISSUE_CODES.get(status, "exception")
    severity = "error" if status < 500 else "fatal"
    issues = []
    for element, messages in (problem.get("errors") or {}).items():
        for message in messages or [""]:
            issues.append({"severity": severity, "code": code,
                           "diagnostics": str(message) or str(problem.get("detail")),
                           "expression": [element]})
    if not issues:
        issues.append({"severity": severity, "code": code,
                       "diagnostics": str(problem.get("detail") or problem.get("title"))})
    return {"resourceType": "OperationOutcome", "issue": issues}


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None,
               referrals: ReferralsIntake | None = None) -> Flask:
    runtime = runtime or build_runtime(settings)
    runtime.create_schema()
    app = create_service_app(
        runtime.settings,
        title="PainCare FHIR gateway",
        description="FHIR R4 (4.0.1): referrals in as transaction Bundles, and the "
                    "clinic's record out (Patient, ServiceRequest, Task, Appointment, "
                    "Observation and more).",
        blueprints=[ops.blp, api.blp],
        ready_checks=runtime.ready_checks(),
        extensions={"paincare.runtime": runtime,
                    "fhir.referrals": referrals or referrals_intake(runtime.settings)},
    )
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024

    @app.after_request
    def _as_operation_outcome(resp: Response) -> Response:
        if not request.path.startswith("/fhir") or resp.mimetype != PROBLEM:
            return resp
        try:
            problem = json.loads(resp.get_data())
        except ValueError:
            return resp
        resp.set_data(json.dumps(operation_outcome(problem)))
        resp.mimetype = api.FHIR_JSON
        return resp

    return app
