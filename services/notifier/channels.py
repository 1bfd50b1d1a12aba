"""The ways a notification leaves the clinic: email over SMTP, SMS through an HTTP
gateway, and the in-app feed (which is the notifications table itself).

Each carries the notification's id (Message-ID, Idempotency-Key) so that a receiver able
to de-duplicate can close the one window where we might send twice: a crash after the
send and before the row is marked sent.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import requests

from services.notifier.calendar import method_of


@dataclass(frozen=True)
class Outgoing:
    notification_id: str
    channel: str
    address: str
    subject: str
    body: str
    calendar: str | None = None  # an RFC 5545 invitation, attached to emails


class Channel(Protocol):
    def send(self, message: Outgoing) -> None: ...

    def close(self) -> None: ...


class ChannelError(Exception):
    """The channel refused or could not be reached; the notification will be retried."""


class SmtpMailer:
    """Email through a real SMTP server; one connection reused across a batch.

    A clinic's relay wants STARTTLS (the certificate checked against the system's trust
    store, or `ca_file`) and a login: with `starttls` the connection is upgraded before
    anything is said, and a relay that does not offer it is refused rather than sent to
    in clear; `username` logs in (only over TLS, unless the relay is this machine's).
    """

    def __init__(self, host: str, port: int, sender: str, timeout: float = 10.0, *,
                 starttls: bool = False, username: str = "", password: str = "",
                 ca_file: str = "") -> None:
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout
        self.starttls, self.username, self.password = starttls, username, password
        self.ca_file = ca_file
        self._smtp: smtplib.SMTP | None = None

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            try:
                if self.starttls:
                    context = ssl.create_default_context(cafile=self.ca_file or None)
                    smtp.starttls(context=context)  # SMTPNotSupportedError if not offered
                    smtp.ehlo()
                if self.username:
                    if not self.starttls and self.host not in ("127.0.0.1", "localhost", "::1"):
                        raise ChannelError(f"SMTP {self.host}:{self.port}: refusing to send "
                                           "the password in clear; set SMTP_STARTTLS=true")
                    smtp.login(self.username, self.password)
            except BaseException:
                smtp.close()
                raise
            self._smtp = smtp
        return self._smtp

    def send(self, message: Outgoing) -> None:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.address
        mail["Subject"] = message.subject
        mail["Message-ID"] = f"<{message.notification_id}@paincare.local>"
        mail["X-PainCare-Notification"] = message.notification_id
        mail.set_content(message.body)
        if message.calendar:
            attach_calendar(mail, message.calendar)
        try:
            self._connection().send_message(mail)
        except ChannelError:
            self.close()
            raise
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise ChannelError(f"SMTP {self.host}:{self.port}: {exc!r}"[:900]) from exc

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self._smtp = None


def attach_calendar(mail: EmailMessage, text: str) -> None:
    """The invitation as calendar programs look for it: a `text/calendar; method=...`
    alternative part (Outlook, Gmail, Apple Mail offer "add to calendar" from it) and the
    same text as an `invite.ics` attachment for the others."""
    method = method_of(text)
    mail.add_alternative(text, subtype="calendar", params={"method": method})
    mail.add_attachment(text.encode("utf-8"), maintype="application", subtype="ics",
                        filename="invite.ics")


class SmsGateway:
    """SMS through an HTTP gateway: POST JSON, any 2xx is accepted."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url, self.timeout = url, timeout
        self._http = requests.Session()

    def send(self, message: Outgoing) -> None:
        try:
            resp = self._http.post(self.url, timeout=self.timeout,
                                   headers={"Idempotency-Key": message.notification_id},
                                   json={"to": message.address, "message": message.body,
                                         "notification_id": message.notification_id})
        except requests.RequestException as exc:
            raise ChannelError(f"SMS gateway unreachable: {exc!r}"[:900]) from exc
        if resp.status_code // 100 != 2:
            raise ChannelError(f"SMS gateway answered {resp.status_code}")

    def close(self) -> None:
        pass


class InAppFeed:
    """The feed is read from the notifications table; delivering is marking it sent."""

    def send(self, message: Outgoing) -> None:
        pass

    def close(self) -> None:
        pass


class RestHook:
    """A referring system's FHIR R4 Subscription endpoint: POST the Task (or nothing,
    when the Subscription asked for no payload); any 2xx is accepted. The notification's
    id goes as Idempotency-Key so the receiver can drop a repeat."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._http = requests.Session()

    def send(self, message: Outgoing) -> None:
        headers = {"Idempotency-Key": message.notification_id}
        if message.body:
            headers["Content-Type"] = "application/fhir+json"
        try:
            resp = self._http.post(message.address, data=message.body.encode("utf-8"),
                                   headers=headers, timeout=self.timeout,
                                   allow_redirects=False)
        except requests.RequestException as exc:
            raise ChannelError(f"rest-hook endpoint unreachable: {type(exc).__name__}"
                               ) from exc
        if resp.status_code // 100 != 2:
            raise ChannelError(f"rest-hook endpoint answered {resp.status_code}")

    def close(self) -> None:
        pass
