"""Safety alerts and breach risks through the consumer, on a real database (SQLite and
PostgreSQL), a real SMTP server and a real SMS gateway: who is planned on which channel,
redelivery, the acknowledgement that stops escalations and reorders the feed, the
triage lead's breach-risk notice, and the migration on a database with rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from services.notifier import db, worker
from services.notifier.app import create_app
from services.notifier.delivery import default_channels, wait_idle
from services.notifier.domain import CLINICAL_LEAD, DUTY_PHONE, TRIAGE_LEAD
from services.notifier.wiring import NotifierConfig
from shared import topics
from shared.events import new_event
from tests.integration.notifier.clinic_events import (
    breach_risk,
    provider_registered,
    referral_received,
    safety_alert,
    safety_alert_acknowledged,
    safety_alert_closed,
    safety_alert_escalated,
)
from tests.integration.notifier.conftest import Notifier, make_notifier
from tests.support.clinic import bearer

DUTY_PHONE_NUMBER = "+447700900999"
ROUTED = [("prov-psy", "psychologist"), ("prov-pain", "pain_medicine_lead"),
          (TRIAGE_LEAD, "triage_lead"), ("prov-duty", "duty_clinician")]
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ESCALATED_TO = [(CLINICAL_LEAD, "clinical_lead"), ("prov-duty", "duty_clinician")]


@pytest.fixture
def notifier(settings_for, smtp, sms) -> Iterator[Notifier]:
    n = make_notifier(settings_for, smtp, sms, extra={
        "SAFETY_DUTY_PHONE": DUTY_PHONE_NUMBER, "TRIAGE_LEAD_PHONE": "+447700900100",
        "CLINICAL_LEAD_EMAIL": "clinical-lead@clinic.test",
        "CLINICAL_LEAD_PHONE": "+447700900200", "CONSOLE_URL": "https://console.test/"})
    yield n
    n.consumer.close()
    n.runtime.db.dispose()


def _clinic(notifier: Notifier) -> None:
    """Ana referred; her psychologist (in-app only: prefers the feed and opted out of
    SMS), her pain-medicine lead and today's duty clinician (no email) in the directory."""
    notifier.receive(referral_received("pat-1", email="ana@example.org"),
                     topic=topics.REFERRALS)
    notifier.receive(provider_registered("prov-psy", "psychology", "psy@clinic.test",
                                         "+447700900001"),
                     provider_registered("prov-pain", "pain_medicine", "pain@clinic.test",
                                         "+447700900002"),
                     provider_registered("prov-duty", "pain_medicine", None, "+447700900003"))
    client = create_app(runtime=notifier.runtime).test_client()
    assert client.put("/recipients/prov-psy/preferences",
                      json={"opted_out": ["sms"], "preferred_channel": "in_app"},
                      headers=bearer(notifier.runtime.settings, "scheduler")).status_code == 200
    wait_idle(notifier.deliverer())  # the referral's own notices out of the way


def _alert(notifier: Notifier, alert_id: str = "al-1"):  # type: ignore[no-untyped-def]
    return safety_alert(alert_id, "pat-1", ROUTED, raised_by="prov-psy",
                        raised_at=notifier.clock() - timedelta(minutes=1))


def _feed(notifier: Notifier, who: str) -> list[dict]:
    client = create_app(runtime=notifier.runtime).test_client()
    resp = client.get(f"/feed/{who}", headers=bearer(notifier.runtime.settings, "scheduler"))
    assert resp.status_code == 200
    return resp.get_json()


