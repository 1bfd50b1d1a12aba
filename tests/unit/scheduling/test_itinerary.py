"""Itinerary search on small fixed calendars whose right answers are worked out by hand.

The clinic is open 08:00-17:00 UTC on weekdays; day 0 is Monday 2 March 2026.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.scheduling.itineraries.baseline import baseline_earliest_each
from services.scheduling.itineraries.calendar import ClinicCalendar
from services.scheduling.itineraries.model import (
    BusyTime,
    CarePathway,
    ClinicHours,
    FreeInterval,
    Itinerary,
    ObjectiveWeights,
    PathwayStep,
    Room,
    RoomFreeInterval,
    SearchRules,
    Unplaceable,
    Visit,
)
from services.scheduling.itineraries.moves import check_move
from services.scheduling.itineraries.search import search_itineraries

MONDAY = date(2026, 3, 2)
HOURS = ClinicHours("UTC", time(8, 0), time(17, 0))


def at(day: int, hhmm: str) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return datetime.combine(MONDAY + timedelta(days=day), time(h, m), tzinfo=UTC)


def free(pid: str, discipline: str, day: int, start: str, end: str) -> FreeInterval:
    return FreeInterval(pid, discipline, at(day, start), at(day, end))


def pm(pid: str, day: int, start: str, end: str) -> FreeInterval:
    return free(pid, "pain_medicine", day, start, end)


def pt(pid: str, day: int, start: str, end: str) -> FreeInterval:
    return free(pid, "physical_therapy", day, start, end)


def psy(pid: str, day: int, start: str, end: str) -> FreeInterval:
    return free(pid, "psychology", day, start, end)


PAIN = PathwayStep("pain_medicine", 60)
PHYSIO = PathwayStep("physical_therapy", 45, after=("pain_medicine",))
PSYCH = PathwayStep("psychology", 45, after=("pain_medicine",))


def search(pathway: CarePathway, calendar: ClinicCalendar, **kw: object
           ) -> list[Itinerary] | Unplaceable:
    kw.setdefault("earliest", at(0, "00:00"))
    kw.setdefault("latest", at(28, "00:00"))
    return search_itineraries(pathway, calendar, **kw)  # type: ignore[arg-type]


def plan(it: Itinerary) -> list[tuple[str, str, str, str, int]]:
    """(discipline, provider, start, end, session) with times as 'day HH:MM'."""
    def show(t: datetime) -> str:
        return f"{(t.date() - MONDAY).days} {t:%H:%M}"
    return [(v.discipline[:3], v.provider_id, show(v.start), show(v.end), v.session_index)
            for v in it.visits]


# The first visit ---------------------------------------------------------------------


def test_first_visit_is_a_same_day_cluster_in_clinical_order() -> None:
    """Physio is free at 08:00 too, but it must follow pain medicine (09:00-10:00)."""
    calendar = ClinicCalendar(HOURS, [pm("pm1", 0, "09:00", "10:00"),
                                      pt("pt1", 0, "08:00", "09:00"),
                                      pt("pt1", 0, "10:00", "12:00"),
                                      psy("ps1", 0, "10:30", "12:00")])
    found = search(CarePathway((PAIN, PHYSIO, PSYCH)), calendar)
    assert isinstance(found, list)
    best = found[0]
    assert plan(best) == [("pai", "pm1", "0 09:00", "0 10:00", 1),
                          ("phy", "pt1", "0 10:00", "0 10:45", 1),
                          ("psy", "ps1", "0 10:45", "0 11:30", 1)]
    assert best.first_visit_same_day
    assert best.score.trips == 1 and best.score.waiting_minutes == 0
    assert best.score.total == 8.0
    assert best.notes[0] == ("Same-day first visit on 2026-03-02: pain medicine, "
                             "physical therapy, psychology.")


def test_minimum_gap_between_visits_is_kept() -> None:
    calendar = ClinicCalendar(HOURS, [pm("pm1", 0, "09:00", "10:00"),
                                      pt("pt1", 0, "10:00", "12:00"),
                                      psy("ps1", 0, "10:30", "12:00")])
    found = search(CarePathway((PAIN, PHYSIO, PSYCH)), calendar,
                   rules=SearchRules(min_gap_minutes=15))
    assert isinstance(found, list)
    assert plan(found[0]) == [("pai", "pm1", "0 09:00", "0 10:00", 1),
                              ("phy", "pt1", "0 10:15", "0 11:00", 1),
                              ("psy", "ps1", "0 11:15", "0 12:00", 1)]
    assert found[0].score.waiting_minutes == 30


def _gap_too_long_clinic() -> ClinicCalendar:
    """Monday: physio only 4 hours after pain medicine; Tuesday: both, back to back."""
    return ClinicCalendar(HOURS, [pm("pm1", 0, "09:00", "10:00"), pm("pm1", 1, "08:00", "09:00"),
                                  pt("pt1", 0, "14:00", "15:00"), pt("pt1", 1, "09:00", "10:00")])


def test_maximum_gap_forces_a_split_first_visit_and_says_why() -> None:
    found = search(CarePathway((PAIN, PHYSIO)), _gap_too_long_clinic())
    assert isinstance(found, list) and len(found) == 2
    split, cluster = found
    assert plan(split) == [("pai", "pm1", "0 09:00", "0 10:00", 1),
                           ("phy", "pt1", "1 09:00", "1 09:45", 1)]
    assert not split.first_visit_same_day
    assert split.score.total == 16.0  # two trips, first visit on day 0
    assert split.notes == (
        "No same-day first visit across all 2 disciplines on 2026-03-02 (physical therapy: "
        "no slot within 0-60 min of the other visits in clinical order on 2026-03-02).",
        "First visit split over 2 days: pain medicine on 2026-03-02; physical therapy on "
        "2026-03-03.")
    # The alternative: everything on Tuesday, one day later (25) but one trip (8).
    assert plan(cluster) == [("pai", "pm1", "1 08:00", "1 09:00", 1),
                             ("phy", "pt1", "1 09:00", "1 09:45", 1)]
    assert cluster.first_visit_same_day and cluster.score.total == 33.0
    assert "1 day(s) after the earliest possible first visit" in cluster.notes[1]


def test_the_objective_is_configurable_a_cheap_day_prefers_the_cluster() -> None:
    found = search(CarePathway((PAIN, PHYSIO)), _gap_too_long_clinic(),
                   weights=ObjectiveWeights(days_to_first_visit=1.0))
    assert isinstance(found, list)
    assert found[0].first_visit_same_day and found[0].score.total == 9.0  # 1 day + 1 trip
    assert found[1].score.total == 16.0


def test_a_first_visit_after_the_priority_target_is_penalised() -> None:
    """Pain medicine is free only on Thursday (day 3); the target was Tuesday (day 1)."""
    calendar = ClinicCalendar(HOURS, [pm("pm1", 3, "09:00", "10:00")])
    found = search(CarePathway((PAIN,)), calendar, due_by=MONDAY + timedelta(days=1))
    assert isinstance(found, list)
    score = found[0].score
    assert (score.days_to_first_visit, score.target_breach_days, score.total) == (3, 2, 283.0)


def test_alternatives_are_distinct_day_plans_ranked_by_the_objective() -> None:
    """Only two day plans exist: psychology's second session on day 8 (with physio) or 7."""
    found = search(GROUPING, _grouping_clinic(), top_k=3)
    assert isinstance(found, list) and len(found) == 2
    assert [it.score.total for it in found] == [21.0, 26.5]  # 3 trips, 15 min, 1 day drift
    assert plan(found[1])[3] == ("psy", "ps1", "7 08:00", "7 08:45", 2)


