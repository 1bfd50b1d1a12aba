"""The FHIR gateway beside a real referrals service (each with its own database, SQLite
and PostgreSQL): intake goes through referrals' own HTTP API, and the events referrals
stages in its outbox are fed to the gateway's read model through its inbox."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from services.fhir.app import create_app as create_fhir
from services.fhir.handlers import APPLIERS, SUBSCRIPTION, handle
from services.fhir.referrals_client import Answer
from services.fhir.wiring import build_runtime as fhir_runtime
from services.referrals.app import create_app as create_referrals
from services.referrals.wiring import build_runtime as referrals_runtime
from shared.events import Envelope, parse_event
from shared.runtime import Runtime
from tests.support.clinic import bearer


class InProcessReferrals:
    """The referrals service's real app, called as the gateway calls it over HTTP."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.calls = 0

    def create(self, body: dict[str, Any], *, idempotency_key: str | None,
               authorization: str) -> Answer:
        self.calls += 1
        headers = {"Authorization": authorization}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        resp = self.client.post("/referrals", json=body, headers=headers)
        return Answer(resp.status_code, resp.get_json() or {})


@dataclass
class Gateway:
    fhir: FlaskClient
    referrals: FlaskClient
    intake: InProcessReferrals
    fhir_rt: Runtime
    referrals_rt: Runtime
    scheduler: dict[str, str]
    lead: dict[str, str]
    physio: dict[str, str]
    _fed: int = 0

    def sync(self) -> int:
        """Every event referrals has staged since last time, into the read model."""
        outbox = self.referrals_rt.tables.outbox
        with self.referrals_rt.db.transaction() as s:
            rows = list(s.execute(select(outbox.c.seq, outbox.c.body)
                                  .where(outbox.c.seq > self._fed).order_by(outbox.c.seq)))
        for seq, body in rows:
            self.feed(parse_event(body))
            self._fed = seq
        return len(rows)

    def feed(self, envelope: Envelope) -> None:
        """As the consumer does: types the gateway has no handler for are passed by."""
        if envelope.type not in APPLIERS:
            return
        with self.fhir_rt.db.transaction() as s:
            if self.fhir_rt.inbox.first_time(s, f"fhir.{SUBSCRIPTION}", envelope):
                handle(s, envelope, self.fhir_rt)

    def get(self, path: str, who: dict[str, str] | None = None) -> Any:
        resp = self.fhir.get(path, headers=who or self.scheduler)
        assert resp.status_code == 200, (path, resp.get_json())
        assert resp.mimetype == "application/fhir+json"
        return resp.get_json()


@pytest.fixture
def gateway(new_database_url, settings_for) -> Iterator[Gateway]:
    yield from _gateway(new_database_url, settings_for)


@pytest.fixture
def kafka_gateway(new_database_url, settings_for, topic_prefix, kafka_bootstrap
                  ) -> Iterator[Gateway]:
    """The gateway whose outbox goes to the real broker (its worker's relay sends it)."""
    yield from _gateway(new_database_url, settings_for, topic_prefix=topic_prefix,
                        kafka_enabled=True, kafka_bootstrap=kafka_bootstrap)


def _gateway(new_database_url, settings_for, **fhir_options: Any) -> Iterator[Gateway]:
    ref_settings = settings_for("referrals", database_url=new_database_url("referrals"))
    ref_rt = referrals_runtime(ref_settings)
    referrals = create_referrals(runtime=ref_rt).test_client()
    intake = InProcessReferrals(referrals)
    fhir_settings = settings_for("fhir", database_url=new_database_url("fhir"),
                                 **fhir_options)
    rt = fhir_runtime(fhir_settings)
    app = create_fhir(runtime=rt, referrals=intake)
    web_log = logging.getLogger("shared.web")
    level = web_log.level
    web_log.setLevel(logging.WARNING)   # quiet access lines, and back as it was afterwards
    yield Gateway(app.test_client(), referrals, intake, rt, ref_rt,
                   bearer(fhir_settings, "scheduler", "sam-scheduler"),
                   bearer(fhir_settings, "specialist", "dr-okafor",
                          discipline="pain_medicine", also=("triage_lead",),
                          provider_id="prov-okafor"),
                   bearer(fhir_settings, "specialist", "pt-lee",
                          discipline="physical_therapy"))
    web_log.setLevel(level)
