"""Sensitive notes (NOTES_SENSITIVE_DISCIPLINES, psychology by default): the rest of the
care team sees that such a note exists, its date and author, not its text, until its
author shares it (audited; note.shared carries ids only)."""

from __future__ import annotations

import json

from tests.integration.notes.conftest import PATIENT

WORDS = "Childhood trauma disclosed; sleeping badly since the divorce."
PSYCH_NOTE = {"kind": "intake_assessment",
              "sections": {"history": WORDS, "plan": "Weekly CBT for pain."},
              "measures": {"phq9": {"items": [1, 2, 1, 1, 0, 1, 1, 0, 1]}}}


def test_other_disciplines_see_a_psychology_note_exists_not_its_text(clinic) -> None:
    clinic.care_team()
    note = clinic.signed_note("psych", PSYCH_NOTE)
    nid = note["id"]
    assert note["sections"]["history"] == WORDS and note["withheld"] is False
    for who in ("pain_doc", "acu"):
        read = clinic.client.get(f"/notes/{nid}", headers=clinic.headers(who))
        assert read.status_code == 200
        body = read.get_json()
        assert body["withheld"] is True and body["sections"] == {} and body["measures"] == {}
        assert (body["author_id"], body["discipline"]) == ("prov-psych", "psychology")
        assert body["signed_at"] and body["encounter_at"]
        assert not [s for s in body["scores"] if "_item" in s["code"]]
        assert WORDS not in read.get_data(as_text=True)
        timeline = clinic.client.get(f"/patients/{PATIENT}/timeline",
                                     headers=clinic.headers(who))
        assert WORDS not in timeline.get_data(as_text=True)
        [shown] = [n for n in timeline.get_json()["notes"] if n["id"] == nid]
        assert shown["withheld"] is True
        versions = clinic.client.get(f"/notes/{nid}/versions", headers=clinic.headers(who))
        assert versions.status_code == 403 and WORDS not in versions.get_data(as_text=True)
    assert clinic.audit(actor="dr-pain", action="read_versions", outcome="denied")
    # a non-sensitive note is read whole by the team
    pain = clinic.signed_note("pain_doc", {"kind": "progress", "sections": {
        "subjective": "Feet burn at night."}})
    seen = clinic.client.get(f"/notes/{pain['id']}", headers=clinic.headers("psych"))
    assert seen.get_json()["withheld"] is False and seen.get_json()["sections"]


def test_the_author_shares_it_with_the_care_team_audited_with_an_event(clinic) -> None:
    clinic.care_team()
    nid = clinic.signed_note("psych", PSYCH_NOTE)["id"]
    for who in ("pain_doc", "acu"):
        refused = clinic.client.post(f"/notes/{nid}/share", headers=clinic.headers(who))
        assert refused.status_code == 403
    assert clinic.audit(actor="dr-pain", action="share", outcome="denied")
    shared = clinic.client.post(f"/notes/{nid}/share", headers=clinic.headers("psych"))
    assert shared.status_code == 200 and shared.get_json()["shared_at"]
    again = clinic.client.post(f"/notes/{nid}/share", headers=clinic.headers("psych"))
    assert again.status_code == 409
    read = clinic.client.get(f"/notes/{nid}", headers=clinic.headers("pain_doc")).get_json()
    assert read["withheld"] is False and read["sections"]["history"] == WORDS
    assert clinic.audit(actor="dr-psych", action="share", outcome="allowed")
    [event] = [e for e in clinic.events() if e["type"] == "note.shared"]
    assert event["payload"] == {"note_id": nid, "patient_id": PATIENT, "by": "prov-psych",
                                "at": event["payload"]["at"]}
    assert WORDS not in json.dumps(event)


def test_a_draft_is_not_shared(clinic) -> None:
    clinic.care_team()
    draft = clinic.write("psych", PSYCH_NOTE).get_json()
    resp = clinic.client.post(f"/notes/{draft['id']}/share", headers=clinic.headers("psych"))
    assert resp.status_code == 409