def test_patient_busy_time_pushes_the_visit() -> None:
    calendar = ClinicCalendar(HOURS, [pm("pm1", 0, "08:00", "12:00")])
    found = search(CarePathway((PAIN,)), calendar,
                   patient_busy=[BusyTime(at(0, "07:30"), at(0, "10:00"))])
    assert isinstance(found, list)
    assert plan(found[0]) == [("pai", "pm1", "0 10:00", "0 11:00", 1)]


def test_each_visit_gets_a_fit_free_room() -> None:
    rooms = [Room("consult", frozenset({"pain_medicine"})),
             Room("gym", frozenset({"physical_therapy"})),
             Room("needles", frozenset({"acupuncture"}))]
    room_free = [RoomFreeInterval("consult", at(0, "08:00"), at(0, "17:00")),
                 RoomFreeInterval("gym", at(0, "11:00"), at(0, "17:00")),
                 RoomFreeInterval("needles", at(0, "08:00"), at(0, "17:00"))]
    calendar = ClinicCalendar(HOURS, [pm("pm1", 0, "09:00", "10:00"),
                                      pt("pt1", 0, "10:00", "12:00")], rooms, room_free)
    found = search(CarePathway((PAIN, PHYSIO)), calendar)
    assert isinstance(found, list)
    assert [(v.room_id, f"{v.start:%H:%M}") for v in found[0].visits] == [
        ("consult", "09:00"), ("gym", "11:00")]
    assert found[0].score.waiting_minutes == 60


