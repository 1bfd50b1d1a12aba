"""The diary's rules: status moves in the spirit of FHIR, what blocks a slot, recurring
series at a fixed local time, and who on the waitlist is offered a freed slot first."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.scheduling.diary import domain
from shared.availability import Interval
from shared.errors import Conflict, InvalidInput

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_a_visit_goes_booked_arrived_fulfilled_and_nothing_comes_back_from_the_end():
    assert domain.move("booked", "arrived") == "arrived"
    assert domain.move("arrived", "fulfilled") == "fulfilled"
    assert domain.move("proposed", "booked") == "booked"
    assert domain.move("booked", "noshow") == "noshow"
    for end in ("fulfilled", "cancelled", "noshow"):
        for target in domain.STATUSES:
            with pytest.raises(Conflict):
                domain.move(end, target)
    with pytest.raises(Conflict, match="arrived cannot become cancelled"):
        domain.move("arrived", "cancelled")
    assert domain.can_reschedule("booked") and not domain.can_reschedule("arrived")


def test_a_hold_blocks_its_slot_until_it_expires():
    assert domain.is_blocking("proposed", NOW + timedelta(minutes=1), NOW)
    assert not domain.is_blocking("pending", NOW, NOW)
    assert domain.is_blocking("booked", None, NOW)
    assert domain.is_blocking("fulfilled", None, NOW)
    assert not domain.is_blocking("cancelled", None, NOW)
    assert not domain.is_blocking("noshow", None, NOW)


def test_visits_have_sane_lengths_and_aware_times():
    visit = domain.visit_interval(datetime(2026, 1, 5, 9, tzinfo=LONDON), 45)
    assert visit == Interval(datetime(2026, 1, 5, 9, tzinfo=UTC),
                             datetime(2026, 1, 5, 9, 45, tzinfo=UTC))
    with pytest.raises(InvalidInput):
        domain.visit_interval(datetime(2026, 1, 5, 9), 45)
    with pytest.raises(InvalidInput):
        domain.visit_interval(datetime(2026, 1, 5, 9, tzinfo=UTC), 600)
    with pytest.raises(Conflict):
        domain.check_not_past(Interval(NOW - timedelta(hours=1), NOW), NOW)


def test_rooms_and_providers_take_only_what_they_are_fit_for():
    domain.check_room_fit("PT gym", ["physical_therapy"], "physical_therapy", "exercise")
    domain.check_room_fit("Room 1", [], "psychology", "")
    with pytest.raises(InvalidInput, match="not fit"):
        domain.check_room_fit("PT gym", ["physical_therapy"], "acupuncture", "needling")
    domain.check_room_fit("Room 2", ["needling"], "acupuncture", "needling")
    domain.check_provider_offers("psychology", ["cbt", "act"], "cbt")
    with pytest.raises(InvalidInput, match="does not offer"):
        domain.check_provider_offers("psychology", ["cbt"], "nerve_block")


def test_a_weekly_pt_series_stays_at_ten_on_the_clock_across_the_spring_change():
    first = datetime(2026, 3, 16, 10, tzinfo=LONDON)
    planned = domain.plan_series(first, 45, 7, 4, LONDON)
    assert [v.start.astimezone(LONDON).strftime("%d %H:%M") for v in planned] == \
        ["16 10:00", "23 10:00", "30 10:00", "06 10:00"]
    assert [v.start.hour for v in planned] == [10, 10, 9, 9]  # UTC moves, the clock not
    assert all(v.minutes == 45 for v in planned)
    with pytest.raises(InvalidInput):
        domain.plan_series(first, 45, 7, 60, LONDON)


def _wish(wid: str, **kw: object) -> domain.Wish:
    base = {"id": wid, "patient_id": f"patient-{wid}", "discipline": "physical_therapy",
            "visit_minutes": 45, "priority": "routine",
            "created_at": NOW - timedelta(days=int(kw.pop("waited_days", 1)))}
    base.update(kw)
    return domain.Wish(**base)  # type: ignore[arg-type]


# Tue 13 Jan 2026, 10:00-11:00 in London (GMT)
OPENING = Interval(datetime(2026, 1, 13, 10, tzinfo=UTC), datetime(2026, 1, 13, 11, tzinfo=UTC))


def test_the_most_urgent_patient_is_offered_the_freed_slot_first():
    wishes = [_wish("old-routine", waited_days=30),
              _wish("new-urgent", priority="urgent", waited_days=1),
              _wish("soon-for-this-pt", priority="soon", provider_id="pt-1"),
              _wish("soon-anyone", priority="soon", waited_days=20)]
    ranked = domain.rank_waitlist(wishes, OPENING, "physical_therapy", "pt-1", LONDON)
    assert [w.id for w, _ in ranked] == ["new-urgent", "soon-for-this-pt", "soon-anyone",
                                         "old-routine"]
    assert ranked[0][1] == Interval(OPENING.start, OPENING.start + timedelta(minutes=45))


def test_a_wish_is_offered_only_a_slot_within_its_constraints():
    def offered(**kw: object) -> bool:
        return domain.offer_for(_wish("w", **kw), OPENING, "physical_therapy", "pt-1",
                                LONDON) is not None

    assert offered()
    assert not offered(discipline="psychology")
    assert not offered(provider_id="pt-2")
    assert not offered(visit_minutes=90)                   # longer than the opening
    assert not offered(weekdays=(0, 2))                    # Mondays and Wednesdays only
    assert offered(weekdays=(1,))
    assert not offered(earliest=date(2026, 1, 14))
    assert not offered(latest=date(2026, 1, 12))
    assert not offered(day_start=time(13))                 # afternoons only
    assert not offered(day_end=time(10, 30))               # must be done by 10:30
    assert offered(day_start=time(9, 30), day_end=time(11))
