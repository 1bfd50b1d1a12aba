"""A self-harm answer's journey through the clinic as it runs in production: notes and the
notifier as processes (gunicorn web, worker) on the real broker, a real SMTP server and SMS
gateway receiving, the notifier's worker SIGKILLed while the alert's messages are in
flight (issue 16, section 1's last bullet).

The care team and the notifier's directory are built from hand-made `referral.received`,
`provider.registered` and `appointment.booked` events published on the test's topics:
these are the contracts notes and the notifier consume (each validated by its schema on
both sides), and running referrals and scheduling only to produce them would double the
processes on a shared 2-core machine without proving anything more of this story.

"Exactly once" is counted as the project defines it (README of the notifier, and
`simulator.reconcile.check_mailbox`): per (recipient, step, channel) one distinct
notification id at the receivers, the id each email carries in `Message-ID`/
`X-PainCare-Notification` and each SMS in `Idempotency-Key`. The kill here falls before
the SMTP server accepts the stalled message, outside the documented duplicate window
(accepted, then killed before the commit), so the raw arrivals are counted too and must
also be one each.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import requests
from kafka import KafkaProducer

from shared import topics
from shared.config import Settings
from shared.events import Envelope, new_event
from simulator.receivers import SmsGateway, SmtpServer
from tests.support.clinic import bearer, read_topic, wait_for
from tests.support.processes import running_services

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

PATIENT, PATIENT_NAME = "pat-risk", "Robin Hartley"
PSY, PAIN_LEAD, DUTY = "prov-psy", "prov-pm", "prov-duty"
PSY_MAIL, PSY_MOBILE = "psy@clinic.test", "+447700900001"
PAIN_LEAD_MAIL = "pm@clinic.test"
DUTY_MOBILE = "+447700900003"
TRIAGE_LEAD_MAIL = "triage@clinic.test"
CLINICAL_LEAD_MAIL, CLINICAL_LEAD_MOBILE = "clinical-lead@clinic.test", "+447700900007"
DUTY_PHONE = "+447700900999"
# What the psychologist wrote: it stays in the notes service, never in a message or event.
NOTE_TEXT = "Spoke of the old railway bridge at Kelham and of saving up tablets since June."
ACK_MINUTES = 0.05  # an escalation every 3 s
POLL_SECONDS = 0.2
INTERVAL = ACK_MINUTES * 60

# Who is reached on which channel at each step (in-app is checked on the feeds).
RAISED = {(PSY, "email", PSY_MAIL), (PSY, "sms", PSY_MOBILE),
          (PAIN_LEAD, "email", PAIN_LEAD_MAIL), ("role:triage_lead", "email", TRIAGE_LEAD_MAIL),
          (DUTY, "sms", DUTY_MOBILE), ("role:duty_phone", "sms", DUTY_PHONE)}
ESCALATED = {("role:clinical_lead", "email", CLINICAL_LEAD_MAIL),
             ("role:clinical_lead", "sms", CLINICAL_LEAD_MOBILE),
             (DUTY, "sms", DUTY_MOBILE), ("role:duty_phone", "sms", DUTY_PHONE)}


def _publish(settings: Settings, *events: tuple[str, Envelope]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    try:
        futures = [producer.send(settings.topic(topic), key=PATIENT.encode(),
                                 value=e.to_bytes()) for topic, e in events]
        producer.flush(30)
        for f in futures:
            f.get(30)
    finally:
        producer.close()


def _clinic_events(first_visit: datetime) -> list[tuple[str, Envelope]]:
    """The patient's contact, three clinicians' contacts, and the two bookings that put the
    psychologist and the pain-medicine lead on the care team."""
    def provider(pid: str, discipline: str, email: str | None, phone: str | None) -> Envelope:
        return new_event("provider.registered", {
            "provider_id": pid, "name": f"Dr {pid}", "discipline": discipline,
            "email": email, "phone": phone}, producer="scheduling")

    def booked(n: int, pid: str, discipline: str) -> Envelope:
        start = first_visit + timedelta(hours=n)
        return new_event("appointment.booked", {
            "appointment_id": f"apt-{n}", "patient_id": PATIENT, "provider_id": pid,
            "provider_name": f"Dr {pid}", "discipline": discipline, "room_id": f"room-{n}",
            "room_name": f"Room {n}", "start": start.isoformat(),
            "end": (start + timedelta(minutes=50)).isoformat()}, producer="scheduling")

    referral = new_event("referral.received", {
        "referral_id": f"ref-{PATIENT}", "condition": "diabetic_neuropathy",
        "patient": {"patient_id": PATIENT, "name": PATIENT_NAME, "date_of_birth": "1961-02-03",
                    "email": "robin@example.org", "phone": None, "preferred_channel": "email",
                    "language": "en"},
        "referrer": {"name": "Dr GP", "organisation": "Riverside Practice"},
        "received_at": datetime.now(UTC).isoformat()}, producer="referrals")
    return [(topics.REFERRALS, referral),
            (topics.SCHEDULING, provider(PSY, "psychology", PSY_MAIL, PSY_MOBILE)),
            (topics.SCHEDULING, provider(PAIN_LEAD, "pain_medicine", PAIN_LEAD_MAIL, None)),
            (topics.SCHEDULING, provider(DUTY, "pain_medicine", None, DUTY_MOBILE)),
            (topics.SCHEDULING, booked(0, PAIN_LEAD, "pain_medicine")),
            (topics.SCHEDULING, booked(1, PSY, "psychology"))]


@pytest.mark.journey(short="postgres")
def test_a_self_harm_answer_reaches_the_clinic_escalates_and_stops_when_acknowledged(
        new_database_url, topic_prefix, kafka_bootstrap, tmp_path):
    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap, database_url="sqlite://")
    admin = bearer(settings, "admin")
    scheduler = bearer(settings, "scheduler")
    psych = bearer(settings, "specialist", "psy-sub", discipline="psychology",
                   provider_id=PSY)
    smtp, sms = SmtpServer().start(), SmsGateway().start()
    env = {"SAFETY_ACK_MINUTES": str(ACK_MINUTES),
           "SAFETY_ESCALATION_POLL_SECONDS": str(POLL_SECONDS),
           "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "SMS_GATEWAY_URL": sms.url,
           "TRIAGE_LEAD_EMAIL": TRIAGE_LEAD_MAIL, "CLINICAL_LEAD_EMAIL": CLINICAL_LEAD_MAIL,
           "CLINICAL_LEAD_PHONE": CLINICAL_LEAD_MOBILE, "SAFETY_DUTY_PHONE": DUTY_PHONE,
           "NOTIFIER_POLL_SECONDS": "0.1", "NOTIFIER_LEASE_SECONDS": "2"}
    try:
        with running_services(["notes", "notifier"], database_url=new_database_url,
                              topic_prefix=topic_prefix, log_dir=tmp_path / "logs",
                              extra_env=env, web_workers=1) as clinic:
            notes, notifier = clinic["notes"].url, clinic["notifier"].url

            def notes_events(kind: str) -> list[dict]:
                return [v for _k, _h, v in read_topic(settings, topics.NOTES)
                        if isinstance(v, dict) and v.get("type") == kind]

            def feed(recipient: str) -> list[dict]:
                got = requests.get(f"{notifier}/feed/{recipient}", headers=scheduler,
                                   timeout=10)
                assert got.status_code == 200, got.text
                return got.json()

            # -- the clinic as it stands: a care team, a directory, today's duty clinician
            _publish(settings, *_clinic_events(datetime.now(UTC) + timedelta(days=10)))
            for who, discipline in ((PSY, "psychology"), (PAIN_LEAD, "pain_medicine")):
                token = bearer(settings, "specialist", who, discipline=discipline,
                               provider_id=who)
                wait_for(lambda t=token: requests.get(f"{notes}/patients/{PATIENT}/care-team",
                                                      headers=t, timeout=10).status_code
                         == 200, timeout=60, what=f"{who} on the care team")
            for who in (PATIENT, PSY, PAIN_LEAD, DUTY):
                wait_for(lambda w=who: requests.get(f"{notifier}/recipients/{w}",
                                                    headers=scheduler, timeout=10
                                                    ).status_code == 200,
                         timeout=60, what=f"{who} in the notifier's directory")
            # the triage lead's new-referral email: the last one before the alert's
            wait_for(lambda: smtp.to(TRIAGE_LEAD_MAIL), timeout=60,
                     what="the triage lead's referral email")

            today = requests.get(f"{notes}/duty-rota/today", headers=admin, timeout=10)
            assert today.status_code == 200, today.text
            day = today.json()["date"]
            put = requests.put(f"{notes}/duty-rota/{day}", headers=admin, timeout=10,
                               json={"clinician_id": DUTY, "name": "Dr Duty"})
            assert put.status_code == 200, put.text
            on_duty = requests.get(f"{notes}/duty-rota/today", headers=admin, timeout=10).json()
            assert (on_duty["on_rota"], on_duty["clinician_id"]) == (True, DUTY)

            # -- 1. the psychologist's PHQ-9 with item 9 scored 2; the notifier's worker is
            # killed while the alert's first email is held at the SMTP server
            smtp.stall_at = smtp.rcpt_count + 1
            made = requests.post(f"{notes}/patients/{PATIENT}/notes", headers=psych,
                                 timeout=10, json={
                                     "kind": "intake_assessment",
                                     "sections": {"history": NOTE_TEXT},
                                     "measures": {"phq9": {"items": [2, 1, 2, 1, 1, 2, 1, 1, 2]}}})
            assert made.status_code == 201, made.text
            assert made.json()["safety_alert"] is True
            alert_id = made.json()["safety_alert_id"]
            assert smtp.stalled.wait(60), "the alert's first email never reached the server"
            clinic["notifier"].kill("worker")
            smtp.release.set()
            clinic["notifier"].start_worker()

            # -- 2. within seconds: the duty clinician's and duty phone's SMS, the
            # psychologist's urgent feed item on top, the emails
            def texts_to(number: str, wording: str) -> list[dict]:
                return [b for b in sms.bodies() if b["to"] == number and wording in b["message"]]

            for number in (DUTY_MOBILE, DUTY_PHONE, PSY_MOBILE):
                (text,) = wait_for(lambda n=number: texts_to(n, "URGENT safety alert"),
                                   timeout=90, what=f"the alert's SMS to {number}")
                assert f"{PATIENT_NAME} ({PATIENT})" in text["message"]
                assert "severity 2 of 3" in text["message"]
                assert f"Raised by Dr {PSY}" in text["message"]
                assert f"/#/patient/{PATIENT}" in text["message"]
            my_feed = wait_for(lambda: requests.get(f"{notifier}/my/feed", headers=psych,
                                                    timeout=10).json(),
                               timeout=30, what="the psychologist's feed")
            assert (my_feed[0]["priority"], my_feed[0]["alert_id"]) == ("urgent", alert_id)
            assert my_feed[0]["event_type"] == "patient.safety_alert"
            assert my_feed[0]["acknowledged_at"] is None
            for address in (PSY_MAIL, PAIN_LEAD_MAIL, TRIAGE_LEAD_MAIL):
                wait_for(lambda a=address: [m for m in smtp.to(a)
                                            if m["Subject"].startswith("URGENT safety alert")],
                         timeout=30, what=f"the alert's email to {address}")

            # -- 3. nobody acknowledges: the clinical lead hears of it, twice
            def escalation_mails(ordinal: str) -> list:
                return [m for m in smtp.to(CLINICAL_LEAD_MAIL)
                        if m["Subject"].startswith(f"ESCALATION {ordinal}:")]

            for n, ordinal in ((1, "1st"), (2, "2nd")):
                (mail,) = wait_for(lambda o=ordinal: escalation_mails(o), timeout=30,
                                   what=f"escalation {n}'s email to the clinical lead")
                assert "without acknowledgement" in SmtpServer.text(mail)
                for number in (CLINICAL_LEAD_MOBILE, DUTY_MOBILE, DUTY_PHONE):
                    wait_for(lambda o=ordinal, m=number: texts_to(m, f"{o} escalation"),
                             timeout=30, what=f"escalation {n}'s SMS to {number}")

            # -- 4. the psychologist acknowledges: escalation stops, the others are told
            acked = requests.post(f"{notes}/safety-alerts/{alert_id}/acknowledge",
                                  headers=psych, timeout=10, json={"action": "crisis_plan"})
            assert acked.status_code == 200, acked.text
            assert acked.json()["status"] == "acknowledged"
            escalations = acked.json()["escalations"]
            assert escalations >= 2
            wait_for(lambda: notes_events("patient.safety_alert_acknowledged"), timeout=30,
                     what="the acknowledgement on the topic")
            # a bounded observation window: two more intervals and the loop's polls
            time.sleep(2 * INTERVAL + 4 * POLL_SECONDS)
            escalated = [e["payload"] for e in notes_events("patient.safety_alert_escalated")]
            assert sorted({e["escalation"] for e in escalated}) == list(range(1, escalations + 1))
            read_back = requests.get(f"{notes}/safety-alerts/{alert_id}", headers=psych,
                                     timeout=10).json()
            assert (read_back["status"], read_back["escalations"]) == ("acknowledged",
                                                                       escalations)
            assert read_back["acknowledged_action"] == "crisis_plan"
            for other in (DUTY, PAIN_LEAD, "role:triage_lead", "role:clinical_lead"):
                items = wait_for(lambda o=other: [
                    i for i in feed(o) if i["event_type"] == "patient.safety_alert_acknowledged"],
                    timeout=30, what=f"{other}'s acknowledged item")
                assert len(items) == 1 and items[0]["alert_id"] == alert_id
                assert "crisis plan made" in items[0]["body"]
                assert all(i["priority"] != "urgent" or i["acknowledged_at"] for i in feed(other))
            # the acknowledger is not told of their own act; their item leaves the top
            mine = feed(PSY)
            assert not [i for i in mine if i["event_type"] == "patient.safety_alert_acknowledged"]
            assert [i["acknowledged_at"] is not None for i in mine
                    if i["alert_id"] == alert_id] == [True]

            # -- 5. exactly one message per (recipient, step, channel) through the SIGKILL
            def log() -> list[dict]:
                got = requests.get(f"{notifier}/notifications", headers=scheduler, timeout=10,
                                   params={"alert_id": alert_id, "limit": 500}).json()
                return got["items"]

            settled = wait_for(lambda: (rows := log()) and all(
                r["status"] in ("sent", "cancelled") for r in rows) and rows,
                timeout=60, what="every notification of the alert sent or cancelled")
            step_of = {e["id"]: "raised" for e in notes_events("patient.safety_alert")}
            step_of.update({e["id"]: f"escalation {e['payload']['escalation']}"
                            for e in notes_events("patient.safety_alert_escalated")})
            rows = {r["id"]: r for r in settled}
            arrivals = [(a.notification_id, "email", a.to) for a, _m in smtp.snapshot()
                        if a.notification_id in rows]
            arrivals += [(b["idempotency_key"], "sms", b["to"]) for b in sms.bodies()]
            assert all(b["idempotency_key"] == b["notification_id"] for b in sms.bodies())
            reached: dict[str, set[tuple[str, str, str]]] = {}  # step -> who, channel, to
            ids_per_slot: Counter[tuple[str, str, str, str]] = Counter()
            for nid, channel, to in set(arrivals):
                r = rows[nid]
                assert r["channel"] == channel and r["status"] == "sent", r
                step = step_of[r["event_id"]]
                reached.setdefault(step, set()).add((r["recipient_id"], channel, to))
                ids_per_slot[(r["recipient_id"], step, channel, to)] += 1
            assert all(n == 1 for n in ids_per_slot.values()), ids_per_slot
            assert all(n == 1 for n in Counter(arrivals).values()), Counter(arrivals)
            assert reached["raised"] == RAISED
            assert reached["escalation 1"] == ESCALATED
            assert reached["escalation 2"] == ESCALATED
            for n in range(3, escalations + 1):  # sent, or cancelled by the acknowledgement
                assert reached.get(f"escalation {n}", set()) <= ESCALATED
            sent = {r["id"] for r in settled if r["status"] == "sent"
                    and r["channel"] in ("email", "sms")}
            assert {nid for nid, _c, _t in arrivals} == sent

            # -- nowhere the note's text: messages, feeds, events, logs
            everything = [m.as_string() for _a, m in smtp.snapshot()]
            everything += [json.dumps(b) for b in sms.bodies()]
            everything += [json.dumps(feed(w)) for w in (PSY, PAIN_LEAD, DUTY,
                                                         "role:triage_lead",
                                                         "role:clinical_lead")]
            for topic in (topics.NOTES, topics.NOTIFICATIONS):
                everything += [json.dumps(v, default=str) for _k, _h, v in
                               read_topic(settings, topic)]
            everything += [p.read_text(errors="replace") for p in (tmp_path / "logs").iterdir()]
            for fragment in (NOTE_TEXT, "railway bridge", "saving up tablets"):
                assert not [t for t in everything if fragment in t], fragment
    finally:
        smtp.stop()
        sms.stop()