def test_clinic_hours_are_in_the_clinics_timezone() -> None:
    """London in July is UTC+1: 09:00 opening is 08:00 UTC."""
    hours = ClinicHours("Europe/London", time(9, 0), time(17, 0))
    monday = datetime(2026, 7, 6, tzinfo=UTC)
    calendar = ClinicCalendar(hours, [FreeInterval("pm1", "pain_medicine",
                                                   monday.replace(hour=7),
                                                   monday.replace(hour=10))])
    found = search_itineraries(CarePathway((PAIN,)), calendar, earliest=monday,
                               latest=monday + timedelta(days=7))
    assert isinstance(found, list)
    assert found[0].visits[0].start == monday.replace(hour=8)


# Follow-up series -------------------------------------------------------------------------


def _continuity_clinic(pt2_on_day_14: bool = True) -> ClinicCalendar:
    ivs = [pm("pm1", 0, "09:00", "10:00"), pt("pt2", 0, "10:00", "11:00"),
           pt("pt1", 7, "08:00", "17:00"), pt("pt2", 7, "14:00", "15:00"),
           pt("pt1", 14, "08:00", "09:00")]
    if pt2_on_day_14:
        ivs.append(pt("pt2", 14, "15:00", "16:00"))
    return ClinicCalendar(HOURS, ivs)


WEEKLY_PHYSIO = CarePathway((PAIN, PathwayStep("physical_therapy", 45, 3, 7,
                                                ("pain_medicine",))))


def test_series_stays_with_its_provider_even_when_another_is_earlier() -> None:
    found = search(WEEKLY_PHYSIO, _continuity_clinic())
    assert isinstance(found, list)
    assert plan(found[0]) == [("pai", "pm1", "0 09:00", "0 10:00", 1),
                              ("phy", "pt2", "0 10:00", "0 10:45", 1),
                              ("phy", "pt2", "7 14:00", "7 14:45", 2),
                              ("phy", "pt2", "14 15:00", "14 15:45", 3)]
    assert found[0].score.provider_changes == 0 and found[0].score.total == 24.0


def test_a_change_of_provider_is_explained_or_refused_when_required() -> None:
    found = search(WEEKLY_PHYSIO, _continuity_clinic(pt2_on_day_14=False))
    assert isinstance(found, list)
    assert plan(found[0])[-1] == ("phy", "pt1", "14 08:00", "14 08:45", 3)
    assert found[0].score.provider_changes == 1
    assert ("physical therapy session(s) 3 with another provider: pt2 was not free in the "
            "window.") in found[0].notes
    refused = search(WEEKLY_PHYSIO, _continuity_clinic(pt2_on_day_14=False),
                     rules=SearchRules(same_provider_required=True))
    assert refused == Unplaceable((
        "physical therapy session 3 of 3: no physical therapy visit of 45 min can be placed "
        "between 2026-03-14 and 2026-03-18 (every 7 days, +/- 2) with the series provider "
        "pt2",))


def _grouping_clinic() -> ClinicCalendar:
    """Week 2: physio only on Tuesday; psychology on Monday (earliest) and Tuesday."""
    return ClinicCalendar(HOURS, [pm("pm1", 0, "09:00", "10:00"), pt("pt1", 0, "10:00", "11:00"),
                                  psy("ps1", 0, "11:00", "12:00"),
                                  pt("pt1", 8, "09:00", "10:00"),
                                  psy("ps1", 7, "08:00", "17:00"), psy("ps1", 8, "10:00", "12:00")])


GROUPING = CarePathway((PAIN, PathwayStep("physical_therapy", 45, 2, 7, ("pain_medicine",)),
                        PathwayStep("psychology", 45, 2, 7, ("pain_medicine",))))


