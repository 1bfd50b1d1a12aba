"""Where the notifier's email and SMS land when the clinic runs on one machine.

The tests start `SmtpServer` and `SmsGateway` on free ports and steer them (stall a
message, answer an error); `make up` and the load and fault proofs run this module as a
process (`python -m simulator.receivers`) so that every notification is really received
and a person can read it at the patients' mailbox (http://127.0.0.1:8025/).

Each arrival carries its wall-clock time, so a load test can tell when a patient actually
got a message, not just when the notifier marked it sent.

Environment: RECEIVER_SMTP_PORT (1025), RECEIVER_SMS_PORT (8099, POST /sms),
RECEIVER_WEB_PORT (8025). The defaults are the notifier's own (services/notifier/wiring.py).
Everything binds 127.0.0.1 only: the messages are patients' messages.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"
KEEP = 2000  # newest messages the long-running process holds; older ones are dropped


def free_port() -> int:
    """A port free right now; the SMTP server needs its port before it starts (a test
    hands it to the notifier, or asks for a port that refuses connections)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Arrival:
    """One email as the SMTP server accepted it, and when."""

    to: str
    subject: str
    notification_id: str | None
    message_id: str | None
    received_at: float  # epoch seconds, time.time() at the end of DATA

    @property
    def received_at_iso(self) -> str:
        return iso_utc(self.received_at)


def _header(message: Message, name: str) -> str:
    """A header as a person reads it: RFC 2047 words decoded, folding undone."""
    raw = message[name]
    if raw is None:
        return ""
    try:
        return str(make_header(decode_header(str(raw))))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return " ".join(str(raw).split())


def _trim(items: list[Any], keep: int | None) -> None:
    if keep is not None and len(items) > keep:
        del items[: len(items) - keep]


class _Mailbox:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        """A test can stall the n-th message here, before it is accepted (no DATA yet)."""
        number = self.server.rcpt_count = self.server.rcpt_count + 1
        if number == self.server.stall_at:
            self.server.stalled.set()
            while not self.server.release.is_set():
                await asyncio.sleep(0.05)
            return "451 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        message = message_from_bytes(envelope.content)
        arrival = Arrival(to=_header(message, "To"), subject=_header(message, "Subject"),
                          notification_id=message["X-PainCare-Notification"],
                          message_id=message["Message-ID"], received_at=time.time())
        with self.server.lock:
            self.server.messages.append(message)
            self.server.arrivals.append(arrival)
            _trim(self.server.messages, self.server.keep)
            _trim(self.server.arrivals, self.server.keep)
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    """A real SMTP server on 127.0.0.1; `start()` and `stop()` as often as a test likes.

    `messages[i]` and `arrivals[i]` describe the same email; `keep` bounds both."""

    port: int = field(default_factory=free_port)
    messages: list[Message] = field(default_factory=list)
    stall_at: int | None = None
    rcpt_count: int = 0
    keep: int | None = None
    arrivals: list[Arrival] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.stalled = threading.Event()
        self.release = threading.Event()
        self._controller: Controller | None = None

    def start(self) -> SmtpServer:
        self._controller = Controller(_Mailbox(self), hostname=HOST, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self.release.set()
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    def ids(self) -> list[str]:
        with self.lock:
            return [m["X-PainCare-Notification"] for m in self.messages]

    def snapshot(self) -> list[tuple[Arrival, Message]]:
        """A consistent copy of (arrival, message) pairs, oldest first."""
        with self.lock:
            return list(zip(self.arrivals, self.messages, strict=True))

    def arrival_times(self) -> dict[str, float]:
        """notification id -> when it arrived (the first time, should one come twice)."""
        with self.lock:
            times: dict[str, float] = {}
            for a in self.arrivals:
                if a.notification_id is not None:
                    times.setdefault(a.notification_id, a.received_at)
            return times

    @staticmethod
    def text(message: Message) -> str:
        """The text/plain body (the first part of one with a calendar invitation)."""
        return _plain_text(message).replace("\n", "\r\n") if message.is_multipart() \
            else message.get_payload(decode=True).decode()  # type: ignore[union-attr]

    @staticmethod
    def calendar(message: Message) -> tuple[str, str] | None:
        """(the `method` parameter, the text) of the text/calendar part, if any."""
        for part in message.walk():
            if part.get_content_type() == "text/calendar":
                payload = part.get_payload(decode=True)
                return (part.get_param("method") or "",
                        payload.decode(part.get_content_charset() or "utf-8"))
        return None


def _plain_text(message: Message) -> str:
    """The text/plain body of any email, never raising: the mailbox shows what came."""
    for part in message.walk():
        if part.get_content_maintype() == "multipart":
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            text = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
            return text.replace("\r\n", "\n")
    return ""


class SmsGateway:
    """An HTTP SMS gateway: records each POST (with `received_at`, epoch seconds, and
    `received_at_iso`) and answers `status`. `port=0` takes a free port."""

    def __init__(self, status: int = 200, port: int = 0, keep: int | None = None) -> None:
        self.status = status
        self.keep = keep
        self.received: list[dict] = []
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(length))
                except ValueError:
                    body = None
                if not isinstance(body, dict):
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                now = time.time()
                body["idempotency_key"] = self.headers.get("Idempotency-Key")
                body["received_at"] = now
                body["received_at_iso"] = iso_utc(now)
                gateway._record(body)
                self.send_response(gateway.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, port), Handler)
        self.port: int = self.server.server_address[1]
        self.url = f"http://{HOST}:{self.port}/sms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _record(self, body: dict) -> None:
        with self.lock:
            self.received.append(body)
            _trim(self.received, self.keep)

    def bodies(self) -> list[dict]:
        """A copy of what came, oldest first, safe to read while messages arrive."""
        with self.lock:
            return [dict(b) for b in self.received]

    def start(self) -> SmsGateway:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Received:
    """One email or SMS as the patients' mailbox shows it."""

    channel: str
    to: str
    subject: str | None
    text: str
    notification_id: str | None
    received_at: float
    received_at_iso: str


