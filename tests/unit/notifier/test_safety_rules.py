"""Safety alerts and breach risks as clinic stories, pure: who is told, on which channels
(every one, opt-outs aside), with which words (never free text), and what an
acknowledgement settles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.notifier.domain import (
    CLINICAL_LEAD,
    DUTY_PHONE,
    TRIAGE_LEAD,
    AlertHistory,
    Contact,
    Rules,
    ordinal,
    plan,
    waited,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RAISED = datetime(2026, 3, 2, 8, 58, tzinfo=UTC)
RULES = Rules(
    triage_lead=Contact(TRIAGE_LEAD, "role", "Triage lead", email="lead@clinic",
                        phone="+440000000001"),
    clinical_lead=Contact(CLINICAL_LEAD, "role", "Clinical lead", email="cl@clinic",
                          phone="+440000000002"),
    duty_phone="+440000000099", console_url="https://console.clinic")
ANA = Contact("pat-1", "patient", "Ana Silva", email="ana@example.org")
# The psychologist prefers email and has opted out of SMS: the alert still goes by SMS.
PSY = Contact("prov-psy", "provider", "Dr Moreau", email="moreau@clinic", phone="+441",
              preferred_channel="email", opted_out=frozenset({"sms"}), language="fr")
PAIN = Contact("prov-pain", "provider", "Dr Lee", email="lee@clinic", phone="+442")
DUTY = Contact("prov-duty", "provider", "Dr Duty", phone="+443", preferred_channel="sms")
DIRECTORY = {c.recipient_id: c for c in (ANA, PSY, PAIN, DUTY)}
NOTE_TEXT = "patient said they have a plan"  # lives in notes, never in a message
RECIPIENTS = [{"recipient_id": "prov-psy", "role": "psychologist"},
              {"recipient_id": "prov-pain", "role": "pain_medicine_lead"},
              {"recipient_id": TRIAGE_LEAD, "role": "triage_lead"},
              {"recipient_id": "prov-duty", "role": "duty_clinician"}]


def _alert(**over: object) -> dict:
    return {"alert_id": "al-1", "patient_id": "pat-1", "note_id": "note-1",
            "source": "phq9_item9", "severity": 2, "raised_by": "prov-psy",
            "raised_at": RAISED.isoformat(), "recipients": RECIPIENTS, **over}


def _plan(event_type: str, payload: dict, *, version: int = 1, rules: Rules = RULES,
          directory: dict | None = None, alert: AlertHistory | None = None):
    d = DIRECTORY if directory is None else directory
    return plan("ev-1", event_type, payload, d.get, rules, NOW, version=version,
                alert=alert or AlertHistory())


def _sent(result) -> set[tuple[str, str, str]]:
    return {(n.recipient_id, n.channel, n.address) for n in result.notifications}


def test_an_alert_reaches_each_named_recipient_on_every_channel_and_the_duty_phone():
    result = _plan("patient.safety_alert", _alert(), version=2)
    assert _sent(result) == {
        ("prov-psy", "email", "moreau@clinic"), ("prov-psy", "sms", "+441"),  # opt-out aside
        ("prov-psy", "in_app", "prov-psy"),
        ("prov-pain", "email", "lee@clinic"), ("prov-pain", "sms", "+442"),
        ("prov-pain", "in_app", "prov-pain"),
        (TRIAGE_LEAD, "email", "lead@clinic"), (TRIAGE_LEAD, "sms", "+440000000001"),
        (TRIAGE_LEAD, "in_app", TRIAGE_LEAD),
        ("prov-duty", "sms", "+443"), ("prov-duty", "in_app", "prov-duty"),
        (DUTY_PHONE, "sms", "+440000000099")}
    for n in result.notifications:
        assert (n.priority, n.alert_id, n.due_at, n.dedupe_key) == ("urgent", "al-1", NOW,
                                                                     "ev-1")
        assert n.template == "safety_alert"


def test_without_a_duty_phone_or_a_duty_clinician_no_duty_phone_sms():
    no_phone = Rules(triage_lead=RULES.triage_lead, clinical_lead=RULES.clinical_lead)
    assert DUTY_PHONE not in {n.recipient_id for n in _plan(
        "patient.safety_alert", _alert(), version=2, rules=no_phone).notifications}
    no_duty = _alert(recipients=RECIPIENTS[:3])
    assert DUTY_PHONE not in {n.recipient_id for n in _plan(
        "patient.safety_alert", no_duty, version=2).notifications}


def test_the_message_says_who_when_whom_how_severe_and_links_the_console_never_free_text():
    result = _plan("patient.safety_alert", _alert(), version=2)
    (mail,) = [n for n in result.notifications if n.recipient_id == "prov-pain"
               and n.channel == "email"]
    assert "Ana Silva (pat-1)" in mail.body and "severity 2 of 3" in mail.body
    assert "Raised by Dr Moreau on Mon 02 Mar 2026 at 08:58" in mail.body  # London time
    assert "https://console.clinic/#/patient/pat-1" in mail.body
    assert "PHQ-9 item 9" in mail.body and mail.subject.startswith("URGENT")
    assert "Ana" not in mail.subject  # the name only inside, not on a lock screen
    (french,) = [n for n in result.notifications if n.recipient_id == "prov-psy"
                 and n.channel == "sms"]
    assert french.language == "fr" and "gravité 2 sur 3" in french.body
    assert "Signalée par Dr Moreau" in french.body
    for n in result.notifications:
        assert NOTE_TEXT not in n.body and "note-1" not in n.body


def test_a_clinician_flag_and_strangers_are_named_by_id_and_reached_in_app_at_once():
    result = _plan("patient.safety_alert", _alert(
        source="clinician_flag", raised_by="prov-new", note_id=None,
        recipients=[{"recipient_id": "prov-unknown", "role": "psychologist"}]),
        version=2, directory={})
    (n,) = result.notifications
    assert (n.recipient_id, n.channel, n.provisional) == ("prov-unknown", "in_app", True)
    assert n.due_at == NOW and n.priority == "urgent"  # no grace for a safety alert
    assert "patient pat-1" in n.body and "Raised by prov-new" in n.body
    assert "a clinician flagged a risk concern" in n.body


def test_a_v1_alert_goes_to_the_triage_lead_only():
    v1 = {"alert_id": "al-0", "patient_id": "pat-1", "note_id": "note-1",
          "author_id": "prov-psy", "measure": "phq9_item9", "value": 3.0,
          "raised_at": RAISED.isoformat()}
    result = _plan("patient.safety_alert", v1, version=1)
    assert {n.recipient_id for n in result.notifications} == {TRIAGE_LEAD}
    assert {n.channel for n in result.notifications} == {"email", "sms", "in_app"}
    assert all(n.priority == "urgent" and "severity 3 of 3" in n.body
               for n in result.notifications)


def test_an_escalation_says_which_and_how_long_it_waited():
    escalated = {"alert_id": "al-1", "patient_id": "pat-1", "escalation": 2, "severity": 2,
                 "raised_at": RAISED.isoformat(),
                 "escalated_at": (RAISED + timedelta(minutes=62)).isoformat(),
                 "recipients": [{"recipient_id": CLINICAL_LEAD, "role": "clinical_lead"},
                                {"recipient_id": "prov-duty", "role": "duty_clinician"}]}
    result = _plan("patient.safety_alert_escalated", escalated)
    assert {(n.recipient_id, n.channel) for n in result.notifications} == {
        (CLINICAL_LEAD, "email"), (CLINICAL_LEAD, "sms"), (CLINICAL_LEAD, "in_app"),
        ("prov-duty", "sms"), ("prov-duty", "in_app"), (DUTY_PHONE, "sms")}
    mail = next(n for n in result.notifications if n.channel == "email")
    assert mail.subject == "ESCALATION 2nd: safety alert unacknowledged for 1 h 2 min"
    assert "2nd escalation" in mail.body and "Ana Silva" in mail.body
    assert all(n.priority == "urgent" for n in result.notifications)
    settled = _plan("patient.safety_alert_escalated", escalated,
                    alert=AlertHistory(settled=True))
    assert settled.notifications == []  # acknowledged meanwhile: nobody is woken


def test_an_acknowledgement_tells_the_others_in_app_who_and_what_and_settles_the_alert():
    ack = {"alert_id": "al-1", "patient_id": "pat-1", "acknowledged_by": "prov-pain",
           "action": "crisis_team_informed", "acknowledged_at": NOW.isoformat(),
           "recipients": RECIPIENTS}
    result = _plan("patient.safety_alert_acknowledged", ack,
                   alert=AlertHistory(raised_at=RAISED))
    assert {(n.recipient_id, n.channel) for n in result.notifications} == {
        ("prov-psy", "in_app"), (TRIAGE_LEAD, "in_app"), ("prov-duty", "in_app")}
    lead = next(n for n in result.notifications if n.recipient_id == TRIAGE_LEAD)
    assert "acknowledged by Dr Lee at 09:00: crisis team informed" in lead.body
    assert lead.priority == "normal" and lead.alert_id == "al-1"
    assert "raised on Mon 02 Mar 2026 at 08:58" in lead.body
    psy = next(n for n in result.notifications if n.recipient_id == "prov-psy")
    assert "équipe de crise informée" in psy.body
    assert result.settled is not None
    assert (result.settled.alert_id, result.settled.how, result.settled.by) == (
        "al-1", "acknowledged", "prov-pain")
    # no recipients on the event: those the notifier told of the alert
    told = _plan("patient.safety_alert_acknowledged", {**ack, "recipients": []},
                 alert=AlertHistory(recipients=("prov-psy", "prov-pain")))
    assert [n.recipient_id for n in told.notifications] == ["prov-psy"]


def test_a_closed_alert_settles_it_and_tells_no_one():
    result = _plan("patient.safety_alert_closed", {
        "alert_id": "al-1", "patient_id": "pat-1", "closed_by": "prov-psy",
        "reason": "risk_managed", "closed_at": NOW.isoformat()})
    assert result.notifications == []
    assert result.settled is not None and result.settled.how == "closed"


def test_a_breach_risk_tells_the_triage_lead_why_by_email_and_feed():
    result = _plan("referral.breach_risk", {
        "referral_id": "ref-7", "patient_id": "pat-1", "priority": "urgent",
        "due_by": "2026-03-09", "reason": "first_visit_after_due",
        "first_visit_at": "2026-03-12T10:00:00+00:00", "detected_at": NOW.isoformat()})
    assert {(n.recipient_id, n.channel) for n in result.notifications} == {
        (TRIAGE_LEAD, "email"), (TRIAGE_LEAD, "in_app")}
    mail = next(n for n in result.notifications if n.channel == "email")
    assert mail.subject == "Referral ref-7 may miss its target date (Mon 09 Mar 2026)"
    assert "priority urgent" in mail.body
    assert "first visit, on Thu 12 Mar 2026 10:00, falls after that date" in mail.body
    assert "https://console.clinic/#/referral/ref-7" in mail.body
    assert mail.priority == "normal" and mail.alert_id is None
    unscheduled = _plan("referral.breach_risk", {
        "referral_id": "ref-8", "patient_id": "pat-1", "priority": None,
        "due_by": "2026-03-03", "reason": "unscheduled_near_due", "first_visit_at": None,
        "detected_at": NOW.isoformat()})
    assert "priority not set" in unscheduled.notifications[0].body
    assert "still unscheduled" in unscheduled.notifications[0].body


def test_the_triage_leads_referral_notice_says_the_requested_urgency_and_due_date():
    base = {"referral_id": "ref-9", "condition": "crps",
            "patient": {"patient_id": "pat-9", "name": "Bo"}, "referrer": {"name": "GP"},
            "received_at": NOW.isoformat()}
    asked = _plan("referral.received", {**base, "urgency_requested": "urgent",
                                        "due_by": "2026-03-16"})
    assert asked.notifications[0].body.endswith(
        "waiting for triage. The referrer asked for urgent, to be seen by Mon 16 Mar 2026.")
    plain = _plan("referral.received", base)
    assert plain.notifications[0].body.endswith("waiting for triage.")


def test_ordinals_and_waiting_times_read_naturally():
    assert [ordinal(n, "en") for n in (1, 2, 3, 4, 11, 12, 13, 21, 22)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd"]
    assert [ordinal(n, "fr") for n in (1, 2)] == ["1re", "2e"]
    assert waited(RAISED, RAISED + timedelta(minutes=30)) == "30 min"
    assert waited(RAISED, RAISED + timedelta(minutes=125), "fr") == "2 h 05"


def test_break_glass_tells_the_privacy_officer_at_once_by_email_and_feed():
    from dataclasses import replace

    from services.notifier.domain import PRIVACY_OFFICER

    rules = replace(RULES, privacy_officer=Contact(PRIVACY_OFFICER, "role", "Privacy officer",
                                                   email="po@clinic"))
    payload = {"access_id": "bg-1", "patient_id": "pat-1", "actor_id": "prov-out",
               "discipline": "physical_therapy", "opened_at": NOW.isoformat(),
               "expires_at": (NOW + timedelta(hours=4)).isoformat()}
    result = _plan("patient.break_glass", payload, rules=rules)
    assert {(n.recipient_id, n.channel) for n in result.notifications} == {
        (PRIVACY_OFFICER, "email"), (PRIVACY_OFFICER, "in_app")}
    assert all(n.due_at == NOW for n in result.notifications), "in-app at once"
    mail = next(n for n in result.notifications if n.channel == "email")
    assert mail.address == "po@clinic"
    assert "prov-out" in mail.body and "pat-1" in mail.body and "bg-1" in mail.body
    assert "https://console.clinic/#/patient/pat-1" in mail.body