def test_follow_ups_share_a_trip_where_the_intervals_allow() -> None:
    found = search(GROUPING, _grouping_clinic())
    assert isinstance(found, list)
    best = found[0]
    assert plan(best) == [("pai", "pm1", "0 09:00", "0 10:00", 1),
                          ("phy", "pt1", "0 10:00", "0 10:45", 1),
                          ("psy", "ps1", "0 11:00", "0 11:45", 1),
                          ("phy", "pt1", "8 09:00", "8 09:45", 2),
                          ("psy", "ps1", "8 10:00", "8 10:45", 2)]
    # 2 trips * 8 + 30 min waiting * 0.1 + 2 days of interval drift * 1
    assert (best.score.trips, best.score.waiting_minutes, best.score.interval_drift_days,
            best.score.total) == (2, 30, 2, 21.0)


def test_baseline_books_each_discipline_at_its_earliest_slot() -> None:
    base = baseline_earliest_each(GROUPING, _grouping_clinic(), earliest=at(0, "00:00"),
                                  latest=at(28, "00:00"))
    assert isinstance(base, Itinerary)
    assert plan(base)[3:] == [("psy", "ps1", "7 08:00", "7 08:45", 2),
                              ("phy", "pt1", "8 09:00", "8 09:45", 2)]
    assert base.score.trips == 3


# A full clinic and unplaceable pathways ----------------------------------------------------


def test_full_clinic_for_one_discipline_is_unplaceable_with_reasons() -> None:
    calendar = ClinicCalendar(HOURS, [pm("pm1", 0, "09:00", "10:00"),
                                      pt("pt1", 0, "10:00", "11:00"),
                                      psy("ps1", 40, "08:00", "17:00")])  # beyond the window
    found = search(CarePathway((PAIN, PHYSIO, PSYCH)), calendar)
    assert found == Unplaceable((
        "No same-day first visit across all 3 disciplines on 2026-03-02 (psychology: no "
        "psychology provider is free for 45 min on 2026-03-02).",
        "The remaining disciplines find no first visit before 2026-03-29."))


def test_no_pain_medicine_in_the_window() -> None:
    calendar = ClinicCalendar(HOURS, [pm("pm1", 30, "09:00", "10:00")])
    found = search(CarePathway((PAIN,)), calendar)
    assert found == Unplaceable((
        "no pain medicine visit of 60 min can be placed between 2026-03-02 and 2026-03-29 "
        "(no free provider, fit room or patient time)",))


def test_follow_up_without_capacity_in_its_interval_is_unplaceable() -> None:
    calendar = ClinicCalendar(HOURS, [pm("pm1", 0, "09:00", "10:00"),
                                      pt("pt1", 0, "10:00", "11:00"),
                                      pt("pt1", 20, "10:00", "11:00")])
    pathway = CarePathway((PAIN, PathwayStep("physical_therapy", 45, 2, 7, ("pain_medicine",))))
    assert search(pathway, calendar) == Unplaceable((
        "physical therapy session 2 of 2: no physical therapy visit of 45 min can be placed "
        "between 2026-03-07 and 2026-03-11 (every 7 days, +/- 2)",))


def test_a_wider_interval_is_the_fallback_when_allowed_and_it_says_so() -> None:
    calendar = ClinicCalendar(HOURS, [pm("pm1", 0, "09:00", "10:00"),
                                      pt("pt1", 0, "10:00", "11:00"),
                                      pt("pt1", 11, "10:00", "11:00")])
    pathway = CarePathway((PAIN, PathwayStep("physical_therapy", 45, 2, 7, ("pain_medicine",))))
    found = search(pathway, calendar, rules=SearchRules(fallback_tolerance_days=7))
    assert isinstance(found, list)
    assert plan(found[0])[-1] == ("phy", "pt1", "11 10:00", "11 10:45", 2)
    assert found[0].score.total == 20.0  # 2 trips * 8 + 4 days of interval drift
    assert found[0].notes[-1] == (
        "No itinerary keeps every follow-up within +/- 2 days of its interval (physical "
        "therapy session 2 of 2: no physical therapy visit of 45 min can be placed between "
        "2026-03-07 and 2026-03-11 (every 7 days, +/- 2)); intervals widened to +/- 7 days.")


def test_a_cycle_in_the_order_constraints_is_reported() -> None:
    pathway = CarePathway((PathwayStep("pain_medicine", 60, after=("psychology",)),
                           PathwayStep("psychology", 45, after=("pain_medicine",))))
    found = search(pathway, ClinicCalendar(HOURS, [pm("pm1", 0, "09:00", "10:00"),
                                                   psy("ps1", 0, "10:00", "11:00")]))
    assert isinstance(found, Unplaceable)
    assert "cannot be ordered" in found.reasons[0]


