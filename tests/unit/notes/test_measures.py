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
    assert flat[m.SAFETY_MEASURE] == 1, "item 9 is kept apart for the safety check"
    assert m.flatten({"phq9": {"items": [3] * 8 + [0]}})[m.SAFETY_MEASURE] == 0


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
    assert trend.latest.band == "mild", "4 is mild on the clinic's one pain scale (1-4)"


def test_a_baseline_of_no_pain_has_no_percentage_change_and_a_rise_is_worsening():
    trend = m.trends(_visits(0, 3))["nrs_average"]
    assert trend.points[1].percent_change is None and trend.points[1].change == 3
    assert trend.points[1].meaningful == "worsening"


# ------------------------------------------------------------ NRS change (IMMPACT)

@pytest.mark.parametrize(("baseline", "value", "meaning"), [
    # baseline 10: 30 % is 3 points, 50 % is 5
    (10, 8, None),                          # 2 points but 20 %
    (10, 7, "moderate_improvement"),        # 30 % exactly and 3 points
    (10, 6, "moderate_improvement"),
    (10, 5, "substantial_improvement"),     # 50 % exactly
    (10, 0, "substantial_improvement"),
    (10, 10, None),
    # baseline 2: any fall of 2 points is 100 %
    (2, 1, None),                           # 50 % but only 1 point: not substantial
    (2, 0, "substantial_improvement"),
    (2, 3, None),                           # 50 % rise but 1 point
    (2, 4, "worsening"),
    # baseline 1: no fall can reach 2 points
    (1, 0, None),
    (1, 2, None),                           # 100 % rise but 1 point
    (1, 3, "worsening"),
    # baseline 0: no percentage at all, and no division by zero
    (0, 0, None),
    (0, 1, "worsening"),                    # pain-free to in pain: no percentage exists
    (0, 2, "worsening"),
    (0, 10, "worsening"),
    # the moderate threshold needs both: 4 -> 2 is 50 % and 2 points
    (4, 2, "substantial_improvement"),
    (3, 1, "substantial_improvement"),      # 66.7 % and 2 points
    (7, 5, None),                           # 2 points but 28.6 %
    (6, 4, "moderate_improvement"),         # 33.3 % and 2 points
    (8, 10, None),                          # a 2-point rise but 25 %
    (6, 8, "worsening"),                    # 2 points and 33 %
])
def test_nrs_change_follows_immpact_points_and_percent_together(baseline, value, meaning):
    change = m.meaningful_change("nrs_average", baseline, value)
    assert change.meaningful == meaning
    assert change.change == value - baseline
    if baseline == 0:
        assert change.percent_change is None
    else:
        assert change.percent_change == round((value - baseline) / baseline * 100, 1)


def test_bpi_severity_is_read_as_pain_intensity_with_decimals():
    assert m.meaningful_change("bpi_severity", 6.5, 4.5).meaningful == "moderate_improvement"
    assert m.meaningful_change("bpi_severity", 6.5, 4.75).meaningful is None   # 1.75 points
    assert m.meaningful_change("bpi_severity", 6.0, 3.0).meaningful == "substantial_improvement"


# --------------------------------------------------------- minimal important change

@pytest.mark.parametrize(("code", "baseline", "value", "meaning"), [
    ("phq9", 18, 14, None), ("phq9", 18, 13, "meaningful_improvement"),
    ("phq9", 8, 12, None), ("phq9", 8, 13, "meaningful_deterioration"),
    ("gad7", 15, 12, None), ("gad7", 15, 11, "meaningful_improvement"),
    ("gad7", 5, 9, "meaningful_deterioration"),
    ("bpi_interference", 6.0, 5.25, None), ("bpi_interference", 6.0, 5.0,
                                            "meaningful_improvement"),
    ("bpi_interference", 4.3, 5.3, "meaningful_deterioration"),
    ("pseq", 20, 26, None), ("pseq", 20, 27, "meaningful_improvement"),
    ("pseq", 30, 23, "meaningful_deterioration"), ("pseq", 30, 24, None),
])
def test_each_instrument_has_its_published_minimal_important_change(code, baseline, value,
                                                                    meaning):
    assert m.meaningful_change(code, baseline, value).meaningful == meaning


def test_a_pseq_change_beyond_its_measurement_error_is_marked():
    assert m.meaningful_change("pseq", 20, 31).beyond_measurement_error is False   # 11
    assert m.meaningful_change("pseq", 20, 32).beyond_measurement_error is True    # 12
    assert m.meaningful_change("pseq", 40, 28).beyond_measurement_error is True
    assert m.meaningful_change("phq9", 20, 2).beyond_measurement_error is None