def test_an_alert_reaches_every_recipient_on_every_channel_once_even_redelivered(notifier):
    _clinic(notifier)
    alert = _alert(notifier)
    notifier.receive(alert, topic=topics.NOTES)
    rows = notifier.rows(event_id=alert.id)
    assert sorted((r.recipient_id, r.channel) for r in rows) == sorted([
        ("prov-psy", "email"), ("prov-psy", "sms"), ("prov-psy", "in_app"),
        ("prov-pain", "email"), ("prov-pain", "sms"), ("prov-pain", "in_app"),
        (TRIAGE_LEAD, "email"), (TRIAGE_LEAD, "sms"), (TRIAGE_LEAD, "in_app"),
        ("prov-duty", "sms"), ("prov-duty", "in_app"), (DUTY_PHONE, "sms")])
    assert {(r.priority, r.alert_id, r.due_at) for r in rows} == {
        ("urgent", "al-1", notifier.clock())}

    notifier.receive(alert, alert, topic=topics.NOTES)  # redelivered
    assert len(notifier.rows(event_id=alert.id)) == 12
    wait_idle(notifier.deliverer())
    assert {r.status for r in notifier.rows(event_id=alert.id)} == {"sent"}  # opt-out aside
    texts = {m["to"]: m["message"] for m in notifier.sms.received}
    assert sorted(texts) == sorted(["+447700900001", "+447700900002", "+447700900003",
                                    "+447700900100", DUTY_PHONE_NUMBER])
    assert len(notifier.sms.received) == 5
    duty = texts[DUTY_PHONE_NUMBER]
    assert "Patient pat-1 (pat-1)" in duty and "Raised by Dr prov-psy" in duty
    assert "https://console.test/#/patient/pat-1" in duty and "note-al-1" not in duty
    (mail,) = notifier.smtp.to("pain@clinic.test")
    assert mail["Subject"].startswith("URGENT safety alert")
    assert notifier.smtp.to("lead@clinic.test")[-1]["Subject"].startswith("URGENT")


def test_an_alert_for_someone_not_in_the_directory_reaches_their_feed_at_once(notifier):
    alert = safety_alert("al-2", "pat-2", [("prov-new", "psychologist")],
                         raised_by="prov-new", raised_at=notifier.clock())
    notifier.receive(alert, topic=topics.NOTES)
    wait_idle(notifier.deliverer())  # the clock has not moved: no grace for an alert
    (item,) = _feed(notifier, "prov-new")
    assert item["priority"] == "urgent" and item["alert_id"] == "al-2"
    assert "patient pat-2" in item["body"]
    assert notifier.sms.received == []

    # Their contact arrives while the alert is still open: email and SMS follow, the
    # in-app item is not sent twice.
    notifier.receive(provider_registered("prov-new", "psychology", "new@clinic.test",
                                         "+447700900004"))
    wait_idle(notifier.deliverer())
    assert sorted((r.channel, r.status) for r in notifier.rows(event_id=alert.id)) == [
        ("email", "sent"), ("in_app", "sent"), ("sms", "sent")]
    assert [m["to"] for m in notifier.sms.received] == ["+447700900004"]
    assert len(notifier.smtp.to("new@clinic.test")) == 1
    assert len(_feed(notifier, "prov-new")) == 1


def test_a_contact_arriving_after_the_acknowledgement_wakes_no_one(notifier):
    alert = safety_alert("al-4", "pat-2", [("prov-late", "psychologist")],
                         raised_by="prov-late", raised_at=notifier.clock())
    notifier.receive(alert, topic=topics.NOTES)
    wait_idle(notifier.deliverer())
    notifier.receive(safety_alert_acknowledged("al-4", "pat-2", "prov-other",
                                               notifier.clock(), []), topic=topics.NOTES)
    notifier.receive(provider_registered("prov-late", "psychology", "late@clinic.test",
                                         "+447700900005"))
    wait_idle(notifier.deliverer())
    assert [r.channel for r in notifier.rows(event_id=alert.id)] == ["in_app"]
    assert notifier.sms.received == [] and notifier.smtp.to("late@clinic.test") == []


