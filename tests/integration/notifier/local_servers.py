"""Real receivers for the notifier's channels, run by the tests on free local ports: an
SMTP server (aiosmtpd) that keeps every message, an SMS gateway that answers what the
test tells it to (both live in simulator.receivers, which `make up` runs too), and a
clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simulator.receivers import SmsGateway, SmtpServer

__all__ = ["SmsGateway", "SmtpServer", "TestClock"]


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
