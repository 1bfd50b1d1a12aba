"""The clinic's records in FHIR R4 (4.0.1) words, and FHIR input in the clinic's words.

Pure: no Flask, SQLAlchemy or Kafka. Everything that decides what a FHIR resource says
lives here, so one table answers "what does our status X look like in FHIR".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from shared.errors import InvalidInput

FHIR_VERSION = "4.0.1"

# Our own code systems, published with the gateway (GET /fhir/CodeSystem/{id}).
PAINCARE = "https://paincare.example.org/fhir/CodeSystem"
CS_REFERRAL_STATUS = f"{PAINCARE}/referral-status"
CS_DISCIPLINE = f"{PAINCARE}/discipline"
CS_CONDITION = f"{PAINCARE}/condition"
CS_MEASURE = f"{PAINCARE}/measure"

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = ("http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm")
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"

# ---------------------------------------------------------------- referral statuses
# THE table: our referral status -> (Task.status, ServiceRequest.status). businessStatus
# always carries our own status in CS_REFERRAL_STATUS. Mirrored in services/fhir/README.md.
REFERRAL_STATUS_MAP: dict[str, tuple[str, str]] = {
    "received": ("requested", "active"),
    "triaged": ("received", "active"),
    "on_hold": ("on-hold", "on-hold"),
    "accepted": ("accepted", "active"),
    "scheduled": ("accepted", "active"),
    "in_care": ("in-progress", "active"),
    "discharged": ("completed", "completed"),
    "rejected": ("rejected", "revoked"),
    "cancelled": ("cancelled", "revoked"),
}
REFERRAL_STATUS_DISPLAY = {
    "received": "Received", "triaged": "Triaged", "on_hold": "On hold",
    "accepted": "Accepted", "scheduled": "Scheduled", "in_care": "In care",
    "discharged": "Discharged", "rejected": "Rejected", "cancelled": "Cancelled",
}

# Our priorities <-> ServiceRequest/Task.priority (routine | urgent | asap | stat).
PRIORITY_TO_FHIR = {"urgent": "asap", "soon": "urgent", "routine": "routine"}
PRIORITY_FROM_FHIR = {"stat": "urgent", "asap": "urgent", "urgent": "soon", "routine": "routine"}

DISCIPLINE_DISPLAY = {
    "pain_medicine": "Pain medicine", "physical_therapy": "Physical therapy",
    "psychology": "Psychology", "acupuncture": "Acupuncture",
}
CONDITION_DISPLAY = {
    "diabetic_neuropathy": "Diabetic neuropathy",
    "post_herpetic_neuralgia": "Post-herpetic neuralgia",
    "chemotherapy_induced_neuropathy": "Chemotherapy-induced neuropathy",
    "crps": "Complex regional pain syndrome", "multiple_sclerosis": "Multiple sclerosis",
    "radiculopathy": "Radiculopathy", "trigeminal_neuralgia": "Trigeminal neuralgia",
    "other": "Other neuropathic pain",
}
# SNOMED CT concept -> our condition (and back, for the codings we publish).
SNOMED_CONDITIONS = {
    "230572002": "diabetic_neuropathy",
    "2177002": "post_herpetic_neuralgia",
    "128200000": "crps",
    "24700007": "multiple_sclerosis",
    "72274001": "radiculopathy",
    "31681005": "trigeminal_neuralgia",
}
CONDITION_SNOMED = {v: k for k, v in SNOMED_CONDITIONS.items()}
# ICD-10 (WHO or -CM) code prefixes -> our condition; the longest prefix wins.
ICD10_CONDITIONS = {
    "E10.4": "diabetic_neuropathy", "E11.4": "diabetic_neuropathy",
    "E12.4": "diabetic_neuropathy", "E13.4": "diabetic_neuropathy",
    "E14.4": "diabetic_neuropathy", "G63.2": "diabetic_neuropathy",
    "B02.2": "post_herpetic_neuralgia", "G53.0": "post_herpetic_neuralgia",
    "G62.0": "chemotherapy_induced_neuropathy",
    "G90.5": "crps", "G56.4": "crps", "M89.0": "crps",
    "G35": "multiple_sclerosis",
    "M54.1": "radiculopathy", "M50.1": "radiculopathy", "M51.1": "radiculopathy",
    "G50.0": "trigeminal_neuralgia",
}

# ------------------------------------------------------------------------ measures
# note.signed's flat measure codes -> (system, code, display). LOINC where a code
# exists; the rest are PainCare codes (listed in the README).
MEASURE_CODES: dict[str, tuple[str, str, str]] = {
    "phq9": (LOINC, "44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score"),
    "phq9_item9": (LOINC, "44260-8",
                   "Thoughts that you would be better off dead, or of hurting yourself"),
    "gad7": (LOINC, "70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score"),
    "nrs_current": (LOINC, "72514-3", "Pain severity - 0-10 verbal numeric rating"),
    "nrs_average": (CS_MEASURE, "nrs_average", "NRS average pain (0-10)"),
    "nrs_worst": (CS_MEASURE, "nrs_worst", "NRS worst pain (0-10)"),
    "dn4": (CS_MEASURE, "dn4", "DN4 neuropathic pain questionnaire score"),
    "lanss": (CS_MEASURE, "lanss", "LANSS pain scale score"),
    "paindetect": (CS_MEASURE, "paindetect", "painDETECT questionnaire score"),
    "bpi_severity": (CS_MEASURE, "bpi_severity", "Brief Pain Inventory severity"),
    "bpi_interference": (CS_MEASURE, "bpi_interference", "Brief Pain Inventory interference"),
    "pseq": (CS_MEASURE, "pseq", "Pain Self-Efficacy Questionnaire score"),
}

# Appointment events -> Appointment.status (and whether an Encounter exists).
APPOINTMENT_STATUS = {
    "appointment.booked": "booked", "appointment.rescheduled": "booked",
    "appointment.cancelled": "cancelled", "appointment.checked_in": "arrived",
    "appointment.completed": "fulfilled", "appointment.no_show": "noshow",
}

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def fhir_id(native: str) -> str:
    """A FHIR id for one of our ids: the id itself where FHIR allows it, otherwise a
    stable digest (FHIR ids are [A-Za-z0-9-.]{1,64})."""
    if _ID.match(native):
        return native
    return "pc-" + hashlib.sha256(native.encode()).hexdigest()[:40]


def instant(at: datetime | str) -> str:
    """An instant as FHIR wants it: with seconds and a zone."""
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.isoformat(timespec="seconds")


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _discipline(discipline: str) -> dict[str, Any]:
    return _concept(CS_DISCIPLINE, discipline, DISCIPLINE_DISPLAY.get(discipline, discipline))


def ref(resource_type: str, native_id: str, display: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"reference": f"{resource_type}/{fhir_id(native_id)}"}
    if display:
        out["display"] = display
    return out


def condition_concept(condition: str) -> dict[str, Any]:
    display = CONDITION_DISPLAY.get(condition, condition)
    codings = [{"system": CS_CONDITION, "code": condition, "display": display}]
    if condition in CONDITION_SNOMED:
        codings.insert(0, {"system": SNOMED, "code": CONDITION_SNOMED[condition]})
    return {"coding": codings, "text": display}


# ------------------------------------------------------------------ outbound builders

def patient(contact: dict[str, Any], identifiers: list[dict[str, str]]) -> dict[str, Any]:
    """Patient from referral.received's contact (what our events carry about a person)."""
    out: dict[str, Any] = {"resourceType": "Patient", "id": fhir_id(contact["patient_id"])}
    if identifiers:
        out["identifier"] = [{"system": i["system"], "value": i["value"]} for i in identifiers]
    out["name"] = [{"text": contact["name"]}]
    telecom = []
    if contact.get("phone"):
        telecom.append({"system": "phone", "value": contact["phone"]})
    if contact.get("email"):
        telecom.append({"system": "email", "value": contact["email"]})
    if telecom:
        out["telecom"] = telecom
    out["birthDate"] = str(contact["date_of_birth"])
    if contact.get("language"):
        out["communication"] = [{"language": {"coding": [
            {"system": "urn:ietf:bcp:47", "code": contact["language"]}]}, "preferred": True}]
    return out