def test_the_thresholds_are_the_clinics_settings():
    strict = m.Scoring(mic_phq9=6, mic_gad7=5, mic_bpi_interference=2, mic_pseq=9,
                       pseq_measurement_error=8)
    assert m.meaningful_change("phq9", 18, 13, strict).meaningful is None
    assert m.meaningful_change("gad7", 15, 11, strict).meaningful is None
    assert m.meaningful_change("bpi_interference", 6, 5, strict).meaningful is None
    assert m.meaningful_change("pseq", 20, 28, strict).meaningful is None
    assert m.meaningful_change("pseq", 20, 29, strict).beyond_measurement_error is True
    read = m.Scoring.from_settings(
        {"NOTES_MIC_PHQ9": "6", "NOTES_PSEQ_MEASUREMENT_ERROR": "8"}.get)
    assert (read.mic_phq9, read.pseq_measurement_error, read.mic_gad7) == (6, 8, 4)


@pytest.mark.parametrize(("settings", "named"), [
    ({"NOTES_DN4_CUTOFF": "11"}, "NOTES_DN4_CUTOFF"),
    ({"NOTES_DN4_CUTOFF": "0"}, "NOTES_DN4_CUTOFF"),
    ({"NOTES_DN4_CUTOFF": "3.5"}, "NOTES_DN4_CUTOFF"),
    ({"NOTES_DN4_INTERVIEW_CUTOFF": "8"}, "NOTES_DN4_INTERVIEW_CUTOFF"),
    ({"NOTES_MIC_PHQ9": "0"}, "NOTES_MIC_PHQ9"),
    ({"NOTES_MIC_GAD7": "22"}, "NOTES_MIC_GAD7"),
    ({"NOTES_MIC_PSEQ": "seven"}, "NOTES_MIC_PSEQ"),
    ({"NOTES_PSEQ_MEASUREMENT_ERROR": "-1"}, "NOTES_PSEQ_MEASUREMENT_ERROR"),
])
def test_a_setting_outside_its_instruments_range_is_refused_naming_it(settings, named):
    with pytest.raises(m.ScoringSettingError, match=named):
        m.Scoring.from_settings(lambda name, default: settings.get(name, default))


def test_the_edges_of_each_setting_are_accepted():
    m.Scoring(dn4_cutoff=1)
    m.Scoring(dn4_cutoff=10, dn4_interview_cutoff=7)
    m.Scoring(dn4_interview_cutoff=1, mic_phq9=27, mic_pseq=60)


# ----------------------------------------------------------------------------- DN4

def test_dn4_records_its_form_and_each_form_has_its_own_cut_off():
    assert m.flatten({"dn4": 5}) == {"dn4": 5}
    assert m.flatten({"dn4": 5, "dn4_form": "full"}) == {"dn4": 5}
    assert m.flatten({"dn4": 3, "dn4_form": "interview"}) == {"dn4_interview": 3}
    assert m.band("dn4", 3) == "neuropathic_unlikely" and m.band("dn4", 4) == "likely_neuropathic"
    assert m.band("dn4_interview", 2) == "neuropathic_unlikely"
    assert m.band("dn4_interview", 3) == "likely_neuropathic"
    assert m.band("dn4_interview", 7) == "likely_neuropathic"
    clinic = m.Scoring(dn4_interview_cutoff=4)
    assert m.band("dn4_interview", 3, clinic) == "neuropathic_unlikely"


def test_a_dn4_beyond_its_forms_range_is_named_as_the_dn4_field():
    wrong = m.out_of_range(m.flatten({"dn4": 8, "dn4_form": "interview"}))
    assert list(wrong) == ["dn4"]
    assert wrong["dn4"] == "DN4-interview must be between 0 and 7, got 8"
    assert m.out_of_range(m.flatten({"dn4": 8, "dn4_form": "full"})) == {}


# ---------------------------------------------------------------------------- PGIC

@pytest.mark.parametrize(("answer", "band", "meaning"), [
    (1, "very_much_improved", "meaningful_improvement"),
    (2, "much_improved", "meaningful_improvement"),
    (3, "minimally_improved", None), (4, "no_change", None), (5, "minimally_worse", None),
    (6, "much_worse", "meaningful_deterioration"),
    (7, "very_much_worse", "meaningful_deterioration")])
def test_pgic_answers_are_banded_and_much_improved_is_clinically_important(answer, band,
                                                                           meaning):
    assert m.band("pgic", answer) == band
    assert m.pgic_meaning(answer) == meaning


