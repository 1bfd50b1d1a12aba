"""What the gateway supports, said once: the search parameters per resource type (the API
parses searches from this table) and the CapabilityStatement and CodeSystems built from
it. Pure."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.fhir import mapping as fm

# type -> {search parameter: (FHIR type, column it searches)}; every type also takes
# _id, _lastUpdated, _count and _offset.
_PATIENT = {"patient": ("reference", "patient"), "subject": ("reference", "patient")}
SEARCH_PARAMS: dict[str, dict[str, tuple[str, str]]] = {
    "Patient": {"birthdate": ("date", "date")},
    "ServiceRequest": {**_PATIENT, "status": ("token", "status"), "date": ("date", "date"),
                       "authored": ("date", "date")},
    "Task": {**_PATIENT, "status": ("token", "status"), "date": ("date", "date"),
             "authored-on": ("date", "date"), "business-status": ("token", "code")},
    "CareTeam": {**_PATIENT, "status": ("token", "status")},
    "Practitioner": {"active": ("token", "status")},
    "Schedule": {"active": ("token", "status"), "service-type": ("token", "code")},
    "Slot": {"schedule": ("reference", "code"), "status": ("token", "status"),
             "date": ("date", "date"), "start": ("date", "date")},
    "Appointment": {**_PATIENT, "status": ("token", "status"), "date": ("date", "date")},
    "Encounter": {**_PATIENT, "status": ("token", "status"), "date": ("date", "date")},
    "Observation": {**_PATIENT, "status": ("token", "status"), "date": ("date", "date"),
                    "code": ("token", "code")},
    "QuestionnaireResponse": {**_PATIENT, "status": ("token", "status"),
                              "authored": ("date", "date")},
    "Subscription": {"status": ("token", "status")},
}
# Patient's own id is its patient; these types reach a patient through a column.
COMMON = {"_id": "token", "_lastUpdated": "date"}

_DOCS = {
    "patient": "The patient (Patient/{id} or {id})",
    "subject": "Same as patient",
    "status": "Status code; comma-separated values mean any of them",
    "date": "The resource's main date; prefixes eq, ge, gt, le, lt",
    "code": "system|code or code (LOINC for PHQ-9, GAD-7, pain severity)",
    "_id": "Logical id; comma-separated values mean any of them",
    "_lastUpdated": "When the resource last changed here; prefixes eq, ge, gt, le, lt",
}


def capability_statement(*, base_url: str, today: date) -> dict[str, Any]:
    resources = []
    for rtype, params in SEARCH_PARAMS.items():
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "versioning": "versioned",
            "readHistory": False, "updateCreate": False,
            "searchParam": [
                {"name": name, "type": kind, **({"documentation": _DOCS[name]}
                                                if name in _DOCS else {})}
                for name, kind in [*COMMON.items(), *((n, t) for n, (t, _) in params.items())]
            ],
        }
        if rtype == "Subscription":
            entry["interaction"].insert(0, {
                "code": "create",
                "documentation": "A referring system's rest-hook on the Tasks of the "
                                 "referrals it sent: criteria Task or "
                                 "Task?requester={the system}; each new version of such "
                                 "a Task is POSTed to channel.endpoint (with "
                                 "channel.payload application/fhir+json, else empty)."})
        if rtype == "ServiceRequest":
            entry["interaction"].insert(0, {
                "code": "create",
                "documentation": "A referral: a ServiceRequest whose Patient, Condition "
                                 "and requester are contained. Answers with the Task "
                                 "that tracks it. Idempotent on ServiceRequest.identifier."})
        resources.append(entry)
    resources.append({"type": "CodeSystem", "interaction": [{"code": "read"}]})
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": today.isoformat(),
        "publisher": "PainCare",
        "kind": "instance",
        "software": {"name": "PainCare FHIR gateway", "version": "1.0"},
        "implementation": {"description": "PainCare: referrals in, the clinic's record out",
                           "url": base_url},
        "fhirVersion": fm.FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Bearer JWTs as every PainCare service. Intake needs the "
                             "scheduler role; clinical resources (Observation, Encounter) "
                             "need the specialist role.",
            "security": {"cors": False, "description": "Bearer JWT (HS256)"},
            "resource": resources,
            "interaction": [{
                "code": "transaction",
                "documentation": "A referral Bundle: Patient, ServiceRequest, Condition "
                                 "(SNOMED CT or ICD-10), requester, DocumentReference/"
                                 "Binary attachments. All or nothing; idempotent on "
                                 "Bundle.identifier and ServiceRequest.identifier; "
                                 "answers with the Task tracking the referral."}],
        }],
    }


def _codes(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"code": c, "display": d} for c, d in pairs]


CODE_SYSTEMS: dict[str, tuple[str, str, list[dict[str, str]]]] = {
    "referral-status": (fm.CS_REFERRAL_STATUS, "PainCare referral status",
                        _codes(list(fm.REFERRAL_STATUS_DISPLAY.items()))),
    "discipline": (fm.CS_DISCIPLINE, "PainCare discipline",
                   _codes(list(fm.DISCIPLINE_DISPLAY.items()))),
    "condition": (fm.CS_CONDITION, "PainCare condition",
                  _codes(list(fm.CONDITION_DISPLAY.items()))),
    "measure": (fm.CS_MEASURE, "PainCare outcome measure",
                _codes([(c, d) for s, c, d in fm.MEASURE_CODES.values()
                        if s == fm.CS_MEASURE])),
}


def code_system(cid: str) -> dict[str, Any] | None:
    if cid not in CODE_SYSTEMS:
        return None
    url, title, concepts = CODE_SYSTEMS[cid]
    return {"resourceType": "CodeSystem", "id": cid, "url": url, "version": "1.0",
            "name": "PainCare" + "".join(w.capitalize() for w in cid.split("-")),
            "title": title, "status": "active", "publisher": "PainCare",
            "description": f"{title} codes used by the PainCare FHIR gateway.",
            "caseSensitive": True, "content": "complete", "count": len(concepts),
            "concept": concepts}