def service_request(referral: dict[str, Any], identifiers: list[dict[str, str]]
                    ) -> dict[str, Any]:
    """The referral as the clinic received it."""
    status = referral.get("status", "received")
    out: dict[str, Any] = {"resourceType": "ServiceRequest", "id": fhir_id(referral["id"])}
    if identifiers:
        out["identifier"] = [{"system": i["system"], "value": i["value"]} for i in identifiers]
    out.update({
        "status": REFERRAL_STATUS_MAP[status][1], "intent": "order",
        "category": [{"text": "Referral to the neuropathic pain clinic"}],
        "code": {"text": "Multidisciplinary neuropathic pain assessment and care"},
    })
    priority = referral.get("priority") or referral.get("urgency_requested")
    if priority:
        out["priority"] = PRIORITY_TO_FHIR[priority]
    out["subject"] = ref("Patient", referral["patient_id"])
    out["authoredOn"] = instant(referral["received_at"])
    requester = referral.get("referrer") or {}
    if requester.get("name"):
        org = requester.get("organisation")
        out["requester"] = {"display": f"{requester['name']} ({org})" if org
                            else requester["name"]}
    out["reasonCode"] = [condition_concept(referral.get("condition", "other"))]
    return out


def task(referral: dict[str, Any], identifiers: list[dict[str, str]]) -> dict[str, Any]:
    """The Task that tracks the referral through the clinic's workflow."""
    status = referral.get("status", "received")
    authored = instant(referral["received_at"])
    modified = instant(referral.get("updated_at") or referral["received_at"])
    out: dict[str, Any] = {"resourceType": "Task", "id": fhir_id(referral["id"])}
    if identifiers:
        out["identifier"] = [{"system": i["system"], "value": i["value"]} for i in identifiers]
    out.update({
        "basedOn": [ref("ServiceRequest", referral["id"])],
        "status": REFERRAL_STATUS_MAP[status][0],
        "businessStatus": _concept(CS_REFERRAL_STATUS, status,
                                   REFERRAL_STATUS_DISPLAY[status]),
        "intent": "order",
    })
    if referral.get("priority"):
        out["priority"] = PRIORITY_TO_FHIR[referral["priority"]]
    out.update({
        "code": {"coding": [{"system": TASK_CODE, "code": "fulfill",
                             "display": "Fulfill the focal request"}]},
        "focus": ref("ServiceRequest", referral["id"]),
        **({"for": ref("Patient", referral["patient_id"])} if referral.get("patient_id")
           else {}),
        "authoredOn": authored,
        "lastModified": max(authored, modified, key=lambda s: datetime.fromisoformat(s)),
    })
    if referral.get("due_by"):
        out["restriction"] = {"period": {"end": str(referral["due_by"])}}
    return out


