"""Drafts, signing, addenda and notes entered in error, through the HTTP API."""

import copy

from tests.integration.notes.conftest import PATIENT, PROGRESS


def test_each_save_of_a_draft_is_a_version_the_author_can_look_back_on(clinic):
    clinic.care_team()
    made = clinic.write("pain_doc", PROGRESS).get_json()
    edited = copy.deepcopy(PROGRESS)
    edited["sections"]["plan"] = "Start pregabalin 75 mg twice daily."
    edited.pop("kind")
    saved = clinic.client.put(f"/notes/{made['id']}", json={**edited, "version": 1},
                              headers=clinic.headers("pain_doc"))
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["version"] == 2
    stale = clinic.client.put(f"/notes/{made['id']}", json={**edited, "version": 1},
                              headers=clinic.headers("pain_doc"))
    assert stale.status_code == 409
    other = clinic.client.put(f"/notes/{made['id']}", json={**edited, "version": 2},
                              headers=clinic.headers("psych"))
    assert other.status_code == 403
    versions = clinic.client.get(f"/notes/{made['id']}/versions",
                                 headers=clinic.headers("pain_doc")).get_json()
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["sections"]["plan"] == PROGRESS["sections"]["plan"]
    assert versions[1]["sections"]["plan"] == "Start pregabalin 75 mg twice daily."


def test_a_signed_note_cannot_be_changed_by_any_route(clinic):
    clinic.care_team()
    signed = clinic.signed_note("pain_doc", PROGRESS)
    nid = signed["id"]
    h = clinic.headers("pain_doc")
    changed = {"version": 1, "sections": {"plan": "something else"},
               "measures": {"nrs": {"current": 1}}}
    attempts = {
        "edit": clinic.client.put(f"/notes/{nid}", json=changed, headers=h),
        "sign again": clinic.sign("pain_doc", nid),
        "patch": clinic.client.patch(f"/notes/{nid}", json=changed, headers=h),
        "delete": clinic.client.delete(f"/notes/{nid}", headers=h),
        "admin delete": clinic.client.delete(f"/notes/{nid}", headers=clinic.headers("admin")),
        "admin edit": clinic.client.put(f"/notes/{nid}", json=changed,
                                        headers=clinic.headers("admin")),
        "colleague edit": clinic.client.put(f"/notes/{nid}", json=changed,
                                            headers=clinic.headers("psych")),
        "post to note": clinic.client.post(f"/notes/{nid}", json=changed, headers=h),
        "put versions": clinic.client.put(f"/notes/{nid}/versions", json=changed, headers=h),
    }
    assert attempts["edit"].status_code == 409
    assert "addendum" in attempts["edit"].get_json()["detail"]
    assert attempts["sign again"].status_code == 409
    assert attempts["admin edit"].status_code == 403  # admin: operations, writes no notes
    assert attempts["colleague edit"].status_code == 409
    for name in ("patch", "delete", "admin delete", "post to note", "put versions"):
        assert attempts[name].status_code == 405, name
    # an addendum and marking it entered in error leave its words as they were
    clinic.client.post(f"/notes/{nid}/addenda", json={"text": "Duloxetine dose is 60 mg."},
                       headers=clinic.headers("psych"))
    clinic.client.post(f"/notes/{nid}/entered-in-error", json={"reason": "wrong patient"},
                       headers=h)
    after = clinic.client.get(f"/notes/{nid}", headers=h).get_json()
    for key in ("sections", "measures", "treatment", "version", "signed_at", "kind",
                "encounter_at", "author_id"):
        assert after[key] == signed[key], key
    versions = clinic.client.get(f"/notes/{nid}/versions", headers=h).get_json()
    assert len(versions) == 1


def test_an_addendum_points_to_the_note_it_amends_and_keeps_the_original_intact(clinic):
    clinic.care_team()
    original = clinic.signed_note("pain_doc", PROGRESS)
    made = clinic.client.post(f"/notes/{original['id']}/addenda",
                              json={"text": "Correction: duloxetine 60 mg, not 30 mg."},
                              headers=clinic.headers("psych"))
    assert made.status_code == 201, made.get_json()
    addendum = made.get_json()
    assert addendum["kind"] == "addendum" and addendum["amends_note_id"] == original["id"]
    assert addendum["patient_id"] == PATIENT and addendum["status"] == "draft"
    assert clinic.sign("psych", addendum["id"]).status_code == 200

    now = clinic.client.get(f"/notes/{original['id']}", headers=clinic.headers("acu"))
    assert now.status_code == 200
    body = now.get_json()
    assert body["addenda"] == [addendum["id"]]
    assert {k: body[k] for k in ("sections", "measures", "status", "version", "signed_at")} == \
        {k: original[k] for k in ("sections", "measures", "status", "version", "signed_at")}

    amended = [e for e in clinic.events() if e["type"] == "note.amended"]
    assert len(amended) == 1
    assert amended[0]["payload"]["amends_note_id"] == original["id"]
    assert amended[0]["payload"]["note_id"] == addendum["id"]
    assert "prov-psych" not in amended[0]["payload"]["notify"]
    assert set(amended[0]["payload"]["notify"]) == {"dr-pain", "prov-acu"}

    timeline = clinic.client.get(f"/patients/{PATIENT}/timeline",
                                 headers=clinic.headers("acu")).get_json()
    by_id = {n["id"]: n for n in timeline["notes"]}
    assert by_id[original["id"]]["addenda"] == [addendum["id"]]
    # a draft cannot be amended; an addendum needs a signed note
    draft = clinic.write("pain_doc", PROGRESS).get_json()
    refused = clinic.client.post(f"/notes/{draft['id']}/addenda", json={"text": "x"},
                                 headers=clinic.headers("pain_doc"))
    assert refused.status_code == 409


