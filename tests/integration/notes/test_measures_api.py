"""Outcome measures through the API: every out-of-range score is refused naming it, the
safety alert fires at once, and the timeline carries each measure's trend."""

import copy

from tests.integration.notes.conftest import PATIENT, PROGRESS

# (measures body, the measure's error field, words the message must name)
OUT_OF_RANGE = [
    ({"nrs": {"current": -1}}, "measures.nrs.current", "NRS current pain"),
    ({"nrs": {"current": 11}}, "measures.nrs.current", "NRS current pain"),
    ({"nrs": {"average": 11}}, "measures.nrs.average", "NRS average pain"),
    ({"nrs": {"average": -1}}, "measures.nrs.average", "NRS average pain"),
    ({"nrs": {"worst": 12}}, "measures.nrs.worst", "NRS worst pain"),
    ({"nrs": {"worst": -3}}, "measures.nrs.worst", "NRS worst pain"),
    ({"dn4": 11}, "measures.dn4", "DN4"),
    ({"dn4": -1}, "measures.dn4", "DN4"),
    ({"lanss": 25}, "measures.lanss", "LANSS"),
    ({"lanss": -1}, "measures.lanss", "LANSS"),
    ({"paindetect": 39}, "measures.paindetect", "painDETECT"),
    ({"paindetect": -2}, "measures.paindetect", "painDETECT"),
    ({"phq9": {"items": [0, 0, 0, 0, 4, 0, 0, 0, 0]}}, "measures.phq9.items.4", "PHQ-9"),
    ({"phq9": {"items": [0, 0, 0, 0, 0, 0, 0, 0, -1]}}, "measures.phq9.items.8", "PHQ-9"),
    ({"phq9": {"items": [1, 1, 1]}}, "measures.phq9.items", "PHQ-9"),
    ({"gad7": 22}, "measures.gad7", "GAD-7"),
    ({"gad7": -1}, "measures.gad7", "GAD-7"),
    ({"bpi": {"severity": 10.5}}, "measures.bpi.severity", "BPI pain severity"),
    ({"bpi": {"severity": -0.5}}, "measures.bpi.severity", "BPI pain severity"),
    ({"bpi": {"interference": 11}}, "measures.bpi.interference", "BPI pain interference"),
    ({"bpi": {"interference": -1}}, "measures.bpi.interference", "BPI pain interference"),
    ({"pseq": 61}, "measures.pseq", "PSEQ"),
    ({"pseq": -1}, "measures.pseq", "PSEQ"),
    ({"pgic": 0}, "measures.pgic", "PGIC"),
    ({"pgic": 8}, "measures.pgic", "PGIC"),
    ({"dn4": 8, "dn4_form": "interview"}, "measures.dn4", "DN4-interview must be between 0 "
                                                          "and 7"),
    ({"dn4": 11, "dn4_form": "full"}, "measures.dn4", "DN4 must be between 0 and 10"),
]


def test_every_out_of_range_value_gets_422_naming_the_measure(clinic):
    clinic.care_team()
    draft = clinic.write("pain_doc", PROGRESS).get_json()
    for measures, field, label in OUT_OF_RANGE:
        body = {**PROGRESS, "measures": measures}
        for resp in (clinic.write("pain_doc", body),
                     clinic.client.put(f"/notes/{draft['id']}",
                                       json={"version": 1, "measures": measures},
                                       headers=clinic.headers("pain_doc"))):
            assert resp.status_code == 422, (measures, resp.get_json())
            problem = resp.get_json()
            assert resp.headers["Content-Type"] == "application/problem+json"
            assert field in problem["errors"], (field, problem["errors"])
            assert label in " ".join(problem["errors"][field]), problem["errors"][field]
            assert field in problem["detail"]
    # nothing was stored by any of them; the boundaries themselves are accepted
    assert clinic.client.get(f"/notes/{draft['id']}", headers=clinic.headers("pain_doc")
                             ).get_json()["version"] == 1
    edges = {"nrs": {"current": 0, "average": 10, "worst": 10}, "dn4": 10, "lanss": 24,
             "paindetect": -1, "phq9": {"items": [3] * 9}, "gad7": 21,
             "bpi": {"severity": 0, "interference": 10}, "pseq": 60}
    ok = clinic.write("pain_doc", {**PROGRESS, "measures": edges})
    assert ok.status_code == 201, ok.get_json()
    scores = {s["code"]: (s["value"], s["band"]) for s in ok.get_json()["scores"]}
    assert scores["phq9"] == (27, "severe") and scores["paindetect"] == (-1,
                                                                         "neuropathic_unlikely")


