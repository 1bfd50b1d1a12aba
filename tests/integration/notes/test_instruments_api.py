"""The instruments as published, through the API: the catalogue a form is labelled from,
PGIC and the two DN4 forms recorded and range-checked, the clinic's thresholds applied,
and a change always measured from the patient's first score whatever the filter."""

import copy

import pytest

from services.notes.app import create_app
from services.notes.measures import ScoringSettingError
from services.notes.wiring import build_runtime
from tests.integration.notes.conftest import PATIENT, PROGRESS, NotesClinic
from tests.support.clinic import bearer


def _problem(resp, field: str) -> list[str]:
    assert resp.status_code == 422, resp.get_json()
    assert resp.headers["Content-Type"] == "application/problem+json"
    problem = resp.get_json()
    assert field in problem["errors"], problem["errors"]
    return problem["errors"][field]


def test_any_signed_in_staff_reads_the_catalogue_with_the_phq9_questions(clinic):
    for who in ("pain_doc", "outsider", "scheduler", "admin"):
        assert clinic.client.get("/measures", headers=clinic.headers(who)).status_code == 200
    assert clinic.client.get("/measures").status_code == 401
    catalogue = {i["code"]: i for i in clinic.client.get(
        "/measures", headers=clinic.headers("scheduler")).get_json()}
    phq9 = catalogue["phq9"]
    assert phq9["request_field"] == "phq9.items"
    assert len(phq9["items"]) == 9 and phq9["stem"].startswith("Over the last 2 weeks")
    [self_harm] = [i for i in phq9["items"] if i["safety"]]
    assert self_harm["number"] == 9
    assert self_harm["text"] == ("Thoughts that you would be better off dead or of hurting "
                                 "yourself in some way")
    assert [a["value"] for a in phq9["answers"]] == [0, 1, 2, 3]
    assert [i["text"] for i in catalogue["gad7"]["items"]][1] == (
        "Not being able to stop or control worrying")
    scores = {s["code"]: s for i in catalogue.values() for s in i["scores"]}
    nrs = scores["nrs_average"]
    assert [(b["name"], b["lower"], b["upper"]) for b in nrs["bands"]] == [
        ("none", 0, 0), ("mild", 0, 5), ("moderate", 5, 7), ("severe", 7, 10)]
    assert nrs["bands"] == scores["bpi_severity"]["bands"], "one pain scale everywhere"
    assert "Serlin" in nrs["bands_source"]
    assert nrs["change"]["points"] == 2 and nrs["change"]["moderate_percent"] == 30
    assert scores["phq9"]["change"]["points"] == 5 and "Löwe" in scores["phq9"]["change"][
        "source"]
    assert scores["pseq"]["change"]["measurement_error"] == 11.5
    assert [f["form"] for f in catalogue["dn4"]["forms"]] == ["full", "interview"]
    assert [a["label"] for a in catalogue["pgic"]["answers"]][:2] == [
        "Very much improved", "Much improved"]
    spec = clinic.client.get("/openapi.json").get_json()
    assert "/measures" in spec["paths"]


def test_pgic_is_recorded_banded_and_charted(clinic):
    clinic.care_team()
    first = copy.deepcopy(PROGRESS)
    first["measures"] = {"pgic": 4}
    clinic.signed_note("pain_doc", first)
    later = {**copy.deepcopy(PROGRESS), "encounter_at": "2026-07-01T09:00:00+00:00",
             "measures": {"pgic": 2}}
    note = clinic.signed_note("pain_doc", later)
    [pgic] = [s for s in note["scores"] if s["code"] == "pgic"]
    assert (pgic["value"], pgic["band"]) == (2, "much_improved")
    trend = clinic.client.get(f"/patients/{PATIENT}/timeline", headers=clinic.headers(
        "pain_doc")).get_json()["trends"]["pgic"]
    assert [(p["band"], p["meaningful"]) for p in trend["points"]] == [
        ("no_change", None), ("much_improved", "meaningful_improvement")]
    assert trend["meaningful"] == "meaningful_improvement"
    for wrong in (0, 8, 2.5, "2"):
        resp = clinic.write("pain_doc", {**PROGRESS, "measures": {"pgic": wrong}})
        assert " ".join(_problem(resp, "measures.pgic"))