def test_note_signed_tells_the_care_team_but_the_author_with_ids_and_measures_only(clinic):
    clinic.care_team()
    signed = clinic.signed_note("pain_doc", PROGRESS)
    [event] = [e for e in clinic.events() if e["type"] == "note.signed"]
    p = event["payload"]
    assert p["note_id"] == signed["id"] and p["author_id"] == "prov-pain"
    assert p["discipline"] == "pain_medicine" and p["kind"] == "progress"
    assert p["measures"]["nrs_current"] == 6 and p["measures"]["phq9"] == 7
    assert sorted(p["notify"]) == ["prov-acu", "prov-psych"]
    assert set(p) == {"note_id", "patient_id", "author_id", "discipline", "kind", "signed_at",
                      "measures", "notify", "items", "sensitive"}
    # item answers are numbers only (PHQ-9's nine scores); a pain doctor's note is not
    # of a sensitive discipline
    assert sum(p["items"]["phq9"]) == p["measures"]["phq9"] and p["sensitive"] is False


def test_a_note_entered_in_error_stays_readable_to_its_author_and_break_glass_admins(clinic):
    clinic.care_team()
    signed = clinic.signed_note("pain_doc", PROGRESS)
    nid = signed["id"]
    refused = clinic.client.post(f"/notes/{nid}/entered-in-error",
                                 json={"reason": "wrong patient"}, headers=clinic.headers("acu"))
    assert refused.status_code == 403
    marked = clinic.client.post(f"/notes/{nid}/entered-in-error",
                                json={"reason": "written in the wrong patient's record"},
                                headers=clinic.headers("pain_doc"))
    assert marked.status_code == 200
    assert marked.get_json()["entered_in_error"]["reason"] == \
        "written in the wrong patient's record"
    assert clinic.client.get(f"/notes/{nid}", headers=clinic.headers("acu")).status_code == 404
    assert clinic.client.get(f"/notes/{nid}", headers=clinic.headers("admin")).status_code \
        == 403
    author = clinic.client.get(f"/notes/{nid}", headers=clinic.headers("pain_doc"))
    assert author.status_code == 200 and author.get_json()["sections"] == signed["sections"]
    assert clinic.client.post(f"/patients/{PATIENT}/break-glass",
                              json={"reason": "record audit after a complaint"},
                              headers=clinic.headers("admin")).status_code == 201
    admin = clinic.client.get(f"/notes/{nid}", headers=clinic.headers("admin"))
    assert admin.status_code == 200 and admin.get_json()["sections"] == signed["sections"]
    team_view = clinic.client.get(f"/patients/{PATIENT}/timeline",
                                  headers=clinic.headers("acu")).get_json()
    assert team_view["total"] == 0 and "nrs_current" not in team_view["trends"]
    admin_view = clinic.client.get(f"/patients/{PATIENT}/timeline",
                                   query_string={"include_entered_in_error": "true"},
                                   headers=clinic.headers("admin")).get_json()
    assert [n["id"] for n in admin_view["notes"]] == [nid]
    [event] = [e for e in clinic.events() if e["type"] == "note.entered_in_error"]
    assert event["payload"]["note_id"] == nid and event["payload"]["by"] == "prov-pain"
    again = clinic.client.post(f"/notes/{nid}/entered-in-error", json={"reason": "again"},
                               headers=clinic.headers("pain_doc"))
    assert again.status_code == 409


def test_even_the_repository_never_rewrites_a_signed_notes_words(clinic):
    from dataclasses import replace

    from services.notes.db import NotesRepository
    from services.notes.domain import ENTERED_IN_ERROR

    clinic.care_team()
    signed = clinic.signed_note("pain_doc", PROGRESS)
    with clinic.runtime.db.transaction() as s:
        repo = NotesRepository(s)
        before = repo.get(signed["id"])
        tampered = replace(before, status=ENTERED_IN_ERROR, sections={"plan": "rewritten"},
                           measures={}, version=9, entered_in_error_reason="test")
        repo.save(before, tampered, "someone")
    with clinic.runtime.db.transaction() as s:
        after = NotesRepository(s).get(signed["id"])
        versions = NotesRepository(s).versions(signed["id"])
    assert after.status == ENTERED_IN_ERROR
    assert after.sections == PROGRESS["sections"] and after.version == 1
    assert after.measures == {**PROGRESS["measures"], "dn4_form": "full"}  # form recorded
    assert len(versions) == 1
