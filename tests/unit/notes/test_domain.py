"""The rules of notes: who may read and write, and why a signed note never changes."""

from datetime import UTC, datetime, timedelta

import pytest

from services.notes import domain as d
from shared.errors import Conflict, Forbidden, InvalidInput

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
PAIN = d.Clinician("dr-pain", "specialist", "pain_medicine", "prov-pain")
ACU = d.Clinician("acu-1", "specialist", "acupuncture", "prov-acu")
OUTSIDER = d.Clinician("dr-out", "specialist", "physical_therapy", "prov-out")
ADMIN = d.Clinician("admin-1", "admin")
TEAM = {"dr-pain", "prov-acu"}


def _draft(who=PAIN, kind="progress", **kw):
    defaults = dict(note_id="n1", patient_id="p1", who=who, team=TEAM, kind=kind,
                    encounter_at=NOW, sections={"subjective": "sore feet"}, measures={},
                    treatment={}, now=NOW)
    defaults.update(kw)
    return d.new_draft(**defaults)


def test_the_care_team_knows_a_member_by_provider_id_or_subject():
    assert d.is_member(PAIN, TEAM)          # by subject (referral.accepted's accepted_by)
    assert d.is_member(ACU, TEAM)           # by provider id (appointment.booked)
    assert not d.is_member(OUTSIDER, TEAM)


def test_read_access_is_care_team_or_break_glass_else_denied_admins_included():
    assert d.read_access(ADMIN, set(), break_glass=False) is d.Access.DENIED
    assert d.read_access(ADMIN, set(), break_glass=True) is d.Access.BREAK_GLASS
    assert d.read_access(ACU, TEAM, break_glass=False) is d.Access.CARE_TEAM
    assert d.read_access(OUTSIDER, TEAM, break_glass=False) is d.Access.DENIED
    assert d.read_access(OUTSIDER, TEAM, break_glass=True) is d.Access.BREAK_GLASS
    scheduler = d.Clinician("sched-1", "scheduler")
    assert d.read_access(scheduler, {"sched-1"}, break_glass=True) is d.Access.DENIED


def test_only_the_care_team_writes_and_admins_do_not_author():
    with pytest.raises(Forbidden):
        _draft(who=OUTSIDER)
    with pytest.raises(Forbidden):
        _draft(who=ADMIN)


def test_each_save_of_a_draft_is_a_new_version_and_a_stale_save_is_refused():
    note = _draft()
    saved = d.edit(note, PAIN, expected_version=1, now=NOW + timedelta(minutes=5),
                   sections={"subjective": "burning feet"}, measures={}, treatment={})
    assert saved.version == 2 and saved.sections == {"subjective": "burning feet"}
    with pytest.raises(Conflict):
        d.edit(saved, PAIN, expected_version=1, now=NOW, sections={}, measures={},
               treatment={})
    with pytest.raises(Forbidden):
        d.edit(saved, ACU, expected_version=2, now=NOW, sections={}, measures={},
               treatment={})


def test_a_signed_note_is_locked_for_ever():
    signed = d.sign(_draft(), PAIN, now=NOW)
    assert signed.status == d.SIGNED and signed.signed_at == NOW
    with pytest.raises(Conflict, match="addendum"):
        d.edit(signed, PAIN, expected_version=1, now=NOW, sections={}, measures={},
               treatment={})
    with pytest.raises(Conflict):
        d.sign(signed, PAIN, now=NOW)


def test_an_addendum_amends_only_a_signed_note_of_the_same_patient():
    draft = _draft()
    with pytest.raises(Conflict):
        _draft(who=ACU, kind="addendum", sections={"text": "x"}, amends=draft)
    signed = d.sign(draft, PAIN, now=NOW)
    addendum = _draft(who=ACU, note_id="n2", kind="addendum", sections={"text": "dose was 60"},
                      amends=signed)
    assert addendum.amends_note_id == "n1" and addendum.kind == "addendum"
    with pytest.raises(InvalidInput):
        _draft(who=ACU, note_id="n3", patient_id="p2", kind="addendum",
               sections={"text": "x"}, amends=signed)


def test_sections_belong_to_the_kind_and_treatment_to_the_authors_discipline():
    with pytest.raises(InvalidInput) as exc:
        _draft(sections={"history": "x"})
    assert "sections.history" in exc.value.errors
    with pytest.raises(InvalidInput) as exc:
        _draft(treatment={"acupuncture": {"points": ["LI4"], "needle_count": 2}})
    assert "treatment.acupuncture" in exc.value.errors
    ok = _draft(who=ACU, kind="treatment_record", sections={"treatment": "needling"},
                treatment={"acupuncture": {"points": ["LI4"], "needle_count": 2}})
    assert ok.treatment["acupuncture"]["needle_count"] == 2


def test_entered_in_error_needs_a_reason_and_the_author():
    signed = d.sign(_draft(), PAIN, now=NOW)
    for who in (ACU, ADMIN):
        with pytest.raises(Forbidden):
            d.enter_in_error(signed, who, reason="wrong patient", now=NOW)
    with pytest.raises(InvalidInput):
        d.enter_in_error(signed, PAIN, reason=" ", now=NOW)
    marked = d.enter_in_error(signed, PAIN, reason="wrong patient", now=NOW)
    assert marked.status == d.ENTERED_IN_ERROR and marked.sections == signed.sections
    assert d.visible(marked, PAIN) and not d.visible(marked, ACU)
    assert not d.visible(marked, ADMIN)
    assert d.visible(marked, ADMIN, d.Access.BREAK_GLASS)
    with pytest.raises(Conflict):
        d.enter_in_error(marked, PAIN, reason="again!", now=NOW)


def test_drafts_are_seen_by_their_author_only():
    draft = _draft()
    assert d.visible(draft, PAIN) and not d.visible(draft, ADMIN)
    assert not d.visible(draft, ACU)


def test_the_care_team_but_the_author_hears_of_a_signed_note():
    signed = d.sign(_draft(), PAIN, now=NOW)
    assert d.notify_list({"dr-pain", "prov-pain", "prov-acu"}, signed) == ["prov-acu"]


def test_a_note_records_a_visit_that_has_happened():
    with pytest.raises(InvalidInput) as exc:
        _draft(encounter_at=NOW + timedelta(days=2))
    assert "encounter_at" in exc.value.errors
    assert _draft(encounter_at=NOW - timedelta(days=2)).encounter_at < NOW


def test_a_sensitive_note_is_withheld_from_other_disciplines_until_shared():
    signed = d.sign(_draft(), PAIN, now=NOW)  # a pain-medicine note
    colleague = d.Clinician("dr-pain-2", "specialist", "pain_medicine", "prov-pain-2")
    sensitive = ("pain_medicine",)
    assert d.withheld(signed, ACU, sensitive) and d.withheld(signed, ADMIN, sensitive)
    assert not d.withheld(signed, PAIN, sensitive)  # its author
    assert not d.withheld(signed, colleague, sensitive)  # its discipline
    assert not d.withheld(signed, ACU, ())  # not a sensitive discipline here
    with pytest.raises(Forbidden):
        d.share(signed, ACU, now=NOW)
    with pytest.raises(Conflict):
        d.share(_draft(), PAIN, now=NOW)
    shared = d.share(signed, PAIN, now=NOW)
    assert shared.shared_by == "prov-pain" and not d.withheld(shared, ACU, sensitive)
    assert shared.sections == signed.sections
    with pytest.raises(Conflict):
        d.share(shared, PAIN, now=NOW)
