"""Scheduling publishes a provider's capacity (provider.capacity_changed, keyed by the
provider's id) in the transaction that changes it: a template set, leave or a closure
added or removed. A refused change publishes nothing."""

from __future__ import annotations

import json
from types import SimpleNamespace

from sqlalchemy import select

from shared.events import parse_event


def staged(clinic) -> list[tuple[str, dict]]:  # type: ignore[no-untyped-def]
    """(key, event) of every provider.capacity_changed in scheduling's outbox, in order."""
    runtime = clinic.app.extensions["paincare.runtime"]
    outbox = runtime.tables.outbox
    with runtime.db.transaction() as s:
        rows = s.execute(select(outbox.c.message_key, outbox.c.body)
                         .where(outbox.c.event_type == "provider.capacity_changed")
                         .order_by(outbox.c.seq)).all()
    for _key, body in rows:  # every one valid against the registered schema
        parse_event(bytes(body))
    return [(key, json.loads(bytes(body))["payload"]) for key, body in rows]


def test_a_template_publishes_the_providers_capacity(clinic):
    found = staged(clinic)
    assert [k for k, _p in found] == [clinic.ids["pain"], clinic.ids["pt"], clinic.ids["psych"]]
    key, payload = found[0]
    assert payload["provider_id"] == key
    assert payload["discipline"] == "pain_medicine"
    assert payload["timezone"] == "Europe/London"
    assert payload["exceptions"] == []
    assert [(b["weekday"], b["start"], b["end"]) for b in payload["blocks"]] == [
        (d, "09:00:00", "17:00:00") for d in range(5)]

    overlapping = [{"weekday": 0, "start": "09:00", "end": "12:00"},
                   {"weekday": 0, "start": "11:00", "end": "13:00"}]
    refused = clinic.client.put(f"/providers/{clinic.ids['pain']}/template",
                                json={"blocks": overlapping}, headers=clinic.admin)
    assert refused.status_code == 422
    assert len(staged(clinic)) == 3


def test_leave_and_closures_publish_the_capacity_of_whom_they_touch(clinic):
    before = len(staged(clinic))
    leave = clinic.post("/exceptions", {"provider_id": clinic.ids["pain"], "kind": "leave",
                                        "first_day": "2026-03-24"})
    assert leave.status_code == 201, leave.get_json()
    found = staged(clinic)[before:]
    assert [k for k, _p in found] == [clinic.ids["pain"]]
    (off,) = found[0][1]["exceptions"]
    assert (off["exception_id"], off["kind"], off["clinic_wide"]) == (
        leave.json["id"], "leave", False)
    assert off["start"] == "2026-03-24T00:00:00+00:00"  # local midnight, still GMT

    closure = clinic.post("/exceptions", {"kind": "closure", "first_day": "2026-03-30"})
    assert closure.status_code == 201, closure.get_json()
    found = staged(clinic)[before + 1:]
    assert sorted(k for k, _p in found) == sorted(clinic.ids[k] for k in ("pain", "pt", "psych"))
    pain = next(p for k, p in found if k == clinic.ids["pain"])
    assert [(e["kind"], e["clinic_wide"]) for e in pain["exceptions"]] == [
        ("leave", False), ("closure", True)]
    assert pain["exceptions"][1]["start"] == "2026-03-29T23:00:00+00:00"  # BST by then

    gone = clinic.client.delete(f"/exceptions/{leave.json['id']}", headers=clinic.scheduler)
    assert gone.status_code == 204
    key, payload = staged(clinic)[-1]
    assert key == clinic.ids["pain"]
    assert [e["kind"] for e in payload["exceptions"]] == ["closure"]
    missing = clinic.client.delete(f"/exceptions/{leave.json['id']}", headers=clinic.scheduler)
    assert missing.status_code == 404


def test_consumers_that_do_not_handle_it_skip_it_and_the_dashboard_keeps_it(
        settings_for, new_database_url):
    """Every worker's subscriptions on scheduling.events: only the dashboard's read model
    handles provider.capacity_changed; the others pass it by (no inbox row, no dead
    letter), as EventConsumer does with any type a subscription has no handler for."""
    from importlib import import_module

    from services.dashboard.db import ReadModelStore
    from services.dashboard.handlers import read_model_subscription
    from shared import topics
    from shared.kafka import EventConsumer
    from tests.unit.dashboard.stories import capacity

    event = capacity("pm1", "pain_medicine")
    record = SimpleNamespace(value=event.to_bytes(), key=b"pm1", topic=topics.SCHEDULING,
                             partition=0, offset=0, headers=[])
    for service in ("referrals", "notes", "notifier", "dashboard"):
        runtime = import_module(f"services.{service}.wiring").build_runtime(
            settings_for(service, database_url=new_database_url(service)))
        runtime.create_schema()
        subs = import_module(f"services.{service}.worker").subscriptions(runtime)
        if service == "dashboard":
            with runtime.db.transaction() as s:
                subs.append(read_model_subscription(ReadModelStore(), ReadModelStore()
                                                    .generation(s)))
        for sub in subs:
            if topics.SCHEDULING not in sub.topics:
                continue
            consumer = EventConsumer(runtime.settings, runtime.db, runtime.tables, sub)
            parked: list[str] = []
            consumer.dead_letter = (  # type: ignore[method-assign]
                lambda _r, reason, _parked=parked, **_kw: _parked.append(reason))
            consumer.handle_record(record)
            with runtime.db.transaction() as s:
                inbox = runtime.tables.inbox
                seen = s.execute(select(inbox.c.event_id)
                                 .where(inbox.c.event_id == event.id)).all()
            assert parked == [], (service, sub.name, parked)
            handles = "provider.capacity_changed" in sub.handlers
            assert handles == (service == "dashboard"), (service, sub.name)
            assert len(seen) == int(handles), (service, sub.name)
        if service == "dashboard":
            with runtime.db.transaction() as s:
                assert ReadModelStore().counts(s)["provider_capacity"] == 1
        runtime.db.dispose()
