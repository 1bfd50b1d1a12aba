"""A small clinic for scheduling stories: the app on a real database (SQLite and
PostgreSQL), a clock the test moves, tokens for each role, and the events staged in the
outbox."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.scheduling.app import create_app
from tests.support.clinic import bearer


@dataclass
class Clock:
    now: datetime = datetime(2026, 3, 20, 8, tzinfo=UTC)  # Fri 20 Mar 2026, before the DST change

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@dataclass
class Clinic:
    client: object
    app: object
    clock: Clock
    admin: dict
    scheduler: dict
    ids: dict[str, str] = field(default_factory=dict)

    def post(self, path: str, body: dict, headers: dict | None = None):  # type: ignore[no-untyped-def]
        return self.client.post(path, json=body, headers=headers or self.scheduler)

    def get(self, path: str, headers: dict | None = None, **params: object):  # type: ignore[no-untyped-def]
        return self.client.get(path, query_string=params, headers=headers or self.scheduler)

    def book(self, provider: str, start: str, minutes: int = 45, patient: str = "p-1",
             **extra: object):  # type: ignore[no-untyped-def]
        return self.post("/appointments", {"patient_id": patient,
                                           "provider_id": self.ids[provider],
                                           "start": start, "minutes": minutes, **extra})

    def events(self, event_type: str | None = None) -> list[dict]:
        runtime = self.app.extensions["paincare.runtime"]
        outbox = runtime.tables.outbox
        with runtime.db.transaction() as s:
            rows = s.execute(select(outbox.c.body).order_by(outbox.c.seq)).scalars().all()
        found = [json.loads(bytes(r)) for r in rows]
        return [e for e in found if event_type is None or e["type"] == event_type]


@pytest.fixture
def clinic(settings_for) -> Clinic:
    """Dr Okafor (pain medicine), Sam Reid (PT) and Dr Lind (psychology) work Mon-Fri
    09:00-17:00 London time; a consulting room and a PT gym."""
    settings = settings_for("scheduling")
    clock = Clock()
    app = create_app(settings, clock=clock)
    c = Clinic(app.test_client(), app, clock, bearer(settings, "admin"),
               bearer(settings, "scheduler"))
    for key, name, discipline, types in (
            ("pain", "Dr Okafor", "pain_medicine", ["initial", "follow_up"]),
            ("pt", "Sam Reid", "physical_therapy", []),
            ("psych", "Dr Lind", "psychology", ["cbt"])):
        made = c.post("/providers", {"name": name, "discipline": discipline,
                                     "visit_types": types, "email": f"{key}@clinic.test"},
                      c.admin)
        assert made.status_code == 201, made.get_json()
        c.ids[key] = made.json["id"]
        week = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in range(5)]
        put = c.client.put(f"/providers/{c.ids[key]}/template", json={"blocks": week},
                           headers=c.admin)
        assert put.status_code == 200, put.get_json()
    for key, name, kind, fit in (("room1", "Consulting room 1", "consulting_room",
                                  ["pain_medicine", "psychology"]),
                                 ("gym", "PT gym", "pt_gym", ["physical_therapy"])):
        made = c.post("/rooms", {"name": name, "kind": kind, "fit_for": fit}, c.admin)
        assert made.status_code == 201, made.get_json()
        c.ids[key] = made.json["id"]
    yield c
    app.extensions["paincare.runtime"].db.dispose()
