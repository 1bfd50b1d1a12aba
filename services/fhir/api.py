"""The FHIR R4 HTTP face: intake (transaction Bundle, bare ServiceRequest), read, search,
the CapabilityStatement and our CodeSystems.

Routes are thin: parse FHIR with the pure `mapping`, hand the referral to the referrals
service's own API, read the read model, audit patient-data access. Errors are raised as
shared.errors naming the FHIR element; the app answers them as OperationOutcome.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Response, current_app, json, request
from flask_smorest import Blueprint
from werkzeug.datastructures import MultiDict

from services.fhir import capability
from services.fhir import mapping as fm
from services.fhir.db import Resources, Search, served
from services.fhir.referrals_client import ReferralsIntake, ReferralsUnavailable
from shared.auth import Principal
from shared.errors import ClinicError, Forbidden, InvalidInput, NotFound
from shared.runtime import Runtime
from shared.web import current_principal, roles

FHIR_JSON = "application/fhir+json"

blp = Blueprint("fhir", __name__, url_prefix="/fhir",
                description="FHIR R4 (4.0.1): referrals in, the clinic's record out")

READERS = ("scheduler", "specialist")
INTAKE = ("scheduler", "referrer")   # referrals checks the rest (a referrer's own only)
MAX_COUNT = 100
DEFAULT_COUNT = 20


class Refused(ClinicError):
    """The referrals service refused the referral; its status, our FHIR words."""

    def __init__(self, status: int, detail: str, errors: dict[str, object]) -> None:
        super().__init__(detail, errors=errors)
        self.status = status
        self.title = "Referral refused"


def _runtime() -> Runtime:
    return current_app.extensions["paincare.runtime"]


def _referrals() -> ReferralsIntake:
    return current_app.extensions["fhir.referrals"]


def _now() -> datetime:
    return datetime.now(UTC)


def _base() -> str:
    return request.host_url.rstrip("/") + "/fhir"


def fhir(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
         ) -> Response:
    resp = current_app.response_class(json.dumps(body), status=status, mimetype=FHIR_JSON)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _may_read(principal: Principal, resource_type: str) -> None:
    if resource_type in capability.CLINICAL and principal.role != "specialist":
        raise Forbidden(f"{resource_type} holds clinical measures and visits: "
                        "specialists only")



# ---------------------------------------------------------------------------- intake

def _body() -> Any:
    raw = request.get_json(force=True, silent=True)
    if raw is None:
        raise InvalidInput("the body is not JSON", field="body")
    return raw


def _task_for(repo: Resources, referral_id: str) -> dict[str, Any] | None:
    row = repo.get("Task", fm.fhir_id(referral_id))
    if row is not None:
        return served(row)
    known = repo.fact("intake", referral_id)
    if known is None:
        return None
    return fm.task(known, repo.identifiers_of("service_request", referral_id))


def _receive(intake: fm.Intake) -> Response:
    runtime = _runtime()
    principal = current_principal()
    now = _now()
    keys = ([("service_request", i) for i in intake.request_identifiers]
            + ([("bundle", intake.bundle_identifier)] if intake.bundle_identifier else []))
    patient_id = intake.body["patient"]["id"]
    with runtime.db.transaction() as s:
        repo = Resources(s)
        for kind, ident in keys:
            known = repo.identified(kind, ident)
            task = _task_for(repo, known) if known else None
            if task is not None:
                runtime.audit.record(s, principal, "fhir.intake_repeat", "Task",
                                     resource_id=known, patient_id=patient_id)
                return fhir(task, 200, {"Location": f"{_base()}/Task/{task['id']}"})
    auth = request.headers.get("Authorization", "")
    answer = _referrals().create(intake.body, idempotency_key=intake.idempotency_key,
                                 authorization=auth)
    if answer.status >= 500:
        raise ReferralsUnavailable("the referrals service could not take the referral just "
                                   "now; nothing was created. Try again shortly.")
    if answer.status >= 400:
        errors = answer.body.get("errors") or {}
        mapped: dict[str, object] = {}
        for field, messages in (errors.items() if isinstance(errors, dict) else []):
            mapped.setdefault(fm.fhir_path(str(field)), []).extend(  # type: ignore[union-attr]
                messages if isinstance(messages, list) else [str(messages)])
        raise Refused(answer.status, str(answer.body.get("detail") or "refused"), mapped)
    referral = answer.body
    patient_id = referral["patient"]["id"]  # PainCare's own id, from the registry
    known = {"id": referral["id"], "status": referral["status"],
             "patient_id": referral["patient"]["id"], "received_at": referral["received_at"],
             "updated_at": referral.get("updated_at") or referral["received_at"],
             "priority": referral.get("priority"), "due_by": referral.get("due_by"),
             "referrer": referral.get("referrer") or {},
             "condition": referral.get("condition", "other"),
             "urgency_requested": referral.get("urgency_requested")}
    with runtime.db.transaction() as s:
        repo = Resources(s)
        for kind, ident in keys:
            repo.remember(kind, ident, referral["id"], now)
        for ident in intake.patient_identifiers:
            repo.remember("patient", ident, patient_id, now)
        repo.save_fact("intake", referral["id"], known)
        _refresh_identifiers(repo, referral["id"], patient_id, now)
        runtime.audit.record(s, principal, "fhir.intake", "Task", resource_id=referral["id"],
                             patient_id=patient_id)
        task = _task_for(repo, referral["id"])
    assert task is not None
    return fhir(task, 201 if answer.status == 201 else 200,
                {"Location": f"{_base()}/Task/{task['id']}"})


def _refresh_identifiers(repo: Resources, referral_id: str, patient_id: str,
                         now: datetime) -> None:
    """When the read model got the referral's events before the identifiers were kept,
    show them now (the handlers show them when the events come later)."""
    from services.fhir.handlers import patient_resource, referral_resources

    referral = repo.fact("referral", referral_id)
    if referral is not None:
        referral_resources(repo, referral, now)
    contact = repo.fact("patient", patient_id)
    if contact is not None:
        patient_resource(repo, contact, now)


@blp.route("", methods=["POST"])
@roles(*INTAKE)
def transaction() -> Response:
    """A referral as a FHIR transaction Bundle; answers with the Task tracking it."""
    return _receive(fm.from_bundle(_body(), today=_now().date()))


@blp.route("/ServiceRequest", methods=["POST"])
@roles(*INTAKE)
def create_service_request() -> Response:
    """A referral as one ServiceRequest with its Patient, Condition and requester
    contained; answers with the Task tracking it."""
    return _receive(fm.from_service_request(_body(), today=_now().date()))


# ------------------------------------------------------------------- read and search

@blp.route("/metadata", methods=["GET"])
@roles(*READERS, "service")
def metadata() -> Response:
    """The CapabilityStatement: exactly what this gateway supports."""
    return fhir(capability.capability_statement(base_url=_base(), today=_now().date()))


@blp.route("/CodeSystem/<cid>", methods=["GET"])
@roles(*READERS, "service")
def read_code_system(cid: str) -> Response:
    """Our own code systems (referral status, discipline, condition, measure)."""
    body = capability.code_system(cid)
    if body is None:
        raise NotFound(f"CodeSystem/{cid} is not known here", errors={"CodeSystem.id": [cid]})
    return fhir(body)


def _known_type(resource_type: str) -> None:
    if resource_type not in capability.SEARCH_PARAMS:
        raise NotFound(f"{resource_type} is not served here; see /fhir/metadata",
                       errors={"resourceType": [f"{resource_type!r} is not supported"]})


@blp.route("/<resource_type>/<rid>", methods=["GET"])
@roles(*READERS)
def read(resource_type: str, rid: str) -> Response:
    """One resource by its logical id."""
    _known_type(resource_type)
    principal = current_principal()
    _may_read(principal, resource_type)
    runtime = _runtime()
    with runtime.db.transaction() as s:
        row = Resources(s).get(resource_type, rid)
        if row is None:
            raise NotFound(f"{resource_type}/{rid} is not known",
                           errors={f"{resource_type}.id": [rid]})
        runtime.audit.record(s, principal, "fhir.read", resource_type, resource_id=rid,
                             patient_id=row.patient_id)
        body = served(row)
    return fhir(body, headers={"ETag": f'W/"{body["meta"]["versionId"]}"'})


@blp.route("/<resource_type>", methods=["GET"])
@roles(*READERS)
def search(resource_type: str) -> Response:
    """A search, answered as a paged searchset Bundle with `next` links."""
    _known_type(resource_type)
    principal = current_principal()
    _may_read(principal, resource_type)
    q = parse_search(resource_type, request.args)
    runtime = _runtime()
    with runtime.db.transaction() as s:
        rows, total = Resources(s).search(q)
        runtime.audit.record(s, principal, "fhir.search", resource_type,
                             patient_id=q.patient if resource_type != "Patient"
                             else (q.ids[0] if len(q.ids) == 1 else None))
        entries = [{"fullUrl": f"{_base()}/{r.resource_type}/{r.id}", "resource": served(r),
                    "search": {"mode": "match"}} for r in rows]
    links = [{"relation": "self", "url": _page_url(resource_type, request.args, q.offset)}]
    if q.offset + q.count < total:
        links.append({"relation": "next",
                      "url": _page_url(resource_type, request.args, q.offset + q.count)})
    if q.offset > 0:
        links.append({"relation": "previous", "url": _page_url(
            resource_type, request.args, max(0, q.offset - q.count))})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": total,
                              "link": links}
    if entries:
        bundle["entry"] = entries
    return fhir(bundle)


def _page_url(resource_type: str, args: MultiDict, offset: int) -> str:
    pairs = [(k, v) for k, v in args.items(multi=True) if k != "_offset"]
    pairs.append(("_offset", str(offset)))
    return f"{_base()}/{resource_type}?{urlencode(pairs)}"


# --------------------------------------------------------------------- search parsing

class BadSearch(ClinicError):
    """A search the gateway cannot run as asked (400, as FHIR says for searches)."""

    def __init__(self, detail: str, *, field: str) -> None:
        super().__init__(detail, errors={field: [detail]})


_DATE = re.compile(r"^(eq|ge|gt|le|lt)?(\d{4})(?:-(\d{2})(?:-(\d{2})(T.+)?)?)?$")


def date_bounds(param: str, raw: str) -> list[tuple[str, datetime]]:
    """One FHIR date search value -> bounds on the column. A value stands for the range
    its precision implies (2026 is the whole year); prefixes compare with that range."""
    m = _DATE.match(raw)
    if not m:
        raise BadSearch(f"{param}: {raw!r} is not a FHIR date (e.g. ge2026-12-01)",
                           field=param)
    prefix = m.group(1) or "eq"
    try:
        if m.group(5):
            lo = datetime.fromisoformat(raw[len(m.group(1) or ""):].replace("Z", "+00:00"))
            if lo.tzinfo is None:
                lo = lo.replace(tzinfo=UTC)
            hi = lo + timedelta(seconds=1)
        elif m.group(4):
            lo = datetime(int(m.group(2)), int(m.group(3)), int(m.group(4)), tzinfo=UTC)
            hi = lo + timedelta(days=1)
        elif m.group(3):
            y, mo = int(m.group(2)), int(m.group(3))
            lo = datetime(y, mo, 1, tzinfo=UTC)
            hi = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=UTC)
        else:
            lo = datetime(int(m.group(2)), 1, 1, tzinfo=UTC)
            hi = datetime(int(m.group(2)) + 1, 1, 1, tzinfo=UTC)
    except ValueError:
        raise BadSearch(f"{param}: {raw!r} is not a real date", field=param) from None
    return {"eq": [("ge", lo), ("lt", hi)], "ge": [("ge", lo)], "gt": [("ge", hi)],
            "le": [("lt", hi)], "lt": [("lt", lo)]}[prefix]


def _int(param: str, raw: str, low: int, high: int) -> int:
    if not re.fullmatch(r"\d{1,6}", raw) or not low <= int(raw) <= high:
        raise BadSearch(f"{param}: a whole number from {low} to {high}", field=param)
    return int(raw)


def parse_search(resource_type: str, args: MultiDict) -> Search:
    """The query string -> a Search. Parameters we do not support are refused (400),
    so a client never mistakes an ignored filter for an applied one."""
    supported = capability.SEARCH_PARAMS[resource_type]
    q = Search(resource_type=resource_type, count=DEFAULT_COUNT)
    for name, raw in args.items(multi=True):
        if name == "_format":
            continue
        if name == "_count":
            q.count = _int(name, raw, 1, MAX_COUNT)
        elif name == "_offset":
            q.offset = _int(name, raw, 0, 1_000_000)
        elif name == "_id":
            q.ids += [v for v in raw.split(",") if v]
        elif name == "_lastUpdated":
            q.last_updated += date_bounds(name, raw)
        elif name in supported:
            kind, column = supported[name]
            if kind == "date":
                q.date += date_bounds(name, raw)
            elif column == "patient":
                value = raw.removeprefix(_base() + "/").removeprefix("Patient/")
                if not value or "/" in value:
                    raise BadSearch(f"{name}: expected Patient/{{id}} or {{id}}",
                                       field=name)
                q.patient = value
            elif column == "status":
                q.statuses += [v for v in raw.split(",") if v]
            elif kind == "reference":
                q.codes += [f"Schedule|{raw.removeprefix('Schedule/')}"]
            else:
                q.codes += [v for v in raw.split(",") if v]
        else:
            allowed = ", ".join(["_id", "_lastUpdated", "_count", "_offset", *supported])
            raise BadSearch(f"{name}: not a search parameter of {resource_type} here "
                               f"(supported: {allowed})", field=name)
    return q
