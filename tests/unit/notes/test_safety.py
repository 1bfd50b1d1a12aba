"""The life of a safety alert, as pure rules: who hears of it, when it is raised again,
who may acknowledge and close it, and when it escalates."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.notes import domain as d
from services.notes import safety as s
from shared.errors import Conflict, Forbidden, InvalidInput

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
MIN = timedelta(minutes=1)
PSYCH = d.Clinician("dr-psych", "specialist", "psychology", "prov-psych")
DUTY = d.Clinician("dr-duty", "specialist", "pain_medicine", "prov-duty")
OUTSIDER = d.Clinician("dr-out", "specialist", "physical_therapy", "prov-out")
ADMIN = d.Clinician("admin-1", "admin")
TEAM = {"dr-pain", "prov-psych"}


def member(member_id: str, discipline: str | None, minutes: int,
           source: str = "appointment.booked") -> s.Member:
    return s.Member(member_id, discipline, NOW + timedelta(minutes=minutes), source)


def alert(**kw) -> s.Alert:
    base = dict(id="a1", patient_id="p1", note_id="n1", source=s.PHQ9_ITEM9, severity=1,
                raised_by="prov-psych", raised_at=NOW, next_escalation_at=NOW + 30 * MIN,
                recipients=(s.Recipient("role:triage_lead", "triage_lead"),))
    base.update(kw)
    return s.Alert(**base)


# ------------------------------------------------------------------------------ routing

def test_routing_names_duty_psychologists_pain_lead_and_triage_lead():
    team = [member("dr-pain", None, 0, "referral.accepted"),
            member("prov-pain-2", "pain_medicine", 20), member("prov-pain", "pain_medicine", 10),
            member("prov-psych", "psychology", 5), member("prov-psych-2", "psychology", 30),
            member("prov-acu", "acupuncture", 1)]
    assert s.route(team, "prov-duty") == (
        s.Recipient("prov-duty", "duty_clinician"),
        s.Recipient("prov-psych", "psychologist"),
        s.Recipient("prov-psych-2", "psychologist"),
        s.Recipient("prov-pain", "pain_medicine_lead"),      # the earliest booked joined
        s.Recipient("role:triage_lead", "triage_lead"))


def test_no_rota_falls_back_to_the_triage_lead_once():
    routed = s.route([member("prov-psych", "psychology", 0)], None)
    assert routed == (s.Recipient("role:triage_lead", "triage_lead"),
                      s.Recipient("prov-psych", "psychologist"))
    assert [r.recipient_id for r in routed].count("role:triage_lead") == 1


def test_a_duty_clinician_on_the_team_is_told_once_as_duty_clinician():
    routed = s.route([member("prov-psych", "psychology", 0)], "prov-psych")
    assert routed == (s.Recipient("prov-psych", "duty_clinician"),
                      s.Recipient("role:triage_lead", "triage_lead"))


def test_the_pain_lead_is_the_accepting_specialist_until_one_is_booked():
    accepted = member("dr-pain", None, 0, "referral.accepted")
    assert s.pain_medicine_lead([accepted]) == "dr-pain"
    assert s.pain_medicine_lead([accepted, member("prov-pain", "pain_medicine", 9)]) \
        == "prov-pain"
    assert s.pain_medicine_lead([member("prov-psych", "psychology", 0)]) is None


def test_recipients_are_capped_at_the_contracts_twenty():
    team = [member(f"prov-psych-{i}", "psychology", i) for i in range(30)]
    routed = s.route(team, "prov-duty")
    assert len(routed) == s.MAX_RECIPIENTS and routed[0].role == "duty_clinician"


def test_escalation_goes_to_the_clinical_lead_and_the_duty_clinician():
    assert s.escalation_route("prov-duty") == (s.Recipient("role:clinical_lead", "clinical_lead"),
                                               s.Recipient("prov-duty", "duty_clinician"))
    assert s.escalation_route(None) == (s.Recipient("role:clinical_lead", "clinical_lead"),
                                        s.Recipient("role:triage_lead", "triage_lead"))


def test_the_rota_day_is_the_clinics_calendar_day():
    late = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)      # 00:30 on 1 July in London (BST)
    assert s.clinic_day(late, ZoneInfo("Europe/London")) == date(2026, 7, 1)
    assert s.clinic_day(late, ZoneInfo("UTC")) == date(2026, 6, 30)


@pytest.mark.parametrize("day, clinician, name, field", [
    ("2026-13-01", "prov-1", "Dr A", "date"), ("01/12/2026", "prov-1", "Dr A", "date"),
    ("2026-12-1", "prov-1", "Dr A", "date"), ("2026-12-01", "role:triage_lead", "Dr A",
                                              "clinician_id"),
    ("2026-12-01", "has space", "Dr A", "clinician_id"), ("2026-12-01", "", "Dr A",
                                                          "clinician_id"),
    ("2026-12-01", "prov-1", "   ", "name")])
def test_a_rota_entry_names_what_is_wrong(day, clinician, name, field):
    with pytest.raises(InvalidInput) as err:
        s.check_rota_entry(day, clinician, name)
    assert field in err.value.errors


# ------------------------------------------------------------------------------ raising

def test_item9_raises_a_new_alert_with_its_score_as_severity():
    assert s.on_item9(None, None) is None
    assert s.on_item9(0, None) is None
    raised = s.on_item9(2, None)
    assert raised == s.Raise(2) and raised.is_new


def test_a_higher_item9_raises_the_open_alert_again_and_the_same_or_lower_is_silent():
    open_one = alert(severity=1)
    again = s.on_item9(3, open_one)
    assert again is not None and again.alert is open_one and again.severity == 3
    assert s.on_item9(1, open_one) is None
    assert s.on_item9(1, alert(severity=3)) is None
    assert s.on_item9(2, alert(severity=3)) is None


def test_a_higher_item9_after_acknowledgement_is_a_new_alert():
    handled = alert(severity=1, status=s.ACKNOWLEDGED)
    assert s.on_item9(2, handled) == s.Raise(2)
    assert s.on_item9(1, handled) is None
    assert s.on_item9(3, alert(severity=2, status=s.CLOSED)) == s.Raise(3)


def test_raising_again_keeps_the_escalation_clock_and_adds_whoever_routes_now():
    before = alert(severity=1)
    after = s.raised_again(before, 3, (s.Recipient("prov-duty-2", "duty_clinician"),),
                           NOW + 5 * MIN)
    assert after.severity == 3 and after.last_raised_at == NOW + 5 * MIN
    assert after.next_escalation_at == before.next_escalation_at
    assert [r.recipient_id for r in after.recipients] == ["role:triage_lead", "prov-duty-2"]


@pytest.mark.parametrize("reason, severity, field", [
    ("", 2, "reason"), ("   ", 2, "reason"), ("x" * 2001, 2, "reason"), ("worried", 0, "severity"),
    ("worried", 4, "severity")])
def test_a_flag_needs_a_reason_and_a_severity_of_1_to_3(reason, severity, field):
    with pytest.raises(InvalidInput) as err:
        s.check_flag(reason, severity)
    assert field in err.value.errors
    assert s.check_flag("  said he has a plan  ", 3) == "said he has a plan"


# ------------------------------------------------------------------ acknowledge, close

def test_the_care_team_or_the_duty_clinician_respond_and_no_one_else():
    s.require_responder(PSYCH, TEAM, None, "acknowledge")
    s.require_responder(DUTY, TEAM, "prov-duty", "acknowledge")
    for who, duty in ((DUTY, None), (DUTY, "prov-other"), (OUTSIDER, "prov-duty"),
                      (ADMIN, "admin-1"), (d.Clinician("sched-1", "scheduler"), None)):
        with pytest.raises(Forbidden):
            s.require_responder(who, TEAM, duty, "acknowledge")


def test_acknowledging_stops_escalation_and_twice_is_a_conflict():
    done = s.acknowledge(alert(), PSYCH, action="risk_assessment", detail=None, now=NOW)
    assert (done.status, done.acknowledged_by, done.ack_action, done.next_escalation_at) == (
        s.ACKNOWLEDGED, "prov-psych", "risk_assessment", None)
    assert not s.is_due(done, NOW + timedelta(days=1))
    with pytest.raises(Conflict):
        s.acknowledge(done, PSYCH, action="crisis_plan", detail=None, now=NOW)


def test_other_needs_its_detail():
    with pytest.raises(InvalidInput) as err:
        s.acknowledge(alert(), PSYCH, action="other", detail="  ", now=NOW)
    assert "detail" in err.value.errors
    done = s.acknowledge(alert(), PSYCH, action="other", detail="rang his wife", now=NOW)
    assert done.ack_detail == "rang his wife"
    with pytest.raises(InvalidInput) as err:
        s.acknowledge(alert(), PSYCH, action="shrugged", detail=None, now=NOW)
    assert "action" in err.value.errors


def test_closing_needs_an_acknowledgement_unless_raised_in_error():
    with pytest.raises(Conflict):
        s.close(alert(), PSYCH, reason="risk_managed", detail=None, now=NOW)
    in_error = s.close(alert(), PSYCH, reason="raised_in_error", detail=None, now=NOW)
    assert in_error.status == s.CLOSED and in_error.next_escalation_at is None
    acked = s.acknowledge(alert(), PSYCH, action="crisis_plan", detail=None, now=NOW)
    closed = s.close(acked, PSYCH, reason="risk_managed", detail="safety plan agreed", now=NOW)
    assert (closed.status, closed.close_reason, closed.close_detail) == (
        s.CLOSED, "risk_managed", "safety plan agreed")
    with pytest.raises(Conflict):
        s.close(closed, PSYCH, reason="risk_managed", detail=None, now=NOW)
    with pytest.raises(Conflict):
        s.acknowledge(closed, PSYCH, action="crisis_plan", detail=None, now=NOW)
    with pytest.raises(InvalidInput) as err:
        s.close(acked, PSYCH, reason="bored", detail=None, now=NOW)
    assert "reason" in err.value.errors


# ---------------------------------------------------------------------------- escalation

def test_an_alert_is_due_at_the_very_end_of_its_interval_not_before():
    interval = 30 * MIN
    a = alert(next_escalation_at=s.first_escalation_at(NOW, interval))
    assert not s.is_due(a, NOW + interval - timedelta(microseconds=1))
    assert s.is_due(a, NOW + interval)
    assert not s.is_due(replace(a, status=s.ACKNOWLEDGED), NOW + interval)
    assert not s.is_due(replace(a, status=s.CLOSED), NOW + interval)


def test_the_next_escalation_is_the_next_step_of_the_alerts_own_schedule():
    interval = 30 * MIN
    assert s.next_escalation_after(NOW, interval, NOW + interval) == NOW + 2 * interval
    assert s.next_escalation_after(NOW, interval, NOW + 59 * MIN) == NOW + 2 * interval
    # a worker away for three intervals escalates once, then keeps the schedule
    assert s.next_escalation_after(NOW, interval, NOW + 95 * MIN) == NOW + 4 * interval


def test_escalating_counts_and_remembers_who_was_told():
    interval = 30 * MIN
    once = s.escalated(alert(), s.escalation_route("prov-duty"), interval, NOW + interval)
    assert once.escalations == 1 and once.next_escalation_at == NOW + 2 * interval
    twice = s.escalated(once, s.escalation_route("prov-duty-2"), interval, NOW + 2 * interval)
    assert twice.escalations == 2
    assert [r.recipient_id for r in twice.escalated_to] == [
        "role:clinical_lead", "prov-duty", "prov-duty-2"]
    assert [r.recipient_id for r in twice.told] == [
        "role:triage_lead", "role:clinical_lead", "prov-duty", "prov-duty-2"]


def test_the_ack_interval_is_a_positive_number_of_minutes():
    assert s.ack_interval(0.05) == timedelta(seconds=3)
    with pytest.raises(ValueError):
        s.ack_interval(0)


# ------------------------------------------------------------------------------- reading

def test_a_note_shows_its_unclosed_alert_first_then_its_last_closed():
    closed = alert(id="old", severity=3, status=s.CLOSED)
    mild = alert(id="mild", severity=1, raised_at=NOW + MIN)
    grave = alert(id="grave", severity=2, raised_at=NOW)
    assert s.note_alert([]) is None
    assert s.note_alert([closed]).id == "old"
    assert s.note_alert([closed, mild, grave]).id == "grave"


def test_the_care_team_reads_every_alert_the_duty_clinician_the_unclosed_ones():
    assert s.may_read(PSYCH, TEAM, None, alert(status=s.CLOSED))
    assert s.may_read(DUTY, TEAM, "prov-duty", alert(status=s.ACKNOWLEDGED))
    assert not s.may_read(DUTY, TEAM, "prov-duty", alert(status=s.CLOSED))
    assert not s.may_read(OUTSIDER, TEAM, "prov-duty", alert())
    assert not s.may_read(ADMIN, {"admin-1"}, None, alert())
    with pytest.raises(Forbidden):
        s.require_clinical_reader(ADMIN)