def appointment(visit: dict[str, Any], status: str) -> dict[str, Any]:
    """One visit: its status, who takes part, and the discipline as serviceType."""
    participants = [
        {"actor": ref("Patient", visit["patient_id"]), "required": "required",
         "status": "accepted"},
        {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                          "v3-ParticipationType", "code": "PPRF",
                               "display": "primary performer"}]}],
         "actor": ref("Practitioner", visit["provider_id"], visit.get("provider_name") or None),
         "required": "required", "status": "accepted"},
    ]
    if visit.get("room_id"):
        participants.append({"actor": ref("Location", visit["room_id"],
                                          visit.get("room_name") or None),
                             "required": "required", "status": "accepted"})
    out: dict[str, Any] = {"resourceType": "Appointment", "id": fhir_id(visit["appointment_id"]),
                           "status": status,
                           "serviceType": [_discipline(visit["discipline"])]}
    if visit.get("referral_id"):
        out["basedOn"] = [ref("ServiceRequest", visit["referral_id"])]
    out.update({"start": instant(visit["start"]), "end": instant(visit["end"]),
                "participant": participants})
    return out


def encounter(visit: dict[str, Any]) -> dict[str, Any]:
    """A completed visit."""
    out: dict[str, Any] = {
        "resourceType": "Encounter", "id": fhir_id(visit["appointment_id"]),
        "status": "finished",
        "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
        "serviceType": _discipline(visit["discipline"]),
        "subject": ref("Patient", visit["patient_id"]),
    }
    if visit.get("referral_id"):
        out["basedOn"] = [ref("ServiceRequest", visit["referral_id"])]
    out.update({
        "participant": [{"individual": ref("Practitioner", visit["provider_id"],
                                           visit.get("provider_name") or None)}],
        "appointment": [ref("Appointment", visit["appointment_id"])],
        "period": {"start": instant(visit["start"]), "end": instant(visit["end"])},
    })
    return out


def observation_id(note_id: str, measure: str) -> str:
    return fhir_id(f"{note_id}.{measure.replace('_', '-')}")


def observation(note: dict[str, Any], measure: str, value: float) -> dict[str, Any]:
    """One measure recorded in a signed note."""
    system, code, display = MEASURE_CODES[measure]
    out: dict[str, Any] = {
        "resourceType": "Observation", "id": observation_id(note["note_id"], measure),
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey",
                                  "display": "Survey"}]}],
        "code": _concept(system, code, display),
        "subject": ref("Patient", note["patient_id"]),
        "effectiveDateTime": instant(note["signed_at"]),
        "issued": instant(note["signed_at"]),
        "performer": [ref("Practitioner", note["author_id"])],
    }
    if float(value).is_integer():
        out["valueInteger"] = int(value)
    else:
        out["valueQuantity"] = {"value": value, "unit": "score",
                                "system": "http://unitsofmeasure.org", "code": "{score}"}
    return out


