"""Free time and slots from weekly templates, leave, closures and bookings, with fixed
dates around the clinic's daylight-saving changes (Europe/London: clocks go forward on
Sun 29 Mar 2026 and back on Sun 25 Oct 2026)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.availability import (
    Interval,
    WeeklyBlock,
    fits,
    free_time,
    local_days,
    local_to_utc,
    merge,
    slots,
    subtract,
    working_intervals,
)

LONDON = ZoneInfo("Europe/London")
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
WEEKDAYS_9_TO_5 = [WeeklyBlock(d, time(9), time(17)) for d in (MON, TUE, WED, THU, FRI)]


def utc(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


def iv(a: datetime, b: datetime) -> Interval:
    return Interval(a, b)


def test_a_monday_clinic_starts_at_nine_on_the_clock_on_both_sides_of_spring_forward():
    before = working_intervals(WEEKDAYS_9_TO_5, date(2026, 3, 23), date(2026, 3, 23), LONDON)
    after = working_intervals(WEEKDAYS_9_TO_5, date(2026, 3, 30), date(2026, 3, 30), LONDON)
    assert before == [iv(utc(2026, 3, 23, 9), utc(2026, 3, 23, 17))]   # GMT
    assert after == [iv(utc(2026, 3, 30, 8), utc(2026, 3, 30, 16))]    # BST, UTC+1


def test_a_block_spanning_the_changed_hour_is_an_hour_shorter_in_spring_and_longer_in_autumn():
    night = [WeeklyBlock(SUN, time(0, 30), time(3))]
    spring = working_intervals(night, date(2026, 3, 29), date(2026, 3, 29), LONDON)
    autumn = working_intervals(night, date(2026, 10, 25), date(2026, 10, 25), LONDON)
    assert spring == [iv(utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 2))]
    assert spring[0].minutes == 90
    assert autumn == [iv(utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 3))]
    assert autumn[0].minutes == 210


def test_local_days_are_23_and_25_hours_long_on_the_change_days():
    assert local_days(date(2026, 3, 29), date(2026, 3, 29), LONDON).minutes == 23 * 60
    assert local_days(date(2026, 10, 25), date(2026, 10, 25), LONDON).minutes == 25 * 60
    assert local_days(date(2026, 6, 1), date(2026, 6, 7), LONDON).minutes == 7 * 24 * 60


def test_a_wall_time_skipped_in_spring_lands_after_the_gap():
    assert local_to_utc(date(2026, 3, 29), time(1, 30), LONDON) == utc(2026, 3, 29, 1, 30)
    assert local_to_utc(date(2026, 3, 29), time(1, 30), LONDON).astimezone(LONDON).hour == 2


def test_slots_follow_the_local_clock_in_summer():
    free = free_time(WEEKDAYS_9_TO_5, date(2026, 3, 30), date(2026, 3, 30), LONDON)
    got = slots(free, 60, LONDON, step_minutes=60)
    assert [s.start.astimezone(LONDON).hour for s in got] == list(range(9, 17))
    assert got[0].start == utc(2026, 3, 30, 8)


def test_leave_closures_and_bookings_are_cut_out_of_the_week():
    leave_tuesday = local_days(date(2026, 1, 6), date(2026, 1, 6), LONDON)
    closed_friday_afternoon = iv(utc(2026, 1, 9, 13), utc(2026, 1, 9, 17))
    booked_monday = [iv(utc(2026, 1, 5, 9), utc(2026, 1, 5, 9, 45)),
                     iv(utc(2026, 1, 5, 12), utc(2026, 1, 5, 13))]
    free = free_time(WEEKDAYS_9_TO_5, date(2026, 1, 5), date(2026, 1, 9), LONDON,
                     closed=[leave_tuesday, closed_friday_afternoon], busy=booked_monday)
    assert free == [
        iv(utc(2026, 1, 5, 9, 45), utc(2026, 1, 5, 12)),
        iv(utc(2026, 1, 5, 13), utc(2026, 1, 5, 17)),
        iv(utc(2026, 1, 7, 9), utc(2026, 1, 7, 17)),
        iv(utc(2026, 1, 8, 9), utc(2026, 1, 8, 17)),
        iv(utc(2026, 1, 9, 9), utc(2026, 1, 9, 13)),
    ]
    monday_slots = slots(free[:2], 45, LONDON, step_minutes=15)
    assert monday_slots[0].start == utc(2026, 1, 5, 9, 45)
    assert iv(utc(2026, 1, 5, 11, 15), utc(2026, 1, 5, 12)) in monday_slots
    assert all(not s.overlaps(b) for s in monday_slots for b in booked_monday)


def test_leave_over_the_clock_change_weekend_removes_whole_local_days():
    leave = local_days(date(2026, 3, 27), date(2026, 3, 30), LONDON)  # Fri..Mon
    free = free_time(WEEKDAYS_9_TO_5, date(2026, 3, 26), date(2026, 3, 31), LONDON,
                     closed=[leave])
    assert free == [iv(utc(2026, 3, 26, 9), utc(2026, 3, 26, 17)),
                    iv(utc(2026, 3, 31, 8), utc(2026, 3, 31, 16))]


def test_nothing_is_free_before_now():
    now = utc(2026, 1, 5, 10, 7)
    free = free_time(WEEKDAYS_9_TO_5, date(2026, 1, 5), date(2026, 1, 5), LONDON,
                     not_before=now)
    assert free == [iv(now, utc(2026, 1, 5, 17))]
    assert slots(free, 30, LONDON)[0].start == utc(2026, 1, 5, 10, 15)


def test_slots_align_to_the_local_grid_in_a_half_hour_offset_zone():
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30
    free = [iv(utc(2026, 1, 5, 3, 40), utc(2026, 1, 5, 5))]  # 09:10-10:30 local
    got = slots(free, 30, kolkata, step_minutes=15)
    assert [s.start.astimezone(kolkata).strftime("%H:%M") for s in got] == \
        ["09:15", "09:30", "09:45", "10:00"]


def test_a_visit_fits_only_inside_one_free_interval():
    free = [iv(utc(2026, 1, 5, 9), utc(2026, 1, 5, 12)), iv(utc(2026, 1, 5, 13),
                                                        utc(2026, 1, 5, 17))]
    assert fits(free, utc(2026, 1, 5, 9), utc(2026, 1, 5, 12))
    assert fits(free, utc(2026, 1, 5, 16), utc(2026, 1, 5, 17))
    assert not fits(free, utc(2026, 1, 5, 11, 30), utc(2026, 1, 5, 13, 30))
    assert not fits(free, utc(2026, 1, 5, 8, 30), utc(2026, 1, 5, 9, 30))
    assert not fits([], utc(2026, 1, 5, 9), utc(2026, 1, 5, 10))


def test_template_blocks_apply_only_within_their_validity():
    blocks = [WeeklyBlock(MON, time(9), time(12), valid_until=date(2026, 1, 11)),
              WeeklyBlock(MON, time(13), time(17), valid_from=date(2026, 1, 12))]
    got = working_intervals(blocks, date(2026, 1, 5), date(2026, 1, 12), LONDON)
    assert got == [iv(utc(2026, 1, 5, 9), utc(2026, 1, 5, 12)),
                   iv(utc(2026, 1, 12, 13), utc(2026, 1, 12, 17))]


def test_interval_arithmetic():
    a = utc(2026, 1, 1)
    h = timedelta(hours=1)
    assert merge([iv(a, a + h), iv(a + h, a + 2 * h), iv(a + 5 * h, a + 6 * h)]) == \
        [iv(a, a + 2 * h), iv(a + 5 * h, a + 6 * h)]
    assert subtract([iv(a, a + 10 * h)], [iv(a + h, a + 2 * h), iv(a + 9 * h, a + 12 * h),
                                          iv(a + 1.5 * h, a + 3 * h)]) == \
        [iv(a, a + h), iv(a + 3 * h, a + 9 * h)]
    assert subtract([iv(a, a + h), iv(a + 2 * h, a + 3 * h)], [iv(a - h, a + 4 * h)]) == []
    with pytest.raises(ValueError):
        Interval(datetime(2026, 1, 1), datetime(2026, 1, 2))
    with pytest.raises(ValueError):
        Interval(a + h, a)