def collect(smtp: SmtpServer, sms: SmsGateway, keep: int = KEEP) -> list[Received]:
    """Both channels merged, oldest first, the newest `keep` only."""
    found = [Received("email", a.to, a.subject, _plain_text(m), a.notification_id,
                      a.received_at, a.received_at_iso) for a, m in smtp.snapshot()]
    for b in sms.bodies():
        found.append(Received("sms", str(b.get("to", "")), None, str(b.get("message", "")),
                              b.get("notification_id") or b.get("idempotency_key"),
                              b["received_at"], b["received_at_iso"]))
    found.sort(key=lambda r: r.received_at)
    return found[-keep:]


_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem; color: #1d2733; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
p.note { color: #5a6675; margin: 0 0 1.25rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .45rem .6rem;
         border-bottom: 1px solid #e1e5ea; }
th { background: #f4f6f8; font-weight: 600; }
td.when { white-space: nowrap; font-variant-numeric: tabular-nums; }
td.text { white-space: pre-wrap; color: #38434f; }
span.channel { display: inline-block; padding: 0 .45rem; border-radius: .6rem;
               font-size: .8rem; background: #e4edf9; }
span.sms { background: #e6f4e6; }
"""


def render_page(messages: list[Received], lines: int = 4) -> str:
    """The mailbox as HTML, newest first; every value is escaped (subjects and bodies
    are clinic data that can hold anything)."""
    e = html.escape
    rows = []
    for m in reversed(messages):
        first = "\n".join(m.text.strip().splitlines()[:lines])
        rows.append(
            f'<tr><td class="when">{e(m.received_at_iso.replace("T", " ")[:23])}</td>'
            f'<td><span class="channel {e(m.channel)}">{e(m.channel)}</span></td>'
            f"<td>{e(m.to)}</td><td>{e(m.subject or '')}</td>"
            f'<td class="text">{e(first)}</td></tr>')
    body = "\n".join(rows) or '<tr><td colspan="5">Nothing received yet.</td></tr>'
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"refresh\" content=\"10\">"
        "<title>PainCare: patients' mailbox</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>Patients' mailbox</h1>"
        f"<p class=\"note\">{len(messages)} messages (the newest {KEEP} are kept), newest "
        "first; every email and SMS the notifier sent on this machine. "
        "<a href=\"messages.json\">JSON</a></p>"
        "<table><thead><tr><th>Received (UTC)</th><th>Channel</th><th>To</th>"
        f"<th>Subject</th><th>Text</th></tr></thead><tbody>\n{body}\n</tbody></table>"
        "</body></html>\n")


class MailboxWeb:
    """The patients' mailbox: `GET /` (HTML), `GET /messages.json` (optionally
    `?to=<address>`), `GET /healthz`."""

    def __init__(self, smtp: SmtpServer, sms: SmsGateway, port: int = 0) -> None:
        mailbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/healthz":
                    self._answer(200, "application/json", b'{"status": "ok"}')
                elif url.path == "/messages.json":
                    found = collect(mailbox.smtp, mailbox.sms)
                    to = parse_qs(url.query).get("to")
                    if to:
                        found = [m for m in found if m.to in to]
                    data = json.dumps([asdict(m) for m in found]).encode()
                    self._answer(200, "application/json", data)
                elif url.path in ("/", "/index.html"):
                    page = render_page(collect(mailbox.smtp, mailbox.sms)).encode()
                    self._answer(200, "text/html; charset=utf-8", page)
                else:
                    self._answer(404, "text/plain; charset=utf-8", b"not found\n")

            def _answer(self, code: int, content_type: str, data: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: object) -> None:
                pass

        self.smtp, self.sms = smtp, sms
        self.server = ThreadingHTTPServer((HOST, port), Handler)
        self.port: int = self.server.server_address[1]
        self.url = f"http://{HOST}:{self.port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> MailboxWeb:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> int:
    """Run until SIGTERM or SIGINT (`make down` sends SIGTERM to the process group)."""
    smtp_port = int(os.environ.get("RECEIVER_SMTP_PORT", "1025"))
    sms_port = int(os.environ.get("RECEIVER_SMS_PORT", "8099"))
    web_port = int(os.environ.get("RECEIVER_WEB_PORT", "8025"))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    smtp = SmtpServer(port=smtp_port, keep=KEEP).start()
    sms = SmsGateway(port=sms_port, keep=KEEP).start()
    web = MailboxWeb(smtp, sms, port=web_port).start()
    print(f"receivers: SMTP {HOST}:{smtp.port}, SMS {sms.url}, mailbox {web.url}", flush=True)
    try:
        stop.wait()
    finally:
        web.stop()
        sms.stop()
        smtp.stop()
    print("receivers: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
