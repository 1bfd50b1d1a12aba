"""The gateway's pure rules: the status table, codes to conditions, FHIR input to the
intake body, search dates, ids."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.fhir import mapping as fm
from services.fhir.api import BadSearch, date_bounds
from services.fhir.app import operation_outcome
from shared.errors import InvalidInput
from shared.events.vocabulary import REFERRAL_STATUSES
from tests.support.fhir import bare_service_request, referral_bundle

TODAY = date(2026, 12, 1)
TASK_STATUSES = {"draft", "requested", "received", "accepted", "rejected", "ready",
                 "cancelled", "in-progress", "on-hold", "failed", "completed",
                 "entered-in-error"}
REQUEST_STATUSES = {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error",
                    "unknown"}


def test_every_referral_status_has_one_task_and_request_status():
    assert set(fm.REFERRAL_STATUS_MAP) == set(REFERRAL_STATUSES)
    assert set(fm.REFERRAL_STATUS_DISPLAY) == set(REFERRAL_STATUSES)
    for task_status, request_status in fm.REFERRAL_STATUS_MAP.values():
        assert task_status in TASK_STATUSES and request_status in REQUEST_STATUSES


def test_priorities_go_out_and_come_back_the_same():
    for ours, theirs in fm.PRIORITY_TO_FHIR.items():
        assert fm.PRIORITY_FROM_FHIR[theirs] == ours


@pytest.mark.parametrize(("system", "code", "ours"), [
    (fm.SNOMED, "230572002", "diabetic_neuropathy"),
    (fm.SNOMED, "31681005", "trigeminal_neuralgia"),
    ("http://hl7.org/fhir/sid/icd-10", "E11.4", "diabetic_neuropathy"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "E11.42", "diabetic_neuropathy"),
    ("http://hl7.org/fhir/sid/icd-10", "G35", "multiple_sclerosis"),
    ("http://hl7.org/fhir/sid/icd-10", "G50.0", "trigeminal_neuralgia"),
    ("http://hl7.org/fhir/sid/icd-10", "G50.1", "other"),
    (fm.SNOMED, "22298006", "other"),
    (fm.CS_CONDITION, "crps", "crps"),
])
def test_coded_conditions_map_to_ours(system, code, ours):
    condition, detail = fm.condition_from_codes(
        {"coding": [{"system": system, "code": code, "display": "as sent"}]}, "Condition.code")
    assert condition == ours
    assert (detail == "as sent") == (ours == "other")


@pytest.mark.parametrize(("system", "code"), [
    (fm.SNOMED, "not-digits"), ("http://hl7.org/fhir/sid/icd-10", "E11-4"),
    (fm.CS_CONDITION, "gout")])
def test_malformed_codes_are_refused_naming_the_coding(system, code):
    with pytest.raises(InvalidInput) as caught:
        fm.condition_from_codes({"coding": [{"system": system, "code": code}]}, "X.code")
    assert list(caught.value.errors) == ["X.code.coding[0].code"]


def test_a_bundle_becomes_the_referrals_intake_body():
    intake = fm.from_bundle(referral_bundle(), today=TODAY)
    body = intake.body
    assert body["patient"]["id"] == fm.patient_id_for(intake.patient_identifiers[0])
    assert body["patient"]["name"] == "Ann Whitfield"
    assert body["patient"]["contact"] == {"email": "ann.whitfield@example.org",
                                          "phone": "+44 7700 900123"}
    assert body["referrer"] == {"name": "Dr Priya Patel", "organisation": "Elm Street Surgery"}
    assert body["condition"] == "diabetic_neuropathy"
    assert body["pain_duration"] == {"value": 9, "unit": "months"}  # since 2026-03-01
    assert body["urgency_requested"] == "soon"
    assert body["attachments"][0]["content_type"] == "application/pdf"
    assert intake.idempotency_key == fm.idempotency_key(intake.request_identifiers[0])
    bare = fm.from_service_request(bare_service_request(), today=TODAY)
    assert bare.body["referrer"] == body["referrer"]
    assert bare.body["attachments"][0]["size_bytes"] == 48211


def test_pain_duration_follows_the_onset():
    assert fm._pain_duration({"onsetDateTime": "2026-11-25"}, "C", TODAY) == {
        "value": 6, "unit": "days"}
    assert fm._pain_duration({"onsetPeriod": {"start": "2026-10-01"}}, "C", TODAY) == {
        "value": 8, "unit": "weeks"}
    assert fm._pain_duration({"onsetDateTime": "2019"}, "C", TODAY) == {
        "value": 7, "unit": "years"}
    with pytest.raises(InvalidInput):
        fm._pain_duration({"onsetDateTime": "2027-01-01"}, "C", TODAY)


def test_search_dates_stand_for_their_range():
    day = datetime(2026, 12, 7, tzinfo=UTC)
    assert date_bounds("date", "2026-12-07") == [("ge", day), ("lt", datetime(
        2026, 12, 8, tzinfo=UTC))]
    assert date_bounds("date", "gt2026-12") == [("ge", datetime(2027, 1, 1, tzinfo=UTC))]
    assert date_bounds("date", "lt2026") == [("lt", datetime(2026, 1, 1, tzinfo=UTC))]
    assert date_bounds("date", "ge2026-12-07T09:00:00Z") == [
        ("ge", datetime(2026, 12, 7, 9, tzinfo=UTC))]
    for bad in ("yesterday", "2026-13-01", "sa2026"):
        with pytest.raises(BadSearch):
            date_bounds("date", bad)


def test_our_ids_become_fhir_ids():
    assert fm.fhir_id("appt-1.2") == "appt-1.2"
    odd = fm.fhir_id("MRN 42/7")
    assert odd.startswith("pc-") and odd == fm.fhir_id("MRN 42/7") and len(odd) <= 64


def test_a_problem_becomes_an_operation_outcome_naming_each_element():
    outcome = operation_outcome({"status": 422, "detail": "bad", "errors": {
        "Patient.birthDate": ["is required"], "Condition.code": ["unknown", "twice"]}})
    assert [(i["code"], i["expression"]) for i in outcome["issue"]] == [
        ("invalid", ["Patient.birthDate"]), ("invalid", ["Condition.code"]),
        ("invalid", ["Condition.code"])]
    assert operation_outcome({"status": 503, "detail": "down"})["issue"] == [
        {"severity": "fatal", "code": "transient", "diagnostics": "down"}]


def _paths(value, path=()):  # type: ignore[no-untyped-def]
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*path, i))


def _replaced(value, path, new):  # type: ignore[no-untyped-def]
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (_replaced(v, rest, new) if k == head else v) for k, v in value.items()}
    return [(_replaced(v, rest, new) if i == head else v) for i, v in enumerate(value)]


def test_any_element_of_any_wrong_shape_is_refused_as_input_never_a_crash():
    """Every element of the Bundle, in turn, replaced by null, a number, a string, a list
    and an object: the intake either takes it or refuses it naming an element."""
    tried = 0
    for parse, sent in ((fm.from_bundle, referral_bundle()),
                        (fm.from_service_request, bare_service_request())):
        for path in _paths(sent):
            for wrong in (None, 7, True, "x", [], [1], {}, {"a": 1}):
                tried += 1
                try:
                    parse(_replaced(sent, path, wrong), today=TODAY)
                except InvalidInput as refused:
                    assert refused.errors, (path, wrong)
    assert tried > 1000
