"""The receivers `make up` runs for the notifier (simulator.receivers): a real process on
free ports, fed over real SMTP and HTTP, read back through the patients' mailbox."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
import requests

from shared.config import ROOT
from simulator.receivers import SmsGateway, SmtpServer
from tests.support.clinic import wait_for
from tests.support.processes import free_port

HOSTILE = '<script>alert("x")</script> & your appointment'


def _email(to: str, subject: str, body: str, notification_id: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "clinic@paincare.local"
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{notification_id}@paincare.local>"
    mail["X-PainCare-Notification"] = notification_id
    mail.set_content(body)
    return mail


@pytest.fixture
def receivers() -> Iterator[dict[str, int]]:
    ports = {"smtp": free_port(), "sms": free_port(), "web": free_port()}
    env = dict(os.environ, PYTHONPATH=str(ROOT), RECEIVER_SMTP_PORT=str(ports["smtp"]),
               RECEIVER_SMS_PORT=str(ports["sms"]), RECEIVER_WEB_PORT=str(ports["web"]))
    proc = subprocess.Popen([sys.executable, "-m", "simulator.receivers"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def healthy() -> bool:
        assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
        try:
            return requests.get(f"http://127.0.0.1:{ports['web']}/healthz",
                                timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(healthy, timeout=30, what="receivers answering /healthz")
        yield ports
    finally:
        proc.terminate()
        assert proc.wait(15) == 0  # SIGTERM is a clean stop, as `make down` expects


def test_the_mailbox_shows_every_email_and_sms_with_when_it_arrived(receivers):
    with smtplib.SMTP("127.0.0.1", receivers["smtp"], timeout=10) as smtp:
        smtp.send_message(_email("ana@example.org", HOSTILE, "Line one\nLine <b>two</b>\n",
                                 "n-email-1"))
    sms = requests.post(f"http://127.0.0.1:{receivers['sms']}/sms", timeout=5,
                        headers={"Idempotency-Key": "n-sms-1"},
                        json={"to": "+447700900001", "message": "Room 2 at 10:00",
                              "notification_id": "n-sms-1"})
    assert sms.status_code == 200

    web = f"http://127.0.0.1:{receivers['web']}"
    listed = requests.get(f"{web}/messages.json", timeout=5).json()
    by_channel = {m["channel"]: m for m in listed}
    assert set(by_channel) == {"email", "sms"} and len(listed) == 2
    email = by_channel["email"]
    assert (email["to"], email["subject"], email["notification_id"]) == (
        "ana@example.org", HOSTILE, "n-email-1")
    assert email["text"] == "Line one\nLine <b>two</b>\n"
    text = by_channel["sms"]
    assert (text["to"], text["subject"], text["text"], text["notification_id"]) == (
        "+447700900001", None, "Room 2 at 10:00", "n-sms-1")
    for m in listed:
        assert isinstance(m["received_at"], float) and m["received_at_iso"].endswith("+00:00")
    only_ana = requests.get(f"{web}/messages.json", params={"to": "ana@example.org"},
                            timeout=5).json()
    assert [m["channel"] for m in only_ana] == ["email"]

    page = requests.get(f"{web}/", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    assert "<b>two</b>" not in page.text and "&lt;b&gt;two&lt;/b&gt;" in page.text
    assert "ana@example.org" in page.text and "+447700900001" in page.text
    assert requests.get(f"{web}/nowhere", timeout=5).status_code == 404


def test_a_gateway_that_cannot_read_the_body_answers_400_and_keeps_nothing(receivers):
    web = f"http://127.0.0.1:{receivers['web']}"
    bad = requests.post(f"http://127.0.0.1:{receivers['sms']}/sms", data=b"not json",
                        timeout=5)
    assert bad.status_code == 400
    assert requests.get(f"{web}/messages.json", timeout=5).json() == []


def test_arrivals_pair_with_messages_and_only_the_newest_are_kept():
    smtp = SmtpServer(keep=3).start()
    try:
        with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as client:
            for i in range(5):
                client.send_message(_email(f"p{i}@example.org", f"s{i}", "hi", f"n{i}"))
        assert [a.notification_id for a in smtp.arrivals] == ["n2", "n3", "n4"]
        assert smtp.ids() == ["n2", "n3", "n4"]
        assert [(a.to, a.subject) for a, _m in smtp.snapshot()] == [
            ("p2@example.org", "s2"), ("p3@example.org", "s3"), ("p4@example.org", "s4")]
        assert set(smtp.arrival_times()) == {"n2", "n3", "n4"}
        assert smtp.arrivals[0].message_id == "<n2@paincare.local>"
        subject = "Your visit with Dr. Núñez in Room 2 on Monday 2 March 2026 at 10:00 — early"
        with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as client:
            client.send_message(_email("José <jose@example.org>", subject, "hi", "n5"))
        assert (smtp.arrivals[-1].to, smtp.arrivals[-1].subject) == (
            "José <jose@example.org>", subject)  # as a person reads it: decoded, unfolded
    finally:
        smtp.stop()


def test_the_sms_gateway_listens_on_the_port_it_is_given():
    port = free_port()
    gateway = SmsGateway(port=port).start()
    try:
        assert gateway.url == f"http://127.0.0.1:{port}/sms"
        requests.post(gateway.url, json={"to": "+1", "message": "m"}, timeout=5)
        (body,) = gateway.bodies()
        assert body["to"] == "+1" and isinstance(body["received_at"], float)
        assert body["received_at_iso"].endswith("+00:00")
    finally:
        gateway.stop()