def test_booking_an_itinerary_removes_its_time_from_the_calendar() -> None:
    calendar = ClinicCalendar(HOURS, [pm("pm1", 0, "09:00", "10:00")])
    first = search(CarePathway((PAIN,)), calendar)
    assert isinstance(first, list)
    calendar.book(first[0].visits)
    assert isinstance(search(CarePathway((PAIN,)), calendar), Unplaceable)


def test_pathway_from_the_referral_payload() -> None:
    pathway = CarePathway.from_payload([
        {"discipline": "pain_medicine", "visit_minutes": 60, "sessions": 1,
         "interval_days": 0, "after": []},
        {"discipline": "psychology", "visit_minutes": 45, "sessions": 6, "interval_days": 14,
         "after": ["pain_medicine"]}])
    assert pathway.step("psychology") == PathwayStep("psychology", 45, 6, 14, ("pain_medicine",))


# Moving one visit ------------------------------------------------------------------------


@pytest.fixture
def grouped() -> tuple[Itinerary, ClinicCalendar]:
    calendar = _grouping_clinic()
    found = search(GROUPING, calendar)
    assert isinstance(found, list)
    calendar.book(found[0].visits)
    return found[0], calendar


def _moved(v: Visit, day: int, hhmm: str) -> Visit:
    start = at(day, hhmm)
    return Visit(v.discipline, v.provider_id, v.room_id, start, start + (v.end - v.start),
                 v.session_index)


def test_a_legal_move_breaks_nothing(grouped: tuple[Itinerary, ClinicCalendar]) -> None:
    it, calendar = grouped
    assert check_move(it, 4, _moved(it.visits[4], 7, "08:00"), pathway=GROUPING,
                      calendar=calendar) == []


def test_a_move_that_stretches_the_gap(grouped: tuple[Itinerary, ClinicCalendar]) -> None:
    it, calendar = grouped
    assert check_move(it, 4, _moved(it.visits[4], 8, "11:00"), pathway=GROUPING,
                      calendar=calendar) == [
        "75 min between the physical therapy and psychology visits; allowed 0-60."]


def test_a_move_before_pain_medicine(grouped: tuple[Itinerary, ClinicCalendar]) -> None:
    it, calendar = grouped
    assert check_move(it, 1, _moved(it.visits[1], 0, "08:00"), pathway=GROUPING,
                      calendar=calendar) == [
        "pt1 is not free at 2026-03-02 08:00.",
        "The first physical therapy visit must come after the first pain medicine visit."]
    assert check_move(it, 1, _moved(it.visits[1], 0, "09:30"), pathway=GROUPING,
                      calendar=calendar) == [
        "pt1 is not free at 2026-03-02 09:30.",
        "Overlaps the pain medicine visit that day.",
        "The first physical therapy visit must come after the first pain medicine visit."]
    # Its own booked slot counts as free again: 10:10-10:55 is legal (pt1 held 10:00-10:45).
    assert check_move(it, 1, _moved(it.visits[1], 0, "10:10"), pathway=GROUPING,
                      calendar=calendar) == []


def test_a_move_outside_the_interval(grouped: tuple[Itinerary, ClinicCalendar]) -> None:
    it, calendar = grouped
    assert check_move(it, 4, _moved(it.visits[4], 11, "10:00"), pathway=GROUPING,
                      calendar=calendar, patient_busy=[BusyTime(at(11, "09:00"),
                                                                at(11, "12:00"))]) == [
        "ps1 is not free at 2026-03-13 10:00.",
        "The patient is unavailable at 2026-03-13 10:00.",
        "psychology sessions 1 and 2 are 11 days apart; allowed 5-9."]


def test_a_search_started_within_a_minute_never_offers_the_slot_that_has_begun() -> None:
    """09:00:30 is past 09:00: the 09:00 slot is gone (booking it would be refused as past;
    rounding the start down once dead-lettered a referral.accepted)."""
    calendar = ClinicCalendar(HOURS, [pm("pm1", 0, "09:00", "11:00")])
    found = search(CarePathway((PAIN,)), calendar,
                   earliest=at(0, "09:00") + timedelta(seconds=30))
    assert isinstance(found, list)
    assert all(it.visits[0].start > at(0, "09:00") for it in found)
    assert plan(found[0])[0][2] == "0 09:05"  # the next start on the 5-minute grid
    exact = search(CarePathway((PAIN,)), calendar, earliest=at(0, "09:00"))
    assert isinstance(exact, list) and plan(exact[0])[0][2] == "0 09:00"
