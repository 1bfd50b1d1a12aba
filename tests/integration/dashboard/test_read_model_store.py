"""The read model's store on each database backend: events applied through the inbox's
transaction, a rebuild's reset, and an old generation's late event kept out."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from services.dashboard import domain
from services.dashboard.db import ReadModelStore
from services.dashboard.handlers import read_model_handler
from services.dashboard.wiring import build_runtime
from tests.unit.dashboard.stories import NOW, a_clinic_week, received


def test_the_store_gives_the_same_figures_as_the_pure_rules_and_resets(settings_for):
    runtime = build_runtime(settings_for("dashboard"))
    runtime.create_schema()
    store = ReadModelStore()
    events = a_clinic_week()
    with runtime.db.transaction() as s:
        handler = read_model_handler(store, store.generation(s))
    for env in events:
        with runtime.db.transaction() as s:
            if runtime.inbox.first_time(s, "dashboard.readmodel-g1", env):
                handler(s, env)
    with runtime.db.transaction() as s:  # a redelivery, as the consumer would see it
        assert not runtime.inbox.first_time(s, "dashboard.readmodel-g1", events[2])

    pure = domain.Snapshot()
    for env in events:
        pure.apply(env.type, env.payload, env.occurred_at)
    london = ZoneInfo("Europe/London")
    with runtime.db.transaction() as s:
        stored = store.snapshot(s)
    assert stored == pure
    assert domain.clinic_figures(stored, now=NOW, tz=london, weekly_hours=37.5) == \
        domain.clinic_figures(pure, now=NOW, tz=london, weekly_hours=37.5)

    with runtime.db.transaction() as s:
        assert store.reset(s, runtime.tables.inbox) == 2
    with runtime.db.transaction() as s:
        assert set(store.counts(s).values()) == {0}
        handler(s, received("late", at=NOW))  # generation 1's consumer, not yet stopped
    with runtime.db.transaction() as s:
        assert store.counts(s)["referrals"] == 0
        read_model_handler(store, 2)(s, received("fresh", at=NOW))
    with runtime.db.transaction() as s:
        assert store.counts(s)["referrals"] == 1
        assert store.generation(s) == 2