def test_pgic_is_in_range_1_to_7_and_charted_without_a_baseline_change():
    assert set(m.out_of_range({"pgic": 0})) == {"pgic"}
    assert set(m.out_of_range({"pgic": 8})) == {"pgic"}
    assert m.flatten({"pgic": 2}) == {"pgic": 2}
    trend = m.trends(_visits(3, 2, 4, code="pgic"))["pgic"]
    assert [(p.band, p.meaningful, p.change) for p in trend.points] == [
        ("minimally_improved", None, None), ("much_improved", "meaningful_improvement", None),
        ("no_change", None, None)]
    assert trend.baseline is None


# ----------------------------------------------------------------- severity bands

@pytest.mark.parametrize(("value", "band"), [
    (0, "none"), (0.25, "mild"), (1, "mild"), (4, "mild"), (4.75, "mild"), (5, "moderate"),
    (6, "moderate"), (6.9, "moderate"), (7, "severe"), (10, "severe")])
def test_nrs_and_bpi_share_one_set_of_severity_bands(value, band):
    codes = [*m.NRS_CODES, "bpi_severity", "bpi_interference"]
    assert {m.band(code, value) for code in codes} == {band}


def test_every_band_table_covers_its_range_without_gaps_or_overlaps():
    scoring = m.Scoring()
    for code, (_label, low, high) in m.RANGES.items():
        table = m.bands(code, scoring)
        assert table, code
        step = 0.25 if code.startswith("bpi_") else 1    # BPI scores are means
        steps = [low + i * step for i in range(int((high - low) / step) + 1)]
        for value in steps:
            holding = [b.name for b in table if b.contains(value)]
            assert len(holding) == 1, (code, value, holding)


# ---------------------------------------------------------------- the baseline

def test_changes_are_against_the_patients_first_score_not_the_first_shown():
    everything = _visits(8, 6, 5)
    shown = everything[1:]               # a filter hid the first visit
    first = m.baselines(everything)
    trend = m.trends(shown, baseline_of=first)["nrs_average"]
    assert trend.baseline == m.Baseline("n0", everything[0][1], 8)
    assert [(p.change, p.meaningful) for p in trend.points] == [
        (-2, None), (-3, "moderate_improvement")]
    unfiltered = m.trends(everything)["nrs_average"]
    assert unfiltered.latest == trend.latest
    assert unfiltered.points[0].change is None, "the baseline itself has no change"


# ---------------------------------------------------------------------- catalogue

def test_the_catalogue_carries_the_phq9_questions_with_item_9_marked():
    by_code = {i["code"]: i for i in m.catalogue()}
    assert set(by_code) == {"nrs", "dn4", "lanss", "paindetect", "phq9", "gad7", "bpi",
                            "pseq", "pgic"}
    phq9 = by_code["phq9"]
    assert [i["number"] for i in phq9["items"]] == list(range(1, 10))
    assert phq9["items"][0]["text"] == "Little interest or pleasure in doing things"
    assert phq9["items"][8]["text"].startswith("Thoughts that you would be better off dead")
    assert [i["number"] for i in phq9["items"] if i["safety"]] == [9]
    assert [a["label"] for a in phq9["answers"]] == [
        "Not at all", "Several days", "More than half the days", "Nearly every day"]
    assert len(by_code["gad7"]["items"]) == 7 and not any(
        i["safety"] for i in by_code["gad7"]["items"])
    assert by_code["bpi"]["items"] == [], "copyrighted item texts are not reproduced"


def test_every_score_in_the_catalogue_names_the_source_of_its_bands_and_change():
    scores = {s["code"]: s for i in m.catalogue(m.Scoring(mic_phq9=6)) for s in i["scores"]}
    assert set(scores) == set(m.RANGES)
    for code, entry in scores.items():
        assert entry["bands"] and entry["bands_source"], code
        assert [b["name"] for b in entry["bands"]] == [b.name for b in m.bands(code)]
    assert scores["phq9"]["change"]["points"] == 6, "the clinic's setting is what is served"
    assert scores["gad7"]["change"]["points"] == 4 and "Toussaint" in scores["gad7"][
        "change"]["source"]
    assert scores["pseq"]["change"]["measurement_error"] == 11.5
    assert "Serlin" in scores["nrs_worst"]["bands_source"]
    assert scores["nrs_worst"]["bands_source"] == scores["bpi_severity"]["bands_source"]
    assert scores["lanss"]["change"] is None
