"""A referral desk over a real database (SQLite and PostgreSQL), driven through HTTP."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from services.referrals.app import create_app
from services.referrals.db import HistoryRow, ReferralRow
from services.referrals.wiring import build_runtime
from shared.runtime import Runtime
from tests.support.clinic import bearer


@dataclass
class Desk:
    """The referrals service under test and a token for each kind of person."""

    client: FlaskClient
    runtime: Runtime
    scheduler: dict[str, str]
    lead: dict[str, str]  # a pain-medicine specialist who is also the triage lead
    physio: dict[str, str]
    admin: dict[str, str]

    def refer(self, **changes: Any) -> dict[str, Any]:
        resp = self.client.post("/referrals", json=referral_body(**changes),
                                headers=self.scheduler)
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()

    def triage(self, referral_id: str, **changes: Any) -> Any:
        return self.client.post(f"/referrals/{referral_id}/triage",
                                json=triage_body(**changes), headers=self.lead)

    def counts(self) -> tuple[int, int, int]:
        """(referrals, history lines, outbox events): what a refused request must not add."""
        with self.runtime.db.transaction() as s:
            return (s.execute(select(func.count()).select_from(ReferralRow)).scalar_one(),
                    s.execute(select(func.count()).select_from(HistoryRow)).scalar_one(),
                    s.execute(select(func.count())
                              .select_from(self.runtime.tables.outbox)).scalar_one())

    def outbox_types(self) -> list[str]:
        outbox = self.runtime.tables.outbox
        with self.runtime.db.transaction() as s:
            return list(s.scalars(select(outbox.c.event_type).order_by(outbox.c.seq)))


def referral_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient": {"id": "pat-ann", "name": "Ann Whitfield", "date_of_birth": "1958-07-14",
                    "contact": {"email": "ann.whitfield@example.org",
                                "phone": "+44 7700 900123"},
                    "preferred_channel": "email"},
        "referrer": {"name": "Dr Priya Patel", "organisation": "Elm Street Surgery",
                     "contact": {"email": "p.patel@elm.example.org"}},
        "condition": "diabetic_neuropathy",
        "pain_duration": {"value": 9, "unit": "months"},
        "medications": [{"name": "pregabalin", "dose": "75 mg twice daily"},
                        {"name": "amitriptyline", "dose": "10 mg at night"}],
        "reason": "Burning pain in both feet despite pregabalin; poor sleep.",
        "attachments": [{"filename": "gp-letter.pdf", "content_type": "application/pdf",
                         "size_bytes": 48211}],
    }
    body.update(changes)
    return body


def triage_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "priority": "soon",
        "screening": {"tool": "dn4", "score": 6},
        "pathway": [
            {"discipline": "pain_medicine", "visit_minutes": 45, "sessions": 1,
             "interval_days": 0},
            {"discipline": "physical_therapy", "visit_minutes": 45, "sessions": 6,
             "interval_days": 7},
            {"discipline": "psychology", "visit_minutes": 50, "sessions": 8,
             "interval_days": 14},
        ],
    }
    body.update(changes)
    return body


def make_desk(settings: Any) -> Desk:
    runtime = build_runtime(settings)
    app = create_app(runtime=runtime)
    logging.getLogger("shared.web").setLevel(logging.WARNING)
    return Desk(app.test_client(), runtime, bearer(settings, "scheduler", "sam-scheduler"),
                bearer(settings, "specialist", "dr-okafor", discipline="pain_medicine",
                       also=("triage_lead",)),
                bearer(settings, "specialist", "pt-lee", discipline="physical_therapy"),
                bearer(settings, "admin", "root"))


@pytest.fixture
def desk(settings_for: Any) -> Iterator[Desk]:
    desk = make_desk(settings_for("referrals"))
    yield desk
    desk.runtime.db.dispose()
