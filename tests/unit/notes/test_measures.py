"""Scoring, banding and clinically meaningful change, as a clinician would read them."""

from datetime import UTC, datetime, timedelta

import pytest

from services.notes import measures as m


@pytest.mark.parametrize(("total", "band"), [
    (0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"),
    (14, "moderate"), (15, "moderately_severe"), (19, "moderately_severe"), (20, "severe"),
    (27, "severe")])
def test_phq9_is_banded_at_5_10_15_and_20(total, band):
    assert m.band("phq9", total) == band


@pytest.mark.parametrize(("total", "band"), [
    (4, "minimal"), (5, "mild"), (10, "moderate"), (14, "moderate"), (15, "severe")])
def test_gad7_is_banded_at_5_10_and_15(total, band):
    assert m.band("gad7", total) == band


def test_lanss_and_paindetect_flag_likely_neuropathic_pain_at_their_cut_offs():
    assert m.band("lanss", 11) == "neuropathic_unlikely"
    assert m.band("lanss", 12) == "likely_neuropathic"
    assert m.band("paindetect", 12) == "neuropathic_unlikely"
    assert m.band("paindetect", 18) == "unclear"
    assert m.band("paindetect", 19) == "likely_neuropathic"


def test_the_dn4_cut_off_is_the_clinics_choice():
    assert m.band("dn4", 3) == "neuropathic_unlikely"
    assert m.band("dn4", 4) == "likely_neuropathic"
    assert m.band("dn4", 3, m.Scoring(dn4_cutoff=3)) == "likely_neuropathic"


def test_phq9_total_comes_from_its_nine_items_and_item_9_is_kept_apart():
    flat = m.flatten({"phq9": {"items": [0, 0, 0, 0, 0, 0, 0, 0, 1]}, "nrs": {"current": 5}})
    assert flat == {"phq9": 1, "phq9_item9": 1, "nrs_current": 5}
    assert m.band("phq9", flat["phq9"]) == "minimal"
    assert m.safety_positive(flat), "item 9 is a safety concern whatever the total"
    assert not m.safety_positive(m.flatten({"phq9": {"items": [3] * 8 + [0]}}))


def test_out_of_range_names_the_measure():
    wrong = m.out_of_range({"pseq": 61, "paindetect": -2, "nrs_worst": 10})
    assert set(wrong) == {"pseq", "paindetect"}
    assert wrong["pseq"].startswith("PSEQ must be between 0 and 60")
    assert "painDETECT" in wrong["paindetect"]


def _visits(*values, code="nrs_average"):
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    return [(f"n{i}", start + timedelta(weeks=i), {code: v}) for i, v in enumerate(values)]


def test_nrs_falls_of_30_and_50_percent_are_moderate_and_substantial_improvements():
    trend = m.trends(_visits(8, 7, 5, 4))["nrs_average"]
    assert [p.meaningful for p in trend.points] == [
        None, None, "moderate_improvement", "substantial_improvement"]
    assert trend.points[2].percent_change == -37.5
    assert trend.points[3].change == -4


def test_a_pseq_change_of_7_or_more_is_meaningful_either_way():
    trend = m.trends(_visits(20, 26, 27, 12, code="pseq"))["pseq"]
    assert [p.meaningful for p in trend.points] == [
        None, None, "meaningful_improvement", "meaningful_deterioration"]


def test_a_trend_is_in_visit_order_whatever_order_the_notes_came_in():
    visits = _visits(8, 6, 4)
    trend = m.trends(list(reversed(visits)))["nrs_average"]
    assert [p.value for p in trend.points] == [8, 6, 4]
    assert trend.latest.band == "moderate"


def test_a_baseline_of_no_pain_has_no_percentage_change():
    trend = m.trends(_visits(0, 3))["nrs_average"]
    assert trend.points[1].percent_change is None and trend.points[1].change == 3
