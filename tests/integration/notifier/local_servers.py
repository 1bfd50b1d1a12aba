"""Real receivers for the notifier's channels, run by the tests on free local ports: an
SMTP server (aiosmtpd) that keeps every message, an SMS gateway that answers what the
test tells it to, and a clock the test moves."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from tests.support.processes import free_port


class TestClock:
    """`now` for the notifier, moved by the test."""

    __test__ = False

    def __init__(self, start: datetime | None = None) -> None:
        self.at = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at

    def set(self, at: datetime) -> datetime:
        """SQLite hands datetimes back naive; they are UTC."""
        self.at = at if at.tzinfo else at.replace(tzinfo=UTC)
        return self.at


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
        with self.server.lock:
            self.server.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    """A real SMTP server on 127.0.0.1; `start()` and `stop()` as often as a test likes."""

    port: int = field(default_factory=free_port)
    messages: list[Message] = field(default_factory=list)
    stall_at: int | None = None
    rcpt_count: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.stalled = threading.Event()
        self.release = threading.Event()
        self._controller: Controller | None = None

    def start(self) -> SmtpServer:
        self._controller = Controller(_Mailbox(self), hostname="127.0.0.1", port=self.port)
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

    @staticmethod
    def text(message: Message) -> str:
        return message.get_payload(decode=True).decode()  # type: ignore[union-attr]


class SmsGateway:
    """An HTTP SMS gateway: records each POST and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[dict] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                body["idempotency_key"] = self.headers.get("Idempotency-Key")
                gateway.received.append(body)
                self.send_response(gateway.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> SmsGateway:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