def test_dn4_records_the_form_used_and_checks_the_score_against_it(clinic):
    clinic.care_team()
    interview = clinic.write("pain_doc", {**PROGRESS, "measures": {"dn4": 3,
                                                                   "dn4_form": "interview"}})
    assert interview.status_code == 201, interview.get_json()
    note = interview.get_json()
    assert note["measures"] == {"dn4": 3, "dn4_form": "interview"}
    assert [(s["code"], s["label"], s["band"]) for s in note["scores"]] == [
        ("dn4_interview", "DN4-interview", "likely_neuropathic")]
    full = clinic.write("pain_doc", {**PROGRESS, "measures": {"dn4": 3}}).get_json()
    assert full["measures"] == {"dn4": 3, "dn4_form": "full"}, "the form is always recorded"
    assert [(s["code"], s["band"]) for s in full["scores"]] == [("dn4", "neuropathic_unlikely")]

    beyond = {"version": 1, "measures": {"dn4": 8, "dn4_form": "interview"}}
    for resp in (clinic.write("pain_doc", {**PROGRESS, "measures": beyond["measures"]}),
                 clinic.client.put(f"/notes/{note['id']}", json=beyond,
                                   headers=clinic.headers("pain_doc"))):
        assert _problem(resp, "measures.dn4") == ["DN4-interview must be between 0 and 7, "
                                                  "got 8"]
    _problem(clinic.write("pain_doc", {**PROGRESS, "measures": {"dn4": 5,
                                                               "dn4_form": "short"}}),
             "measures.dn4_form")
    _problem(clinic.write("pain_doc", {**PROGRESS, "measures": {"dn4_form": "interview"}}),
             "measures.dn4")
    read = clinic.client.get(f"/notes/{note['id']}", headers=clinic.headers("pain_doc"))
    assert read.get_json()["version"] == 1 and read.get_json()["measures"]["dn4"] == 3


def _visit(day: str, nrs: int, phq9: int) -> dict:
    body = copy.deepcopy(PROGRESS)
    body["encounter_at"] = f"2026-{day}T09:00:00+00:00"
    body["measures"] = {"nrs": {"average": nrs}, "phq9": {"items": [phq9] + [0] * 8}}
    return body


def test_a_change_is_against_the_first_score_whatever_the_timeline_shows(clinic):
    clinic.care_team()
    first = clinic.signed_note("pain_doc", _visit("01-05", 8, 3))
    psych_body = _visit("02-01", 5, 1)
    psych_body["treatment"] = {"psychology": {"cbt_module": "pacing"}}
    psych = clinic.signed_note("psych", psych_body)
    clinic.signed_note("pain_doc", _visit("03-01", 4, 0))

    def trend(**query) -> dict:
        got = clinic.client.get(f"/patients/{PATIENT}/timeline", query_string=query,
                                headers=clinic.headers("pain_doc"))
        assert got.status_code == 200
        return got.get_json()["trends"]["nrs_average"]

    everything = trend()
    [psych_point] = [p for p in everything["points"] if p["note_id"] == psych["id"]]
    assert (psych_point["change"], psych_point["meaningful"]) == (-3, "moderate_improvement")
    for query in ({"discipline": "psychology"}, {"since": "2026-02-01T00:00:00+00:00",
                                                 "until": "2026-02-02T00:00:00+00:00"},
                  {"author_id": "prov-psych"}):
        only = trend(**query)
        assert only["points"] == [psych_point], query
        assert only["meaningful"] == "moderate_improvement", "the filter changes no label"
        assert only["baseline"] == {"note_id": first["id"], "at": first["encounter_at"],
                                    "value": 8}
    pain_only = trend(discipline="pain_medicine")
    assert pain_only["points"][-1] == everything["points"][-1]
    assert everything["baseline"] == pain_only["baseline"]


def test_the_clinics_thresholds_apply_and_a_nonsense_one_refuses_to_start(settings_for):
    settings = settings_for("notes", extra={"NOTES_DN4_INTERVIEW_CUTOFF": "4",
                                            "NOTES_MIC_PHQ9": "6"})
    runtime = build_runtime(settings)
    try:
        app = create_app(runtime=runtime)
        local = NotesClinic(settings, runtime, app.test_client())
        local.care_team()
        made = local.write("pain_doc", {**PROGRESS, "measures": {"dn4": 3,
                                                                 "dn4_form": "interview"}})
        assert [s["band"] for s in made.get_json()["scores"]] == ["neuropathic_unlikely"]
        served = {i["code"]: i for i in local.client.get(
            "/measures", headers=bearer(settings, "scheduler", "s")).get_json()}
        assert served["dn4"]["forms"][1]["cutoff"] == 4
        assert served["phq9"]["scores"][0]["change"]["points"] == 6
    finally:
        runtime.db.dispose()
    for wrong in ({"NOTES_DN4_CUTOFF": "11"}, {"NOTES_DN4_INTERVIEW_CUTOFF": "8"},
                  {"NOTES_MIC_GAD7": "0"}):
        bad = build_runtime(settings_for("notes", extra=wrong))
        try:
            with pytest.raises(ScoringSettingError, match=next(iter(wrong))):
                create_app(runtime=bad)
        finally:
            bad.db.dispose()