def test_a_positive_phq9_item_9_raises_a_safety_alert_at_once_whatever_the_total(clinic):
    clinic.care_team()
    body = {"kind": "intake_assessment", "sections": {"history": "Low mood since the shingles."},
            "measures": {"phq9": {"items": [0, 0, 0, 0, 0, 0, 0, 0, 1]}}}
    made = clinic.write("psych", body)
    assert made.status_code == 201
    note = made.get_json()
    assert note["safety_alert"] is True and note["status"] == "draft"
    scores = {s["code"]: s for s in note["scores"]}
    assert scores["phq9"]["value"] == 1 and scores["phq9"]["band"] == "minimal"
    assert scores["phq9_item9"]["band"] == "positive"
    [alert] = [e for e in clinic.events() if e["type"] == "patient.safety_alert"]
    assert alert["version"] == 2 and alert["payload"]["note_id"] == note["id"]
    assert alert["payload"]["source"] == "phq9_item9" and alert["payload"]["severity"] == 1
    assert set(alert["payload"]) == {"alert_id", "patient_id", "note_id", "source",
                                     "severity", "raised_by", "raised_at", "recipients"}
    # saving the draft again does not raise it twice
    again = clinic.client.put(f"/notes/{note['id']}",
                              json={"version": 1, "sections": {"history": "Low mood."}},
                              headers=clinic.headers("psych"))
    assert again.status_code == 200
    assert len([e for e in clinic.events() if e["type"] == "patient.safety_alert"]) == 1
    calm = clinic.write("psych", {**body, "measures": {"phq9": {"items": [3] * 8 + [0]}}})
    assert calm.get_json()["safety_alert"] is False


def _visit(day: str, nrs: int, pseq: int, phq9_items: list[int]) -> dict:
    body = copy.deepcopy(PROGRESS)
    body["encounter_at"] = f"2026-{day}T09:00:00+00:00"
    body["measures"] = {"nrs": {"average": nrs}, "pseq": pseq, "phq9": {"items": phq9_items}}
    return body