def test_the_acknowledgement_stops_escalations_and_takes_the_alert_off_the_top(notifier):
    _clinic(notifier)
    raised = notifier.clock() - timedelta(minutes=1)
    notifier.receive(_alert(notifier), topic=topics.NOTES)
    wait_idle(notifier.deliverer())
    notifier.clock.advance(minutes=5)  # a newer, ordinary item for the psychologist
    notifier.receive(new_event("note.signed", {
        "note_id": "note-9", "patient_id": "pat-1", "author_id": "prov-pain",
        "discipline": "pain_medicine", "kind": "progress",
        "signed_at": notifier.clock().isoformat(), "notify": ["prov-psy"]},
        producer="notes"), topic=topics.NOTES)
    wait_idle(notifier.deliverer())
    feed = _feed(notifier, "prov-psy")
    assert [i["event_type"] for i in feed] == ["patient.safety_alert", "note.signed"]

    notifier.clock.advance(minutes=25)  # 30 minutes unacknowledged: escalated
    escalation = safety_alert_escalated("al-1", "pat-1", 1, ESCALATED_TO, raised_at=raised,
                                        escalated_at=notifier.clock())
    notifier.receive(escalation, topic=topics.NOTES)
    escalated = notifier.rows(event_id=escalation.id)
    assert sorted((r.recipient_id, r.channel) for r in escalated) == sorted([
        (CLINICAL_LEAD, "email"), (CLINICAL_LEAD, "sms"), (CLINICAL_LEAD, "in_app"),
        ("prov-duty", "sms"), ("prov-duty", "in_app"), (DUTY_PHONE, "sms")])
    assert "1st escalation" in escalated[0].body and "31 min" in escalated[0].body

    ack = safety_alert_acknowledged("al-1", "pat-1", "prov-duty", notifier.clock(), ROUTED,
                                    action="crisis_plan")
    notifier.receive(ack, topic=topics.NOTES)  # before the delivery loop reached them
    assert {r.status for r in notifier.rows(event_id=escalation.id)} == {"cancelled"}
    late = safety_alert_escalated("al-1", "pat-1", 2, ESCALATED_TO, raised_at=raised,
                                  escalated_at=notifier.clock())
    notifier.receive(late, topic=topics.NOTES)
    assert notifier.rows(event_id=late.id) == []  # settled: nobody is woken for it

    sms_before = len(notifier.sms.received)
    wait_idle(notifier.deliverer())
    assert len(notifier.sms.received) == sms_before  # no escalation SMS went out
    client = create_app(runtime=notifier.runtime).test_client()
    log = client.get("/notifications?alert_id=al-1&priority=urgent&status=cancelled",
                     headers=bearer(notifier.runtime.settings, "scheduler")).get_json()
    assert log["total"] == 6 and {i["event_id"] for i in log["items"]} == {escalation.id}
    assert client.get("/notifications?priority=high", headers=bearer(
        notifier.runtime.settings, "scheduler")).status_code == 422
    notices = notifier.rows(event_id=ack.id)
    assert sorted((r.recipient_id, r.channel) for r in notices) == sorted([
        ("prov-psy", "in_app"), ("prov-pain", "in_app"), (TRIAGE_LEAD, "in_app")])
    feed = _feed(notifier, "prov-psy")
    assert [i["event_type"] for i in feed] == [
        "patient.safety_alert_acknowledged", "note.signed", "patient.safety_alert"]
    assert "acknowledged by Dr prov-duty" in feed[0]["body"]
    assert "crisis plan made" in feed[0]["body"]
    assert feed[2]["acknowledged_at"] is not None and feed[2]["priority"] == "urgent"
    assert _feed(notifier, "prov-duty")[0]["event_type"] == "patient.safety_alert"  # no self

    closed = safety_alert_closed("al-1", "pat-1", "prov-psy", notifier.clock())
    notifier.receive(closed, topic=topics.NOTES)
    assert notifier.rows(event_id=closed.id) == []