# PHQ-9 as LOINC publishes it: the panel 44249-1, its nine questions and its answer list
# (LL358-3). The item's linkId is its LOINC code.
PHQ9_PANEL = ("44249-1", "PHQ-9 quick depression assessment panel")
PHQ9_QUESTIONS = (
    ("44250-9", "Little interest or pleasure in doing things"),
    ("44255-8", "Feeling down, depressed, or hopeless"),
    ("44259-0", "Trouble falling or staying asleep, or sleeping too much"),
    ("44254-1", "Feeling tired or having little energy"),
    ("44251-7", "Poor appetite or overeating"),
    ("44258-2", "Feeling bad about yourself-or that you are a failure or have let "
                "yourself or your family down"),
    ("44252-5", "Trouble concentrating on things, such as reading the newspaper or "
                "watching television"),
    ("44253-3", "Moving or speaking so slowly that other people could have noticed. Or "
                "the opposite-being so fidgety or restless that you have been moving "
                "around a lot more than usual"),
    ("44260-8", "Thoughts that you would be better off dead, or of hurting yourself in "
                "some way"),
)
PHQ9_ANSWERS = (("LA6568-5", "Not at all"), ("LA6569-3", "Several days"),
                ("LA6570-1", "More than half the days"), ("LA6571-9", "Nearly every day"))
QUESTIONNAIRES = {"phq9": ("http://loinc.org/q/44249-1", PHQ9_QUESTIONS, PHQ9_ANSWERS)}


def questionnaire_response_id(note_id: str, instrument: str) -> str:
    return fhir_id(f"{note_id}.{instrument}-answers")


def questionnaire_response(note: dict[str, Any], instrument: str,
                           scores: list[int]) -> dict[str, Any]:
    """The item-level answers of one instrument in a signed note, LOINC-coded: each item
    its question's code as linkId and the answer as LOINC's answer code."""
    canonical, questions, answers = QUESTIONNAIRES[instrument]
    items = []
    for (code, text), score in zip(questions, scores, strict=True):
        answer_code, answer_text = answers[score]
        items.append({"linkId": code, "text": text, "answer": [{"valueCoding": {
            "system": LOINC, "code": answer_code, "display": answer_text}}]})
    return {"resourceType": "QuestionnaireResponse",
            "id": questionnaire_response_id(note["note_id"], instrument),
            "questionnaire": canonical, "status": "completed",
            "subject": ref("Patient", note["patient_id"]),
            "authored": instant(note["signed_at"]),
            "author": ref("Practitioner", note["author_id"]),
            "item": items}


def practitioner(provider: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Practitioner", "id": fhir_id(provider["provider_id"]),
                           "active": bool(provider.get("active", True)),
                           "name": [{"text": provider["name"]}]}
    telecom = [{"system": s, "value": provider[k], "use": "work"}
               for s, k in (("phone", "phone"), ("email", "email")) if provider.get(k)]
    if telecom:
        out["telecom"] = telecom
    return out


def schedule(provider: dict[str, Any]) -> dict[str, Any]:
    """One Schedule per provider: their diary."""
    return {"resourceType": "Schedule", "id": fhir_id(provider["provider_id"]),
            "active": bool(provider.get("active", True)),
            "serviceType": [_discipline(provider["discipline"])],
            "actor": [ref("Practitioner", provider["provider_id"], provider["name"])]}


def busy_slot(visit: dict[str, Any]) -> dict[str, Any]:
    """The time a booked visit takes in its provider's Schedule."""
    return {"resourceType": "Slot", "id": fhir_id(visit["appointment_id"]),
            "serviceType": [_discipline(visit["discipline"])],
            "schedule": ref("Schedule", visit["provider_id"]), "status": "busy",
            "start": instant(visit["start"]), "end": instant(visit["end"])}


def care_team(referral_id: str, patient_id: str, members: dict[str, dict[str, str]],
              active: bool) -> dict[str, Any]:
    """The people caring for one referral: the providers of its visits."""
    out: dict[str, Any] = {"resourceType": "CareTeam", "id": fhir_id(referral_id),
                           "status": "active" if active else "inactive",
                           "name": "Neuropathic pain care team",
                           "subject": ref("Patient", patient_id)}
    if members:
        out["participant"] = [
            {"role": [_discipline(m["discipline"])],
             "member": ref("Practitioner", pid, m.get("name") or None)}
            for pid, m in sorted(members.items())]
    return out


# ---------------------------------------------------------------------------- inbound

MAX_ENTRIES = 50
CONDITION_DETAIL_MAX = 500


class TooLarge(InvalidInput):
    """A Bundle bigger than the gateway takes in one go (413)."""

    status = 413
    title = "Payload too large"


@dataclass(frozen=True)
class Intake:
    """A FHIR referral turned into the referrals API's intake body, with the identifiers
    that make it idempotent and that we show back on Patient, ServiceRequest and Task."""

    body: dict[str, Any]
    idempotency_key: str | None
    bundle_identifier: dict[str, str] | None
    request_identifiers: list[dict[str, str]]
    patient_identifiers: list[dict[str, str]]


def _fail(path: str, message: str) -> InvalidInput:
    return InvalidInput(f"{path}: {message}", field=path)