def test_the_timeline_shows_every_discipline_in_time_order_with_meaningful_trends(clinic):
    clinic.care_team()
    # written out of order, by three disciplines
    third = clinic.signed_note("pain_doc", _visit("03-01", 4, 36, [1] * 9))
    first = clinic.signed_note("pain_doc", _visit("01-05", 8, 22, [2] * 9))
    psych = copy.deepcopy(_visit("02-01", 5, 30, [1, 1, 1, 1, 1, 1, 1, 1, 0]))
    psych["treatment"] = {"psychology": {"cbt_module": "pacing", "session_number": 2}}
    second = clinic.signed_note("psych", psych)
    acu = {"kind": "treatment_record", "encounter_at": "2026-02-15T09:00:00+00:00",
           "sections": {"treatment": "Needling, 20 minutes retention."},
           "treatment": {"acupuncture": {"points": ["LI4", "ST36", "SP6", "LR3"],
                                         "needle_count": 8, "retention_minutes": 20}}}
    needles = clinic.signed_note("acu", acu)
    clinic.write("acu", _visit("03-10", 2, 50, [0] * 9))   # a draft: not in others' view

    timeline = clinic.client.get(f"/patients/{PATIENT}/timeline",
                                 headers=clinic.headers("pain_doc")).get_json()
    assert [n["id"] for n in timeline["notes"]] == [first["id"], second["id"], needles["id"],
                                                    third["id"]]
    assert [n["discipline"] for n in timeline["notes"]] == [
        "pain_medicine", "psychology", "acupuncture", "pain_medicine"]
    assert timeline["notes"][2]["treatment"]["acupuncture"]["needle_count"] == 8
    one = clinic.client.get(f"/notes/{needles['id']}", headers=clinic.headers("pain_doc"))
    assert {**one.get_json(), "access": None} == timeline["notes"][2], "one shape for a note"
    nrs = timeline["trends"]["nrs_average"]
    assert [(p["value"], p["meaningful"]) for p in nrs["points"]] == [
        (8, None), (5, "moderate_improvement"), (4, "substantial_improvement")]
    assert nrs["meaningful"] == "substantial_improvement"
    pseq = timeline["trends"]["pseq"]
    assert [p["meaningful"] for p in pseq["points"]] == [None, "meaningful_improvement",
                                                        "meaningful_improvement"]
    assert [p["beyond_measurement_error"] for p in pseq["points"]] == [None, False, True], \
        "+8 is important, +14 is also beyond the PSEQ's measurement error (11.5)"
    phq9 = timeline["trends"]["phq9"]
    assert [(p["value"], p["band"]) for p in phq9["points"]] == [
        (18, "moderately_severe"), (8, "mild"), (9, "mild")]

    only_psych = clinic.client.get(f"/patients/{PATIENT}/timeline",
                                   query_string={"discipline": "psychology"},
                                   headers=clinic.headers("pain_doc")).get_json()
    assert [n["id"] for n in only_psych["notes"]] == [second["id"]]
    charted = clinic.client.get(f"/patients/{PATIENT}/timeline",
                                query_string={"measure": ["nrs_average", "phq9"]},
                                headers=clinic.headers("pain_doc")).get_json()
    assert set(charted["trends"]) == {"nrs_average", "phq9"} and charted["total"] == 4
    window = clinic.client.get(f"/patients/{PATIENT}/timeline",
                               query_string={"since": "2026-02-01T00:00:00+00:00",
                                             "until": "2026-03-01T00:00:00+00:00",
                                             "kind": ["progress", "treatment_record"]},
                               headers=clinic.headers("pain_doc")).get_json()
    assert [n["id"] for n in window["notes"]] == [second["id"], needles["id"]]
    page = clinic.client.get(f"/patients/{PATIENT}/timeline",
                             query_string={"limit": 2, "offset": 1},
                             headers=clinic.headers("pain_doc")).get_json()
    assert page["total"] == 4 and [n["id"] for n in page["notes"]] == [second["id"],
                                                                       needles["id"]]
    assert len(page["trends"]["nrs_average"]["points"]) == 3, "the trend covers the filter"
    own = clinic.client.get(f"/patients/{PATIENT}/timeline", headers=clinic.headers("acu"))
    assert own.get_json()["total"] == 5, "the author sees their own draft"


def test_treatment_details_belong_to_the_authors_discipline(clinic):
    clinic.care_team()
    body = {"kind": "treatment_record", "sections": {"treatment": "Exercises reviewed."},
            "treatment": {"acupuncture": {"points": ["LI4"], "needle_count": 2}}}
    wrong = clinic.write("psych", body)
    assert wrong.status_code == 422 and "treatment.acupuncture" in wrong.get_json()["errors"]
    bad_needles = clinic.write("acu", {**body, "treatment": {"acupuncture": {
        "points": ["LI4"], "needle_count": 0}}})
    assert bad_needles.status_code == 422
    assert "treatment.acupuncture.needle_count" in bad_needles.get_json()["errors"]
    soap_in_intake = clinic.write("psych", {"kind": "intake_assessment",
                                            "sections": {"subjective": "x"}})
    assert soap_in_intake.status_code == 422


def test_the_openapi_document_and_interactive_docs_are_served(clinic):
    spec = clinic.client.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.get_json()["paths"]
    for path in ("/patients/{patient_id}/notes", "/notes/{note_id}", "/notes/{note_id}/sign",
                 "/notes/{note_id}/addenda", "/notes/{note_id}/entered-in-error",
                 "/patients/{patient_id}/timeline", "/patients/{patient_id}/break-glass",
                 "/audit", "/break-glass"):
        assert path in paths, path
    assert clinic.client.get("/docs").status_code == 200