def _escalated(notifier: Notifier, alert_id: str = "al-1"):  # type: ignore[no-untyped-def]
    return safety_alert_escalated(alert_id, "pat-1", 1, ESCALATED_TO,
                                  raised_at=notifier.clock() - timedelta(minutes=31),
                                  escalated_at=notifier.clock())


def test_an_escalation_a_dead_worker_held_is_not_sent_after_the_acknowledgement(notifier):
    """A worker killed while it held an escalation leaves its rows `sending`; the
    acknowledgement comes meanwhile. When the lease runs out the rows come back, and the
    clinical lead must not be woken for an alert already handled."""
    _clinic(notifier)
    notifier.receive(_alert(notifier), topic=topics.NOTES)
    wait_idle(notifier.deliverer())
    sms_before, mails_before = len(notifier.sms.received), len(notifier.smtp.messages)
    escalation = _escalated(notifier)
    notifier.receive(escalation, topic=topics.NOTES)
    with notifier.runtime.db.transaction() as s:  # claimed by a worker that then dies
        held = db.claim_due(s, notifier.clock(), "dead-worker",
                            notifier.clock() + timedelta(seconds=60), 100)
        assert {r.event_id for r in held} == {escalation.id}
    notifier.receive(safety_alert_acknowledged("al-1", "pat-1", "prov-psy", notifier.clock(),
                                               ROUTED), topic=topics.NOTES)
    notifier.clock.advance(minutes=2)  # the dead worker's lease is over
    wait_idle(notifier.deliverer())
    assert len(notifier.sms.received) == sms_before
    assert len(notifier.smtp.messages) == mails_before
    rows = notifier.rows(event_id=escalation.id)
    assert {r.status for r in rows} == {"cancelled"}
    assert {r.last_error for r in rows} == {"safety alert acknowledged"}


def test_an_acknowledgement_during_a_batch_stops_the_rest_of_the_batch(notifier):
    """The delivery loop has claimed the escalation's six messages; the acknowledgement
    is handled while it sends the first: the other five are not sent."""
    _clinic(notifier)
    notifier.receive(_alert(notifier), topic=topics.NOTES)
    wait_idle(notifier.deliverer())
    escalation = _escalated(notifier)
    notifier.receive(escalation, topic=topics.NOTES)
    ack = safety_alert_acknowledged("al-1", "pat-1", "prov-psy", notifier.clock(), ROUTED)
    real = default_channels(NotifierConfig.from_settings(notifier.runtime.settings))

    class AckWhileSending:
        """A channel during whose first send the consumer handles the acknowledgement."""

        def __init__(self, channel) -> None:  # type: ignore[no-untyped-def]
            self.channel = channel

        def send(self, message) -> None:  # type: ignore[no-untyped-def]
            self.channel.send(message)
            if not notifier.rows(event_id=ack.id):
                notifier.receive(ack, topic=topics.NOTES)

        def close(self) -> None:
            self.channel.close()

    deliverer = worker.deliverer(notifier.runtime, notifier.clock, channels={
        name: AckWhileSending(channel) for name, channel in real.items()})
    assert deliverer.run_once() == 6
    rows = notifier.rows(event_id=escalation.id)
    assert sorted(r.status for r in rows) == ["cancelled"] * 5 + ["sent"]


def test_closing_an_alert_cancels_what_is_pending_for_it(notifier):
    _clinic(notifier)
    alert = _alert(notifier, "al-3")
    notifier.receive(alert, topic=topics.NOTES)
    notifier.receive(safety_alert_closed("al-3", "pat-1", "prov-psy", notifier.clock()),
                     topic=topics.NOTES)
    assert {r.status for r in notifier.rows(event_id=alert.id)} == {"cancelled"}
    wait_idle(notifier.deliverer())
    assert notifier.sms.received == []