def _list(value: Any, path: str) -> list[Any]:
    """An optional array element: absent is empty, anything but an array is refused."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(path, "must be an array")
    return value


def _dict(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "must be a JSON object")
    return value


def _text(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(path, "must be a string")
    return value


def _identifier(value: Any, path: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("system"), str) \
            or not isinstance(value.get("value"), str) or not value["system"] \
            or not value["value"]:
        raise _fail(path, "an identifier needs both system and value")
    if len(value["system"]) > 200 or len(value["value"]) > 200:
        raise _fail(path, "at most 200 characters each for system and value")
    return {"system": value["system"], "value": value["value"]}


def _identifiers(resource: dict[str, Any], path: str) -> list[dict[str, str]]:
    raw = resource.get("identifier", [])
    if not isinstance(raw, list):
        raise _fail(f"{path}.identifier", "must be an array")
    return [i for n, x in enumerate(raw) if (i := _identifier(x, f"{path}.identifier[{n}]"))]


def idempotency_key(identifier: dict[str, str]) -> str:
    digest = hashlib.sha256(f"{identifier['system']}|{identifier['value']}".encode())
    return "fhir-" + digest.hexdigest()[:48]


def patient_id_for(identifier: dict[str, str]) -> str:
    """Our patient id for a FHIR patient identifier: the same system and value always
    give the same patient (the identity work may later match across systems)."""
    return "pt-" + hashlib.sha256(
        f"{identifier['system']}|{identifier['value']}".encode()).hexdigest()[:32]


class _Resources:
    """The resources of one inbound request, found by reference (fullUrl, Type/id or
    #contained), each with the FHIRPath that names it in errors."""

    def __init__(self) -> None:
        self.by_ref: dict[str, tuple[dict[str, Any], str]] = {}

    def add(self, resource: dict[str, Any], path: str, full_url: str | None = None) -> None:
        if full_url:
            self.by_ref[full_url] = (resource, path)
        if isinstance(resource.get("id"), str):
            self.by_ref[f"{resource['resourceType']}/{resource['id']}"] = (resource, path)

    def resolve(self, reference: Any, path: str, *types: str) -> tuple[dict[str, Any], str]:
        if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
            raise _fail(path, f"a reference to {' or '.join(types)} is required")
        target = self.by_ref.get(reference["reference"])
        if target is None:
            raise _fail(path, f"reference {reference['reference']!r} does not resolve "
                              "to a resource in this request")
        if target[0].get("resourceType") not in types:
            raise _fail(path, f"must refer to {' or '.join(types)}, "
                              f"not {target[0].get('resourceType')}")
        return target


def _resource(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "must be a JSON object")
    if not isinstance(value.get("resourceType"), str):
        raise _fail(f"{path}.resourceType", "is required")
    return value


def _contained(resource: dict[str, Any], path: str, found: _Resources) -> None:
    contained = resource.get("contained", [])
    if not isinstance(contained, list):
        raise _fail(f"{path}.contained", "must be an array")
    for n, c in enumerate(contained):
        cpath = f"{path}.contained[{n}]"
        c = _resource(c, cpath)
        if not isinstance(c.get("id"), str):
            raise _fail(f"{cpath}.id", "a contained resource needs an id")
        found.by_ref["#" + c["id"]] = (c, cpath)


ACCEPTED_TYPES = ("Patient", "ServiceRequest", "Condition", "DocumentReference", "Binary",
                  "Practitioner", "PractitionerRole", "Organization")


def from_bundle(bundle: Any, *, today: date) -> Intake:
    """A transaction Bundle -> the intake. All checks happen here, before anything is
    sent on, so a bad Bundle creates nothing."""
    bundle = _resource(bundle, "Bundle")
    if bundle["resourceType"] != "Bundle":
        raise _fail("Bundle.resourceType", f"expected Bundle, got {bundle['resourceType']!r}")
    if bundle.get("type") != "transaction":
        raise _fail("Bundle.type", "must be 'transaction'")
    bundle_id = _identifier(bundle.get("identifier"), "Bundle.identifier")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise _fail("Bundle.entry", "a transaction needs at least one entry")
    if len(entries) > MAX_ENTRIES:
        raise TooLarge(f"Bundle.entry: at most {MAX_ENTRIES} entries, got {len(entries)}",
                       field="Bundle.entry")
    found = _Resources()
    requests: list[tuple[dict[str, Any], str]] = []
    for n, entry in enumerate(entries):
        path = f"Bundle.entry[{n}]"
        if not isinstance(entry, dict):
            raise _fail(path, "must be a JSON object")
        resource = _resource(entry.get("resource"), f"{path}.resource")
        rtype = resource["resourceType"]
        rpath = f"{path}.resource"
        if rtype not in ACCEPTED_TYPES:
            raise _fail(f"{rpath}.resourceType",
                        f"{rtype!r} is not taken in a referral; expected one of "
                        + ", ".join(ACCEPTED_TYPES))
        req = entry.get("request")
        if not isinstance(req, dict) or req.get("method") not in ("POST", "PUT"):
            raise _fail(f"{path}.request.method", "a transaction entry must be POST or PUT")
        if not isinstance(req.get("url"), str) or not req["url"]:
            raise _fail(f"{path}.request.url", "is required")
        full_url = entry.get("fullUrl")
        if full_url is not None and not isinstance(full_url, str):
            raise _fail(f"{path}.fullUrl", "must be a string")
        found.add(resource, rpath, full_url)
        _contained(resource, rpath, found)
        if rtype == "ServiceRequest":
            requests.append((resource, rpath))
    if len(requests) != 1:
        raise _fail("Bundle.entry", "a referral Bundle holds exactly one ServiceRequest, "
                                    f"found {len(requests)}")
    return _intake(*requests[0], found, bundle_id, today=today)


def from_service_request(resource: Any, *, today: date) -> Intake:
    """A bare ServiceRequest whose Patient, Condition and requester are contained."""
    resource = _resource(resource, "ServiceRequest")
    if resource["resourceType"] != "ServiceRequest":
        raise _fail("ServiceRequest.resourceType",
                    f"expected ServiceRequest, got {resource['resourceType']!r}")
    found = _Resources()
    _contained(resource, "ServiceRequest", found)
    return _intake(resource, "ServiceRequest", found, None, today=today)


def _human_name(resource: dict[str, Any], path: str) -> str:
    names = resource.get("name")
    if isinstance(names, str) and names.strip():  # Organization.name
        return names.strip()
    if not isinstance(names, list) or not names or not isinstance(names[0], dict):
        raise _fail(f"{path}.name", "is required")
    first = names[0]
    text = first.get("text")
    if isinstance(text, str) and text.strip():
        return text.strip()
    given = first.get("given") or []
    family = first.get("family") or ""
    if not isinstance(given, list) or not isinstance(family, str):
        raise _fail(f"{path}.name[0]", "given must be an array and family a string")
    whole = " ".join([*(g for g in given if isinstance(g, str)), family]).strip()
    if not whole:
        raise _fail(f"{path}.name[0]", "needs text, or given and family names")
    return whole


def _patient(resource: dict[str, Any], path: str) -> tuple[dict[str, Any], list]:
    identifiers = _identifiers(resource, path)
    if not identifiers:
        raise _fail(f"{path}.identifier", "a patient needs an identifier with system "
                                         "and value (e.g. the NHS number)")
    birth = resource.get("birthDate")
    if not isinstance(birth, str) or not re.match(r"^\d{4}-\d{2}-\d{2}$", birth):
        raise _fail(f"{path}.birthDate", "a full date (YYYY-MM-DD) is required")
    try:
        dob = date.fromisoformat(birth)
    except ValueError:
        raise _fail(f"{path}.birthDate", "is not a real date") from None
    contact: dict[str, Any] = {}
    for n, t in enumerate(_list(resource.get("telecom"), f"{path}.telecom")):
        t = _dict(t, f"{path}.telecom[{n}]")
        value = _text(t.get("value"), f"{path}.telecom[{n}].value")
        if t.get("system") == "email" and "email" not in contact:
            contact["email"] = value
        if t.get("system") in ("phone", "sms") and "phone" not in contact:
            contact["phone"] = value
    out: dict[str, Any] = {"id": patient_id_for(identifiers[0]),
                           "name": _human_name(resource, path), "date_of_birth": dob.isoformat(),
                           "contact": contact,
                           "preferred_channel": "email" if contact.get("email") else "sms"}
    for n, comm in enumerate(_list(resource.get("communication"), f"{path}.communication")):
        cpath = f"{path}.communication[{n}].language"
        language = _dict(_dict(comm, f"{path}.communication[{n}]").get("language"), cpath)
        codings = _list(language.get("coding"), f"{cpath}.coding")
        code = _dict(codings[0], f"{cpath}.coding[0]").get("code") if codings else None
        if isinstance(code, str) and code:
            out["language"] = code[:10]
            break
    return out, identifiers


def condition_from_codes(code: Any, path: str) -> tuple[str, str | None]:
    """Condition.code -> (our condition, detail). SNOMED CT and ICD-10 codes we know map
    to our conditions; anything else is 'other', with its text kept as the detail."""
    if not isinstance(code, dict):
        raise _fail(path, "a coded condition (SNOMED CT or ICD-10) or text is required")
    codings = _list(code.get("coding"), f"{path}.coding")
    detail = _text(code.get("text"), f"{path}.text")
    for n, c in enumerate(codings):
        if not isinstance(c, dict) or not isinstance(c.get("code"), str) or not c["code"]:
            raise _fail(f"{path}.coding[{n}].code", "is required")
        system = c.get("system")
        if system == SNOMED:
            if not c["code"].isdigit():
                raise _fail(f"{path}.coding[{n}].code", f"{c['code']!r} is not a SNOMED CT "
                                                         "concept id")
            if c["code"] in SNOMED_CONDITIONS:
                return SNOMED_CONDITIONS[c["code"]], detail
        elif system in ICD10:
            if not re.match(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$", c["code"]):
                raise _fail(f"{path}.coding[{n}].code", f"{c['code']!r} is not an ICD-10 code")
            for prefix in sorted(ICD10_CONDITIONS, key=len, reverse=True):
                if c["code"].startswith(prefix):
                    return ICD10_CONDITIONS[prefix], detail
        elif system == CS_CONDITION:
            if c["code"] not in CONDITION_DISPLAY:
                raise _fail(f"{path}.coding[{n}].code", f"{c['code']!r} is not in {system}")
            return c["code"], detail
        detail = detail or _text(c.get("display"), f"{path}.coding[{n}].display")
    if not codings and not detail:
        raise _fail(path, "a coded condition (SNOMED CT or ICD-10) or text is required")
    return "other", (detail or "coded condition not mapped")[:CONDITION_DETAIL_MAX]


def _pain_duration(condition: dict[str, Any], path: str, today: date) -> dict[str, Any]:
    onset = condition.get("onsetDateTime")
    if onset is None and isinstance(condition.get("onsetPeriod"), dict):
        onset = condition["onsetPeriod"].get("start")
    if not isinstance(onset, str) or not re.match(r"^\d{4}(-\d{2}(-\d{2})?)?", onset):
        raise _fail(f"{path}.onset[x]", "onsetDateTime (or onsetPeriod.start) is required: "
                                        "the clinic needs to know how long the pain has "
                                        "lasted")
    parts = [*onset[:10].split("-"), "01", "01"][:3]
    try:
        start = date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        raise _fail(f"{path}.onset[x]", "is not a real date") from None
    days = (today - start).days
    if days < 0:
        raise _fail(f"{path}.onset[x]", "is in the future")
    if days < 14:
        return {"value": days, "unit": "days"}
    if days < 90:
        return {"value": days // 7, "unit": "weeks"}
    if days < 730:
        return {"value": days // 30, "unit": "months"}
    return {"value": min(days // 365, 1200), "unit": "years"}


def _requester(sr: dict[str, Any], path: str, found: _Resources) -> dict[str, Any]:
    res, rpath = found.resolve(sr.get("requester"), f"{path}.requester",
                               "Practitioner", "PractitionerRole", "Organization")
    if res["resourceType"] == "Organization":
        name = _human_name(res, rpath)
        return {"name": name, "organisation": name}
    if res["resourceType"] == "PractitionerRole":
        person, ppath = found.resolve(res.get("practitioner"), f"{rpath}.practitioner",
                                      "Practitioner")
        org, opath = found.resolve(res.get("organization"), f"{rpath}.organization",
                                   "Organization")
        return {"name": _human_name(person, ppath), "organisation": _human_name(org, opath)}
    orgs = [r for r, _ in found.by_ref.values() if r.get("resourceType") == "Organization"]
    if not orgs:
        raise _fail(f"{path}.requester", "the requesting practitioner's Organization is "
                                         "needed (refer to a PractitionerRole, or include "
                                         "the Organization)")
    return {"name": _human_name(res, rpath), "organisation": _human_name(orgs[0], "Organization")}


def _attachments(sr: dict[str, Any], path: str, found: _Resources) -> list[dict[str, Any]]:
    """DocumentReference and Binary attachments: we keep what was sent (name, type,
    size, where it is), not the file."""
    out: list[dict[str, Any]] = []
    infos = sr.get("supportingInfo") or []
    if not isinstance(infos, list):
        raise _fail(f"{path}.supportingInfo", "must be an array")
    seen: set[int] = set()
    for n, info in enumerate(infos):
        res, rpath = found.resolve(info, f"{path}.supportingInfo[{n}]",
                                   "DocumentReference", "Binary", "Condition")
        if res["resourceType"] == "Condition" or id(res) in seen:
            continue
        seen.add(id(res))
        if res["resourceType"] == "Binary":
            out.append(_binary(res, rpath, None))
            continue
        contents = res.get("content")
        if not isinstance(contents, list) or not contents:
            raise _fail(f"{rpath}.content", "is required")
        for m, content in enumerate(contents):
            att = _dict(content, f"{rpath}.content[{m}]").get("attachment")
            apath = f"{rpath}.content[{m}].attachment"
            if not isinstance(att, dict):
                raise _fail(apath, "is required")
            url = _text(att.get("url"), f"{apath}.url")
            if isinstance(url, str) and url in found.by_ref:
                binary, bpath = found.resolve({"reference": url}, f"{apath}.url", "Binary")
                out.append(_binary(binary, bpath, att.get("title")
                                   or res.get("description")))
                continue
            if not isinstance(att.get("contentType"), str):
                raise _fail(f"{apath}.contentType", "is required")
            size = att.get("size", 0)
            if not isinstance(size, int) or size < 0:
                raise _fail(f"{apath}.size", "must be a non-negative integer")
            out.append({"filename": str(att.get("title") or res.get("description")
                                        or f"document-{n + 1}")[:255],
                        "content_type": att["contentType"], "size_bytes": size,
                        "description": res.get("description") if isinstance(
                            res.get("description"), str) else None,
                        "reference": url if isinstance(url, str) else None})
    return out


def _binary(res: dict[str, Any], path: str, title: str | None) -> dict[str, Any]:
    import base64
    import binascii

    if not isinstance(res.get("contentType"), str) or not res["contentType"]:
        raise _fail(f"{path}.contentType", "is required")
    data = res.get("data", "")
    try:
        size = len(base64.b64decode(data, validate=True)) if data else 0
    except (binascii.Error, TypeError, ValueError):
        raise _fail(f"{path}.data", "is not base64") from None
    return {"filename": str(title or f"binary-{res.get('id', 'attachment')}")[:255],
            "content_type": res["contentType"], "size_bytes": size,
            "description": None,
            "reference": f"Binary/{res['id']}" if isinstance(res.get("id"), str) else None}


def _intake(sr: dict[str, Any], path: str, found: _Resources,
            bundle_id: dict[str, str] | None, *, today: date) -> Intake:
    if sr.get("intent") not in ("order", "original-order", "proposal", "plan"):
        raise _fail(f"{path}.intent", "is required (order)")
    if sr.get("status") not in ("active", "draft"):
        raise _fail(f"{path}.status", "a new referral is 'active'")
    request_ids = _identifiers(sr, path)
    patient_res, ppath = found.resolve(sr.get("subject"), f"{path}.subject", "Patient")
    patient_body, patient_ids = _patient(patient_res, ppath)
    reasons = _list(sr.get("reasonReference"), f"{path}.reasonReference")
    if reasons:
        cond, cpath = found.resolve(reasons[0], f"{path}.reasonReference[0]", "Condition")
        subject, _ = found.resolve(cond.get("subject"), f"{cpath}.subject", "Patient")
        if subject is not patient_res:
            raise _fail(f"{cpath}.subject", "must be the ServiceRequest's patient")
        condition, detail = condition_from_codes(cond.get("code"), f"{cpath}.code")
        duration = _pain_duration(cond, cpath, today)
    else:
        raise _fail(f"{path}.reasonReference", "a Condition (coded, with its onset) is "
                                               "required")
    notes = [n.get("text") for n in _list(sr.get("note"), f"{path}.note")
             if isinstance(n, dict) and isinstance(n.get("text"), str) and n["text"].strip()]
    reason = "\n\n".join(notes) or (detail or CONDITION_DISPLAY[condition])
    body: dict[str, Any] = {
        "patient": patient_body, "referrer": _requester(sr, path, found),
        "condition": condition, "pain_duration": duration, "reason": reason[:4000],
        "attachments": _attachments(sr, path, found),
    }
    if detail:
        body["condition_detail"] = detail[:CONDITION_DETAIL_MAX]
    if sr.get("priority") is not None:
        if not isinstance(sr["priority"], str) or sr["priority"] not in PRIORITY_FROM_FHIR:
            raise _fail(f"{path}.priority", f"{sr['priority']!r} is not one of routine, "
                                            "urgent, asap, stat")
        body["urgency_requested"] = PRIORITY_FROM_FHIR[sr["priority"]]
    key_id = request_ids[0] if request_ids else bundle_id
    return Intake(body=body, idempotency_key=idempotency_key(key_id) if key_id else None,
                  bundle_identifier=bundle_id, request_identifiers=request_ids,
                  patient_identifiers=patient_ids)


# Where the referrals API names one of its fields, the FHIR element it came from.
INTAKE_FIELDS = {
    "patient.id": "Patient.identifier", "patient.name": "Patient.name",
    "patient.date_of_birth": "Patient.birthDate", "patient.contact": "Patient.telecom",
    "patient.preferred_channel": "Patient.telecom", "patient.language":
        "Patient.communication.language",
    "referrer": "ServiceRequest.requester", "condition": "Condition.code",
    "condition_detail": "Condition.code.text", "pain_duration": "Condition.onset[x]",
    "reason": "ServiceRequest.note", "attachments": "DocumentReference.content.attachment",
    "urgency_requested": "ServiceRequest.priority", "Idempotency-Key": "Bundle.identifier",
}


def fhir_path(field: str) -> str:
    """The FHIR element behind one of the referrals API's field names."""
    for ours in sorted(INTAKE_FIELDS, key=len, reverse=True):
        if field == ours or field.startswith(ours + "."):
            return INTAKE_FIELDS[ours]
    return field
