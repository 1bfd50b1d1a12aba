"""The notifier as it runs in production (gunicorn web, worker process) on the real
broker: events published as referrals and scheduling publish them, a real SMTP server
receiving, a worker killed in the middle of a batch."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from kafka import KafkaProducer

from services.notifier import worker
from services.notifier.delivery import wait_idle
from services.notifier.wiring import build_runtime
from shared import topics
from shared.config import Settings
from shared.events import Envelope, new_event
from tests.integration.notifier.clinic_events import (
    appointment_event,
    itinerary_booked,
    provider_registered,
    referral_received,
    safety_alert,
    visit,
    waitlist_offered,
)
from tests.integration.notifier.local_servers import SmsGateway, SmtpServer, TestClock
from tests.support.clinic import bearer, read_topic, wait_for
from tests.support.processes import running_services

pytestmark = pytest.mark.kafka
ANA = "ana@example.org"


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


def _publish(settings: Settings, *events: tuple[str, Envelope]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                             linger_ms=5)
    futures = [producer.send(settings.topic(topic), key=b"k", value=e.to_bytes())
               for topic, e in events]
    producer.flush(30)
    for f in futures:
        f.get(30)
    producer.close()


@pytest.fixture
def sms():
    gateway = SmsGateway().start()
    yield gateway
    gateway.stop()


def _env(smtp: SmtpServer, **more: str) -> dict[str, str]:
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port),
            "TRIAGE_LEAD_EMAIL": "lead@clinic.test", "NOTIFIER_POLL_SECONDS": "0.1",
            **more}


@pytest.mark.journey(short="sqlite")
def test_a_booked_itinerary_is_one_email_with_every_visit_and_reminders_on_time(
        new_database_url, topic_prefix, kafka_bootstrap, tmp_path, smtp):
    urls: dict[str, str] = {}

    def database(label: str) -> str:
        urls[label] = new_database_url(label)
        return urls[label]

    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap)
    start = (datetime.now(UTC) + timedelta(days=30)).replace(hour=9, minute=0, second=0,
                                                            microsecond=0)
    visits = [visit(0, start, "pain_medicine"), visit(1, start + timedelta(hours=1)),
              visit(2, start + timedelta(hours=2), "psychology"),
              visit(3, start + timedelta(days=14), "acupuncture")]
    booked = itinerary_booked("pat-1", visits)
    with running_services(["notifier"], database_url=database, topic_prefix=topic_prefix,
                          log_dir=tmp_path / "logs", extra_env=_env(smtp),
                          web_workers=1) as clinic:
        admin = bearer(settings, "admin")
        desk = bearer(settings, "scheduler")   # a patient's contact is not the ops role's
        url = clinic["notifier"].url
        _publish(settings, (topics.REFERRALS, referral_received("pat-1", email=ANA)))
        wait_for(lambda: requests.get(f"{url}/recipients/pat-1", headers=desk,
                                      timeout=5).status_code == 200,
                 timeout=60, what="the patient's contact (topics have no common order)")
        _publish(settings, (topics.SCHEDULING, booked),
                 *[(topics.SCHEDULING, appointment_event("appointment.booked", "pat-1", v))
                   for v in visits])
        (mail,) = wait_for(lambda: smtp.to(ANA), timeout=60, what="the confirmation")
        body = smtp.text(mail)
        for v in visits:
            assert v["room_name"] in body
        for name in ("Pain medicine", "Physical therapy", "Psychology", "Acupuncture"):
            assert name in body
        assert "Your medication list" in body
        wait_for(lambda: smtp.to("lead@clinic.test"), what="the triage lead's alert")

        def reminders() -> list[dict]:
            got = requests.get(f"{url}/notifications", headers=admin, timeout=5, params={
                "template": "appointment_reminder", "limit": 100}).json()["items"]
            return got if len(got) == 8 else []

        planned = wait_for(reminders, what="8 reminders planned")
        due = sorted(datetime.fromisoformat(r["due_at"]) for r in planned)
        expected = sorted(datetime.fromisoformat(v["start"]) - timedelta(hours=h)
                          for v in visits for h in (48, 2))
        assert due == expected

        # The delivery loop on a clock the test controls, beside the real worker.
        runtime = build_runtime(Settings.for_service(
            "notifier", database_url=urls["notifier"], topic_prefix=topic_prefix,
            kafka_bootstrap=kafka_bootstrap, kafka_enabled=False,
            extra={"SMTP_PORT": str(smtp.port)}))
        clock = TestClock(due[0] - timedelta(seconds=1))
        deliverer = worker.deliverer(runtime, clock)
        wait_idle(deliverer)
        time.sleep(0.5)
        assert len(smtp.to(ANA)) == 1  # one second early: nothing
        clock.set(due[0])
        wait_idle(deliverer)
        mails = smtp.to(ANA)
        assert len(mails) == 2 and mails[1]["Subject"].startswith("Reminder: Pain medicine")
        clock.set(due[-1] + timedelta(minutes=1))
        wait_idle(deliverer)
        assert len(smtp.to(ANA)) == 1 + 8
        assert len(set(smtp.ids())) == len(smtp.ids())
        runtime.db.dispose()

        sent = wait_for(lambda: [v for _k, _h, v in read_topic(settings, topics.NOTIFICATIONS)
                                 if v["type"] == "notification.sent"
                                 and v["payload"]["event_id"] == booked.id],
                        what="notification.sent on the topic")
        assert sent[0]["payload"]["recipient_id"] == "pat-1"


def test_a_worker_killed_mid_batch_and_restarted_loses_nothing_and_sends_nothing_twice(
        new_database_url, topic_prefix, kafka_bootstrap, tmp_path, smtp):
    """The 40th email is held at the SMTP server (before it is accepted) while the worker
    is killed; the rows it held come back when its lease runs out."""
    patients = 120
    smtp.stall_at = 40
    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap)
    start = datetime.now(UTC) + timedelta(days=20)
    referrals = [(topics.REFERRALS, referral_received(f"p{i}", email=f"p{i}@example.org"))
                 for i in range(patients)]
    offers = [(topics.SCHEDULING, waitlist_offered(f"p{i}", i, start)) for i in range(patients)]
    env = _env(smtp, TRIAGE_LEAD_EMAIL="", NOTIFIER_LEASE_SECONDS="3",
               NOTIFIER_BATCH="25")
    with running_services(["notifier"], database_url=new_database_url,
                          topic_prefix=topic_prefix, log_dir=tmp_path / "logs",
                          extra_env=env, web_workers=1) as clinic:
        admin = bearer(settings, "admin")
        desk = bearer(settings, "scheduler")   # a patient's contact is not the ops role's
        url = clinic["notifier"].url
        _publish(settings, *referrals)  # the directory first: topics have no common order
        wait_for(lambda: requests.get(f"{url}/recipients/p{patients - 1}", headers=desk,
                                      timeout=5).status_code == 200, what="the directory")
        _publish(settings, *offers)
        assert smtp.stalled.wait(60), "the delivery never reached the 40th email"
        clinic["notifier"].kill("worker")
        smtp.release.set()
        assert len(smtp.messages) == 39
        clinic["notifier"].start_worker()
        wanted = {f"p{i}@example.org" for i in range(patients)}
        wait_for(lambda: {m["To"] for m in smtp.messages} >= wanted, timeout=90,
                 what="every offer delivered")
        time.sleep(4)  # past a lease: anything that could go twice would have
        to = [m["To"] for m in smtp.messages]
        assert sorted(to) == sorted(wanted)  # each patient once, none lost
        log = requests.get(f"{url}/notifications", headers=admin,
                           params={"template": "waitlist_offered", "limit": 1}).json()
        assert log["total"] == patients
        assert log["counts"]["sent"] == 2 * patients  # the emails and the lead's feed


@pytest.mark.journey(short="postgres")
def test_a_safety_alert_reaches_the_duty_clinician_the_duty_phone_and_the_psychologist_once(
        new_database_url, topic_prefix, kafka_bootstrap, tmp_path, smtp, sms):
    """A v2 alert as notes publishes it: the duty clinician's SMS, the duty phone's SMS and
    the psychologist's in-app item arrive in seconds; the same event published again
    changes nothing (one per recipient and channel)."""
    duty_phone, duty_mobile = "+447700900999", "+447700900003"
    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap)
    env = _env(smtp, SMS_GATEWAY_URL=sms.url, SAFETY_DUTY_PHONE=duty_phone)
    with running_services(["notifier"], database_url=new_database_url,
                          topic_prefix=topic_prefix, log_dir=tmp_path / "logs",
                          extra_env=env, web_workers=1) as clinic:
        scheduler = bearer(settings, "scheduler")
        url = clinic["notifier"].url
        _publish(settings, (topics.REFERRALS, referral_received("pat-1", email=ANA)),
                 (topics.SCHEDULING, provider_registered("prov-psy", "psychology",
                                                         "psy@clinic.test")),
                 (topics.SCHEDULING, provider_registered("prov-duty", "pain_medicine", None,
                                                         duty_mobile)))
        for who in ("pat-1", "prov-psy", "prov-duty"):
            wait_for(lambda who=who: requests.get(f"{url}/recipients/{who}", headers=scheduler,
                                                  timeout=5).status_code == 200,
                     timeout=60, what=f"{who} in the directory")
        alert = safety_alert("al-1", "pat-1", [("prov-psy", "psychologist"),
                                               ("prov-duty", "duty_clinician")],
                             raised_by="prov-psy", raised_at=datetime.now(UTC))
        _publish(settings, (topics.NOTES, alert))

        def texts() -> dict[str, list[str]]:
            got: dict[str, list[str]] = {}
            for m in list(sms.received):
                got.setdefault(m["to"], []).append(m["message"])
            return got if {duty_phone, duty_mobile} <= set(got) else {}

        arrived = wait_for(texts, timeout=30, what="the duty clinician's and duty phone's SMS")
        assert "Patient pat-1 (pat-1)" in arrived[duty_phone][0]
        assert "Raised by Dr prov-psy" in arrived[duty_mobile][0]

        def feed() -> list[dict]:
            return requests.get(f"{url}/feed/prov-psy", headers=scheduler, timeout=5).json()

        (item,) = wait_for(feed, timeout=30, what="the psychologist's feed item")
        assert item["priority"] == "urgent" and item["alert_id"] == "al-1"
        wait_for(lambda: smtp.to("psy@clinic.test"), timeout=30, what="the psychologist's mail")

        # The same event twice more, then a note signed on the same topic and key: once
        # that is planned, the consumer is past both copies.
        marker = new_event("note.signed", {
            "note_id": "note-2", "patient_id": "pat-1", "author_id": "prov-duty",
            "discipline": "pain_medicine", "kind": "progress",
            "signed_at": datetime.now(UTC).isoformat(), "notify": ["prov-psy"]},
            producer="notes")
        _publish(settings, (topics.NOTES, alert), (topics.NOTES, alert), (topics.NOTES, marker))
        wait_for(lambda: requests.get(f"{url}/notifications", headers=scheduler, timeout=5,
                                      params={"event_id": marker.id}).json()["total"],
                 timeout=60, what="the consumer past the redelivered alert")
        time.sleep(1.5)  # several delivery passes: anything planned twice would be sent
        log = requests.get(f"{url}/notifications", headers=scheduler, timeout=5,
                           params={"event_id": alert.id, "limit": 100}).json()
        assert sorted((n["recipient_id"], n["channel"]) for n in log["items"]) == [
            ("prov-duty", "in_app"), ("prov-duty", "sms"), ("prov-psy", "email"),
            ("prov-psy", "in_app"), ("role:duty_phone", "sms")]
        assert {n["status"] for n in log["items"]} == {"sent"}
        assert sorted(m["to"] for m in sms.received) == sorted([duty_mobile, duty_phone])
        assert [m["Subject"].startswith("URGENT") for m in smtp.to("psy@clinic.test")
                ].count(True) == 1
        assert len(feed()) == 1