def test_a_breach_risk_tells_the_triage_lead_by_email_and_feed(notifier):
    event = breach_risk("ref-7", "pat-1", due_by="2026-03-09",
                        first_visit_at=notifier.clock() + timedelta(days=10),
                        detected_at=notifier.clock())
    notifier.receive(event, topic=topics.REFERRALS)
    notifier.receive(event, topic=topics.REFERRALS)
    wait_idle(notifier.deliverer())
    (mail,) = notifier.smtp.to("lead@clinic.test")
    assert mail["Subject"] == "Referral ref-7 may miss its target date (Mon 09 Mar 2026)"
    assert "falls after that date" in notifier.smtp.text(mail)
    (item,) = _feed(notifier, TRIAGE_LEAD)
    assert item["event_type"] == "referral.breach_risk" and item["priority"] == "normal"


def test_the_migration_upgrades_a_database_with_notifications_in_it(settings_for):
    """A database at the previous revision with a sent feed item and a pending reminder:
    after the upgrade both are ordinary (normal, no alert) and the feed still reads."""
    from alembic import command

    from services.notifier.db import Notification
    from services.notifier.wiring import build_runtime
    from shared.migrations import _config

    runtime = build_runtime(settings_for("notifier"))
    cfg = _config(runtime)
    with runtime.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "64bb7b63e2ad")
    with runtime.db.engine.begin() as conn:  # the old columns only: raw SQL
        for status in ("sent", "pending"):
            conn.execute(text(
                "INSERT INTO notifications (id, dedupe_key, event_id, event_type, "
                "recipient_id, channel, template, language, address, subject, body, status, "
                "due_at, next_attempt_at, attempts, created_at, sent_at) VALUES (:id, :key, "
                "'e-1', 'note.signed', 'prov-1', 'in_app', 'note_signed', 'en', 'prov-1', "
                "'s', 'b', :status, :now, :now, 0, :now, :sent)"),
                {"id": str(uuid.uuid4()), "key": f"k-{status}", "status": status,
                 "now": NOW, "sent": NOW if status == "sent" else None})
    runtime.create_schema()  # MIGRATE_ON_START: to head
    with runtime.db.transaction() as s:
        rows = s.execute(select(Notification.status, Notification.priority,
                                Notification.alert_id, Notification.acknowledged_at)
                         .order_by(Notification.status)).all()
    assert [tuple(r) for r in rows] == [("pending", "normal", None, None),
                                        ("sent", "normal", None, None)]
    client = create_app(runtime=runtime).test_client()
    feed = client.get("/feed/prov-1", headers=bearer(runtime.settings, "scheduler")).get_json()
    assert [i["priority"] for i in feed] == ["normal"]
    runtime.db.dispose()


def test_break_glass_reaches_the_privacy_officer_by_email_and_in_their_feed(notifier):
    """patient.break_glass from notes: the privacy officer (PRIVACY_OFFICER_EMAIL and the
    in-app feed of role:privacy_officer) hears at once; ids only, no reason text."""
    from services.notifier.domain import PRIVACY_OFFICER

    opened = notifier.clock()
    event = new_event("patient.break_glass", {
        "access_id": "bg-9", "patient_id": "pat-2", "actor_id": "prov-out",
        "discipline": "physical_therapy", "opened_at": opened.isoformat(),
        "expires_at": (opened + timedelta(hours=4)).isoformat()}, producer="notes")
    notifier.receive(event, topic=topics.NOTES)
    wait_idle(notifier.deliverer())
    (mail,) = notifier.smtp.to("privacy-officer@paincare.local")
    assert mail["Subject"].startswith("Break-glass")
    (item,) = _feed(notifier, PRIVACY_OFFICER)
    assert "prov-out" in item["body"] and "pat-2" in item["body"]
    client = create_app(runtime=notifier.runtime).test_client()
    mine = client.get("/my/feed", headers=bearer(notifier.runtime.settings,
                                                 "privacy_officer", "po-1"))
    assert mine.status_code == 200 and [i["body"] for i in mine.get_json()] == [item["body"]]
    assert client.get("/my/feed", headers=bearer(notifier.runtime.settings, "admin")
                      ).status_code == 403
