"""Outcome measures in the clinic's terms, as the published instruments define them: their
valid ranges, how each is scored and banded, and what counts as a clinically important
change over time. Every cut point and threshold names its source beside it, and the
catalogue (`catalogue()`, served at `GET /measures`) is built from the same tables, so a
chart, a note and the console can never band the same number differently.

Pure: no Flask, SQLAlchemy or Kafka. The API validates ranges with the same `RANGES`
table, so a range is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

# code -> (label, low, high). The flattened codes are what notes store, events carry
# and the timeline charts.
RANGES: dict[str, tuple[str, float, float]] = {
    "nrs_current": ("NRS current pain", 0, 10),
    "nrs_average": ("NRS average pain", 0, 10),
    "nrs_worst": ("NRS worst pain", 0, 10),
    "dn4": ("DN4", 0, 10),
    "dn4_interview": ("DN4-interview", 0, 7),
    "lanss": ("LANSS", 0, 24),
    "paindetect": ("painDETECT", -1, 38),
    "phq9": ("PHQ-9", 0, 27),
    "phq9_item9": ("PHQ-9 item 9 (thoughts of self-harm)", 0, 3),
    "gad7": ("GAD-7", 0, 21),
    "bpi_severity": ("BPI pain severity", 0, 10),
    "bpi_interference": ("BPI pain interference", 0, 10),
    "pseq": ("PSEQ", 0, 60),
    "pgic": ("PGIC (patient's global impression of change)", 1, 7),
}
# Where each flat code comes from in a request's `measures`, so that an error names the
# field the clinician filled in (both DN4 forms arrive as `dn4`, with `dn4_form`).
REQUEST_FIELD: dict[str, str] = {
    "nrs_current": "nrs.current", "nrs_average": "nrs.average", "nrs_worst": "nrs.worst",
    "dn4_interview": "dn4", "phq9": "phq9.items", "phq9_item9": "phq9.items.8",
    "bpi_severity": "bpi.severity", "bpi_interference": "bpi.interference",
}
PHQ9_ITEMS = 9
PHQ9_ITEM_RANGE = (0, 3)
GAD7_ITEMS = 7
SAFETY_MEASURE = "phq9_item9"
NRS_CODES = ("nrs_current", "nrs_average", "nrs_worst")
# Pain intensity on 0-10: the NRS and the BPI severity score (the mean of its four NRS
# items) are read by the same change rule and the same severity bands.
PAIN_INTENSITY_CODES = (*NRS_CODES, "bpi_severity")

# DN4 comes in two forms (Bouhassira et al. 2005, Pain 114:29): the full questionnaire
# with the examination, 10 items, neuropathic at >= 4/10; and the DN4-interview, its 7
# sensory items alone, neuropathic at >= 3/7. The request names the form.
DN4_FORMS: dict[str, str] = {"full": "dn4", "interview": "dn4_interview"}
DEFAULT_DN4_FORM = "full"
DEFAULT_DN4_CUTOFF = 4
DEFAULT_DN4_INTERVIEW_CUTOFF = 3

# Minimal important change (MIC) per instrument, each a clinic setting (below) with the
# published value as its default:
# - PHQ-9: 5 points (Löwe B et al. 2004, Med Care 42:1194, "Monitoring depression
#   treatment outcomes with the PHQ-9").
DEFAULT_MIC_PHQ9 = 5.0
# - GAD-7: 4 points (Toussaint A et al. 2020, J Affect Disord 265:395, "Sensitivity to
#   change and minimal clinically important difference of the GAD-7").
DEFAULT_MIC_GAD7 = 4.0
# - BPI interference: 1 point (Dworkin RH et al. 2008, J Pain 9:105, IMMPACT
#   recommendations for interpreting clinical importance).
DEFAULT_MIC_BPI_INTERFERENCE = 1.0
# - PSEQ: 7 points, within the published MIC range of 5.5-8.5 (Chiarotto A et al. 2016,
#   J Pain 17:707) and the change ePPOC reports as clinically significant.
DEFAULT_MIC_PSEQ = 7.0
# - PSEQ measurement error: a change beyond the minimal detectable change (MDC95) of
#   about 11.5 points (11.52; Dubé MO et al. 2021, Pain Rep 6:e972, systematic review) is
#   beyond measurement error, not only clinically important.
DEFAULT_PSEQ_MEASUREMENT_ERROR = 11.5

# NRS change (IMMPACT: Dworkin RH et al. 2008, J Pain 9:105; Farrar JT et al. 2001,
# Pain 94:149): a moderately important improvement is a fall of >= 30 % AND >= 2
# points; a substantial one >= 50 % AND >= 2 points (so 2 -> 1 is neither). Worsening is
# the same size the other way: a rise of >= 2 points and >= 30 % (from 0, where no
# percentage exists, the 2 points alone).
NRS_MIN_POINTS = 2.0
NRS_MODERATE_PERCENT = 30.0
NRS_SUBSTANTIAL_PERCENT = 50.0

_EPS = 1e-9   # scores with decimals (BPI) compared without float noise


class ScoringSettingError(ValueError):
    """A clinic setting for scoring that the instruments cannot mean; the service
    refuses to start with it (a wrong cut-off would band every note wrongly)."""


@dataclass(frozen=True)
class Scoring:
    """The clinic's configurable thresholds (read from settings once; see SETTINGS).
    Checked on construction, so a cut-off outside its form's range never runs."""

    dn4_cutoff: int = DEFAULT_DN4_CUTOFF
    dn4_interview_cutoff: int = DEFAULT_DN4_INTERVIEW_CUTOFF
    mic_phq9: float = DEFAULT_MIC_PHQ9
    mic_gad7: float = DEFAULT_MIC_GAD7
    mic_bpi_interference: float = DEFAULT_MIC_BPI_INTERFERENCE
    mic_pseq: float = DEFAULT_MIC_PSEQ
    pseq_measurement_error: float = DEFAULT_PSEQ_MEASUREMENT_ERROR

    def __post_init__(self) -> None:
        for setting, (name, kind, code) in SETTINGS.items():
            value = getattr(self, name)
            _, low, high = RANGES[code]
            if kind is int:
                # a cut-off of 0 would call everyone neuropathic; above the top, no one
                ok = isinstance(value, int) and 1 <= value <= high
                span = f"1 to {high:g}"
            else:
                ok = 0 < value <= high - low
                span = f"above 0 and at most {high - low:g}"
            if not ok:
                raise ScoringSettingError(
                    f"{setting} must be {span} for {RANGES[code][0]} "
                    f"({low:g}-{high:g}), got {value!r}")

    @classmethod
    def from_settings(cls, setting: Callable[[str, str], str]) -> Scoring:
        """Build from a settings lookup `setting(name, default)`; a value that is not a
        number is refused naming the setting."""
        values: dict[str, Any] = {}
        defaults = cls()
        for name_in_env, (name, kind, _code) in SETTINGS.items():
            raw = setting(name_in_env, str(getattr(defaults, name)))
            try:
                values[name] = kind(raw)
            except ValueError:
                raise ScoringSettingError(
                    f"{name_in_env} must be {'a whole number' if kind is int else 'a number'}"
                    f", got {raw!r}") from None
        return cls(**values)


# setting -> (Scoring field, type, the measure whose range bounds it)
SETTINGS: dict[str, tuple[str, type, str]] = {
    "NOTES_DN4_CUTOFF": ("dn4_cutoff", int, "dn4"),
    "NOTES_DN4_INTERVIEW_CUTOFF": ("dn4_interview_cutoff", int, "dn4_interview"),
    "NOTES_MIC_PHQ9": ("mic_phq9", float, "phq9"),
    "NOTES_MIC_GAD7": ("mic_gad7", float, "gad7"),
    "NOTES_MIC_BPI_INTERFERENCE": ("mic_bpi_interference", float, "bpi_interference"),
    "NOTES_MIC_PSEQ": ("mic_pseq", float, "pseq"),
    "NOTES_PSEQ_MEASUREMENT_ERROR": ("pseq_measurement_error", float, "pseq"),
}
assert {f.name for f in fields(Scoring)} == {v[0] for v in SETTINGS.values()}


# ---------------------------------------------------------------------------- bands

@dataclass(frozen=True)
class Band:
    """One named band of a score: lower and upper bounds, each inclusive unless said."""

    name: str
    lower: float
    upper: float
    lower_inclusive: bool = True
    upper_inclusive: bool = True

    def contains(self, value: float) -> bool:
        above = value >= self.lower if self.lower_inclusive else value > self.lower
        below = value <= self.upper if self.upper_inclusive else value < self.upper
        return above and below


def _steps(top: float, *cuts: tuple[float, str]) -> tuple[Band, ...]:
    """Bands from their lowest scores: each runs up to (not including) the next."""
    out = []
    for i, (low, name) in enumerate(cuts):
        last = i == len(cuts) - 1
        out.append(Band(name, low, top if last else cuts[i + 1][0], upper_inclusive=last))
    return tuple(out)


# Pain intensity, for the NRS and the BPI severity (and interference) scores alike, one
# set everywhere: 0 none, 1-4 mild, 5-6 moderate, 7-10 severe (Serlin RC et al. 1995,
# Pain 61:277, the cut points of 5 and 7 on the BPI's 0-10 scale). A mean with decimals
# (BPI) falls where its value lies: above 0 and below 5 mild, 5 to below 7 moderate.
# Other studies found other cut points (e.g. Boonstra AM et al. 2016, Front Psychol
# 7:1466: <= 5 / 6-7 / >= 8 in chronic musculoskeletal pain); a clinic changes this one
# table, and every chart follows.
PAIN_SEVERITY_BANDS = (
    Band("none", 0, 0),
    Band("mild", 0, 5, lower_inclusive=False, upper_inclusive=False),
    Band("moderate", 5, 7, upper_inclusive=False),
    Band("severe", 7, 10),
)
PAIN_SEVERITY_SOURCE = ("Serlin RC et al. 1995, Pain 61:277: 1-4 mild, 5-6 moderate, "
                        "7-10 severe")
# PHQ-9 0-4 / 5-9 / 10-14 / 15-19 / 20-27 (Kroenke K et al. 2001, J Gen Intern Med 16:606)
PHQ9_BANDS = _steps(27, (0, "minimal"), (5, "mild"), (10, "moderate"),
                    (15, "moderately_severe"), (20, "severe"))
# GAD-7 0-4 / 5-9 / 10-14 / 15-21 (Spitzer RL et al. 2006, Arch Intern Med 166:1092)
GAD7_BANDS = _steps(21, (0, "minimal"), (5, "mild"), (10, "moderate"), (15, "severe"))
# PSEQ < 20 / 20-39 / >= 40: the clinic's reading of Nicholas MK 2007 (Eur J Pain 11:153),
# not a published cut-point set.
PSEQ_BANDS = _steps(60, (0, "low_confidence"), (20, "moderate_confidence"),
                    (40, "high_confidence"))
# painDETECT <= 12 unlikely, 13-18 unclear, >= 19 likely (Freynhagen R et al. 2006, Curr
# Med Res Opin 22:1911)
PAINDETECT_BANDS = _steps(38, (-1, "neuropathic_unlikely"), (13, "unclear"),
                          (19, "likely_neuropathic"))
# LANSS >= 12 likely neuropathic (Bennett M 2001, Pain 92:147)
LANSS_BANDS = _steps(24, (0, "neuropathic_unlikely"), (12, "likely_neuropathic"))
SAFETY_BANDS = (Band("negative", 0, 0), Band("positive", 0, 3, lower_inclusive=False))
# PGIC: the seven answers (Guy W 1976, ECDEU Assessment Manual, CGI-I; a core outcome in
# IMMPACT, Dworkin RH et al. 2005, Pain 113:9). "Much" or "very much improved" is a
# clinically important improvement (Dworkin RH et al. 2008, J Pain 9:105).
PGIC_ANSWERS = ((1, "very_much_improved", "Very much improved"),
                (2, "much_improved", "Much improved"),
                (3, "minimally_improved", "Minimally improved"),
                (4, "no_change", "No change"),
                (5, "minimally_worse", "Minimally worse"),
                (6, "much_worse", "Much worse"),
                (7, "very_much_worse", "Very much worse"))
PGIC_BANDS = tuple(Band(name, v, v) for v, name, _ in PGIC_ANSWERS)
PGIC_IMPORTANT_IMPROVEMENT = 2      # 1 or 2
PGIC_IMPORTANT_WORSENING = 6        # 6 or 7


def _screen(top: float, cutoff: float) -> tuple[Band, ...]:
    return _steps(top, (0, "neuropathic_unlikely"), (cutoff, "likely_neuropathic"))


def bands(code: str, scoring: Scoring = Scoring()) -> tuple[Band, ...]:
    """The bands of one measure, in ascending order (empty when it has none)."""
    if code in PAIN_INTENSITY_CODES or code == "bpi_interference":
        return PAIN_SEVERITY_BANDS
    fixed = {"phq9": PHQ9_BANDS, "gad7": GAD7_BANDS, "pseq": PSEQ_BANDS,
             "paindetect": PAINDETECT_BANDS, "lanss": LANSS_BANDS,
             SAFETY_MEASURE: SAFETY_BANDS, "pgic": PGIC_BANDS}
    if code in fixed:
        return fixed[code]
    if code == "dn4":
        return _screen(RANGES["dn4"][2], scoring.dn4_cutoff)
    if code == "dn4_interview":
        return _screen(RANGES["dn4_interview"][2], scoring.dn4_interview_cutoff)
    return ()


def band(code: str, value: float, scoring: Scoring = Scoring()) -> str:
    """The clinical band of one score ("" if the measure has no bands or the value lies
    outside them)."""
    for b in bands(code, scoring):
        if b.contains(value):
            return b.name
    return ""


# ------------------------------------------------------------------------- scoring

def flatten(measures: Mapping[str, Any]) -> dict[str, float]:
    """The API's nested measures -> flat codes with numbers; PHQ-9's total is computed
    from its nine items, item 9 kept on its own for the safety check, and a DN4 stored
    under its form's code (the two forms are different scales)."""
    flat: dict[str, float] = {}
    nrs = measures.get("nrs") or {}
    for part in ("current", "average", "worst"):
        if nrs.get(part) is not None:
            flat[f"nrs_{part}"] = nrs[part]
    if measures.get("dn4") is not None:
        form = measures.get("dn4_form") or DEFAULT_DN4_FORM
        if form not in DN4_FORMS:
            raise ValueError(f"no DN4 form {form!r}")
        flat[DN4_FORMS[form]] = measures["dn4"]
    for code in ("lanss", "paindetect", "gad7", "pseq", "pgic"):
        if measures.get(code) is not None:
            flat[code] = measures[code]
    phq9 = measures.get("phq9")
    if phq9 and phq9.get("items") is not None:
        items = list(phq9["items"])
        flat["phq9"] = sum(items)
        flat["phq9_item9"] = items[PHQ9_ITEMS - 1]
    bpi = measures.get("bpi") or {}
    for part in ("severity", "interference"):
        if bpi.get(part) is not None:
            flat[f"bpi_{part}"] = bpi[part]
    return flat


def out_of_range(flat: Mapping[str, float]) -> dict[str, str]:
    """Each measure outside its range, keyed by the request field it came from, with a
    message naming it (the schema checks the same table; this guards the domain against
    any other way in, and checks a DN4 against its own form's range)."""
    wrong = {}
    for code, value in flat.items():
        label, low, high = RANGES[code]
        if not low <= value <= high:
            wrong[REQUEST_FIELD.get(code, code)] = (
                f"{label} must be between {low:g} and {high:g}, got {value:g}")
    return wrong


@dataclass(frozen=True)
class Scored:
    code: str
    label: str
    value: float
    band: str


def score(flat: Mapping[str, float], scoring: Scoring = Scoring()) -> list[Scored]:
    """Every measure of a note with its label and band, in the table's order."""
    return [Scored(code, RANGES[code][0], flat[code], band(code, flat[code], scoring))
            for code in RANGES if code in flat]


# ------------------------------------------------------------------ meaningful change

@dataclass(frozen=True)
class Change:
    """A score against the patient's baseline."""

    change: float | None = None
    percent_change: float | None = None     # pain intensity only; None from a baseline of 0
    meaningful: str | None = None
    beyond_measurement_error: bool | None = None   # PSEQ only (None: no figure known)


# code -> (Scoring field of its MIC, whether a lower score is better)
_MIC: dict[str, tuple[str, bool]] = {
    "phq9": ("mic_phq9", True),
    "gad7": ("mic_gad7", True),
    "bpi_interference": ("mic_bpi_interference", True),
    "pseq": ("mic_pseq", False),
}


def _pain_intensity_change(baseline: float, value: float) -> Change:
    delta = value - baseline
    percent = None if baseline == 0 else round(delta / baseline * 100, 1)
    fall, rise = -delta, delta
    # compared as fall * 100 >= 30 * baseline: no division, no float noise at 30 % exactly
    if fall >= NRS_MIN_POINTS - _EPS:
        if fall * 100 >= NRS_SUBSTANTIAL_PERCENT * baseline - _EPS:
            return Change(delta, percent, "substantial_improvement")
        if fall * 100 >= NRS_MODERATE_PERCENT * baseline - _EPS:
            return Change(delta, percent, "moderate_improvement")
    # From a baseline of 0 there is no percentage: a pain-free patient now in any pain
    # has worsened (the reading of IMMPACT; the 2-point rule applies otherwise).
    if baseline == 0 and rise > _EPS:
        return Change(delta, percent, "worsening")
    if rise >= NRS_MIN_POINTS - _EPS and rise * 100 >= NRS_MODERATE_PERCENT * baseline - _EPS:
        return Change(delta, percent, "worsening")
    return Change(delta, percent)


def meaningful_change(code: str, baseline: float, value: float,
                      scoring: Scoring = Scoring()) -> Change:
    """A score against the patient's baseline, and whether the change is clinically
    important by the instrument's published threshold (see the constants above)."""
    if code == "pgic":
        return Change(meaningful=pgic_meaning(value))
    if code in PAIN_INTENSITY_CODES:
        return _pain_intensity_change(baseline, value)
    delta = value - baseline
    if code not in _MIC:
        return Change(delta)
    mic_field, lower_is_better = _MIC[code]
    mic = getattr(scoring, mic_field)
    better = -delta if lower_is_better else delta
    label = None
    if better >= mic - _EPS:
        label = "meaningful_improvement"
    elif better <= -mic + _EPS:
        label = "meaningful_deterioration"
    beyond = abs(delta) > scoring.pseq_measurement_error if code == "pseq" else None
    return Change(delta, None, label, beyond)


def pgic_meaning(value: float) -> str | None:
    """PGIC is a change in itself: much or very much improved is a clinically important
    improvement, much or very much worse an important worsening."""
    if value <= PGIC_IMPORTANT_IMPROVEMENT:
        return "meaningful_improvement"
    if value >= PGIC_IMPORTANT_WORSENING:
        return "meaningful_deterioration"
    return None


# --------------------------------------------------------------------------- trends

@dataclass(frozen=True)
class Baseline:
    """The patient's first signed score of a measure: what every change is against."""

    note_id: str
    at: datetime
    value: float


@dataclass(frozen=True)
class Point:
    note_id: str
    at: datetime
    value: float
    band: str
    change: float | None = None          # from the patient's baseline
    percent_change: float | None = None  # from the baseline, pain intensity only
    meaningful: str | None = None        # clinically meaningful change, if any
    beyond_measurement_error: bool | None = None


@dataclass
class Trend:
    code: str
    label: str
    points: list[Point] = field(default_factory=list)
    baseline: Baseline | None = None

    @property
    def latest(self) -> Point | None:
        return self.points[-1] if self.points else None


Observation = tuple[str, datetime, Mapping[str, float]]


def _in_order(observations: Iterable[Observation]) -> list[Observation]:
    return sorted(observations, key=lambda o: (o[1], o[0]))


def baselines(observations: Iterable[Observation]) -> dict[str, Baseline]:
    """Per measure, the first score in visit order: pass the patient's signed notes,
    all of them, whatever a reader has filtered to."""
    out: dict[str, Baseline] = {}
    for note_id, at, flat in _in_order(observations):
        for code, value in flat.items():
            if code in RANGES and code not in out:
                out[code] = Baseline(note_id, at, value)
    return out


def trends(observations: Iterable[Observation], scoring: Scoring = Scoring(),
           baseline_of: Mapping[str, Baseline] | None = None) -> dict[str, Trend]:
    """Per measure, its points in time order with change against the patient's baseline,
    ready for a chart. `observations` are (note id, when, flat measures) of signed notes;
    `baseline_of` the patient's first scores (`baselines()` of all their signed notes),
    so that filtering the timeline never changes what a change is measured from. Without
    it, the first observation is the baseline."""
    ordered = _in_order(observations)
    first = dict(baseline_of) if baseline_of is not None else baselines(ordered)
    for code, b in baselines(ordered).items():
        first.setdefault(code, b)
    out: dict[str, Trend] = {}
    for note_id, at, flat in ordered:
        for code in RANGES:
            if code not in flat:
                continue
            value = flat[code]
            base = first[code]
            trend = out.setdefault(code, Trend(code, RANGES[code][0],
                                               baseline=None if code == "pgic" else base))
            point = Point(note_id, at, value, band(code, value, scoring))
            if code == "pgic":
                point = Point(note_id, at, value, point.band, meaningful=pgic_meaning(value))
            elif note_id != base.note_id:
                c = meaningful_change(code, base.value, value, scoring)
                point = Point(note_id, at, value, point.band, change=c.change,
                              percent_change=c.percent_change, meaningful=c.meaningful,
                              beyond_measurement_error=c.beyond_measurement_error)
            trend.points.append(point)
    return {code: out[code] for code in RANGES if code in out}


# ------------------------------------------------------------------------ catalogue
# What each instrument is, for the people filling it in and the charts reading it:
# served at GET /measures. Item texts only where the instrument is free to reproduce
# (PHQ-9 and GAD-7: Pfizer, "no permission required to reproduce, translate, display or
# distribute"); the others are under their authors' copyright and are named, not copied.

FREQUENCY_ANSWERS = ((0, "Not at all"), (1, "Several days"), (2, "More than half the days"),
                     (3, "Nearly every day"))
PHQ9_STEM = "Over the last 2 weeks, how often have you been bothered by any of the " \
            "following problems?"
PHQ9_QUESTIONS = (
    "Little interest or pleasure in doing things",
    "Feeling down, depressed, or hopeless",
    "Trouble falling or staying asleep, or sleeping too much",
    "Feeling tired or having little energy",
    "Poor appetite or overeating",
    "Feeling bad about yourself \u2014 or that you are a failure or have let yourself or "
    "your family down",
    "Trouble concentrating on things, such as reading the newspaper or watching television",
    "Moving or speaking so slowly that other people could have noticed? Or the opposite "
    "\u2014 being so fidgety or restless that you have been moving around a lot more than "
    "usual",
    "Thoughts that you would be better off dead or of hurting yourself in some way",
)
GAD7_STEM = "Over the last 2 weeks, how often have you been bothered by the following " \
            "problems?"
GAD7_QUESTIONS = (
    "Feeling nervous, anxious, or on edge",
    "Not being able to stop or control worrying",
    "Worrying too much about different things",
    "Trouble relaxing",
    "Being so restless that it is hard to sit still",
    "Becoming easily annoyed or irritable",
    "Feeling afraid, as if something awful might happen",
)
assert len(PHQ9_QUESTIONS) == PHQ9_ITEMS and len(GAD7_QUESTIONS) == GAD7_ITEMS

_IMMPACT = "Dworkin RH et al. 2008, J Pain 9:105 (IMMPACT)"
_PAIN_CHANGE = {
    "rule": "pain_intensity", "points": NRS_MIN_POINTS,
    "moderate_percent": NRS_MODERATE_PERCENT, "substantial_percent": NRS_SUBSTANTIAL_PERCENT,
    "better": "lower",
    "source": f"{_IMMPACT}: moderate improvement >= 30 % and >= 2 points, substantial "
              ">= 50 % and >= 2 points; worsening: a rise of >= 2 points and >= 30 %, "
              "or any rise from 0"}
_BAND_SOURCES = {
    "phq9": "Kroenke K et al. 2001, J Gen Intern Med 16:606",
    "gad7": "Spitzer RL et al. 2006, Arch Intern Med 166:1092",
    "pseq": "clinic convention (reading of Nicholas MK 2007, Eur J Pain 11:153); not a "
            "published cut-point set",
    "paindetect": "Freynhagen R et al. 2006, Curr Med Res Opin 22:1911",
    "lanss": "Bennett M 2001, Pain 92:147",
    "dn4": "Bouhassira D et al. 2005, Pain 114:29 (cut-off NOTES_DN4_CUTOFF)",
    "dn4_interview": "Bouhassira D et al. 2005, Pain 114:29 (cut-off "
                     "NOTES_DN4_INTERVIEW_CUTOFF)",
    SAFETY_MEASURE: "any answer above 'Not at all' is a safety concern (Kroenke K et al. "
                    "2001)",
    "pgic": "Guy W 1976, ECDEU Assessment Manual (CGI-I answers)",
}


def _mic(code: str, scoring: Scoring) -> dict[str, Any] | None:
    if code in PAIN_INTENSITY_CODES:
        return dict(_PAIN_CHANGE)
    sources = {
        "phq9": "Löwe B et al. 2004, Med Care 42:1194",
        "gad7": "Toussaint A et al. 2020, J Affect Disord 265:395",
        "bpi_interference": _IMMPACT,
        "pseq": "Chiarotto A et al. 2016, J Pain 17:707 (MIC 5.5-8.5); measurement error: "
                "Dubé MO et al. 2021, Pain Rep 6:e972 (MDC95 11.52)",
    }
    if code == "pgic":
        return {"rule": "answer", "better": "lower",
                "source": f"{_IMMPACT}: 'much' or 'very much improved' is a clinically "
                          "important improvement"}
    if code not in _MIC:
        return None
    mic_field, lower_is_better = _MIC[code]
    out: dict[str, Any] = {"rule": "points", "points": getattr(scoring, mic_field),
                           "better": "lower" if lower_is_better else "higher",
                           "source": sources[code]}
    if code == "pseq":
        out["measurement_error"] = scoring.pseq_measurement_error
    return out


def _score_entry(code: str, scoring: Scoring, *, decimals: bool = False) -> dict[str, Any]:
    label, low, high = RANGES[code]
    source = PAIN_SEVERITY_SOURCE if bands(code, scoring) is PAIN_SEVERITY_BANDS \
        else _BAND_SOURCES.get(code)
    return {"code": code, "label": label, "min": low, "max": high, "decimals": decimals,
            "bands": [vars(b) for b in bands(code, scoring)], "bands_source": source,
            "change": _mic(code, scoring)}


def _items(texts: Iterable[str], safety_item: int | None = None) -> list[dict[str, Any]]:
    return [{"number": i, "text": t, "safety": i == safety_item}
            for i, t in enumerate(texts, start=1)]


def _answers(answers: Iterable[tuple[int, str]]) -> list[dict[str, Any]]:
    return [{"value": v, "label": label} for v, label in answers]


def catalogue(scoring: Scoring = Scoring()) -> list[dict[str, Any]]:
    """Every instrument the clinic records: its scores with ranges, bands and important
    change (each with its source), and its questions where they are free to show."""
    def instrument(code: str, name: str, scores: list[dict[str, Any]], source: str,
                   **more: Any) -> dict[str, Any]:
        return {"code": code, "name": name, "scores": scores, "source": source,
                "stem": None, "items": [], "answers": [], "forms": [], **more}

    return [
        instrument(
            "nrs", "Numeric Rating Scale for pain (0-10)",
            [_score_entry(c, scoring) for c in NRS_CODES],
            "0 = no pain, 10 = worst pain imaginable; current, average and worst pain",
            request_field="nrs"),
        instrument(
            "dn4", "Douleur Neuropathique 4 (DN4)",
            [_score_entry("dn4", scoring), _score_entry("dn4_interview", scoring)],
            "Bouhassira D et al. 2005, Pain 114:29",
            request_field="dn4",
            forms=[{"form": "full", "code": "dn4", "name": "DN4 (interview and examination, "
                    "10 items)", "min": 0, "max": 10, "cutoff": scoring.dn4_cutoff},
                   {"form": "interview", "code": "dn4_interview",
                    "name": "DN4-interview (7 sensory items, no examination)", "min": 0,
                    "max": 7, "cutoff": scoring.dn4_interview_cutoff}]),
        instrument("lanss", "Leeds Assessment of Neuropathic Symptoms and Signs (LANSS)",
                   [_score_entry("lanss", scoring)], "Bennett M 2001, Pain 92:147",
                   request_field="lanss"),
        instrument("paindetect", "painDETECT", [_score_entry("paindetect", scoring)],
                   "Freynhagen R et al. 2006, Curr Med Res Opin 22:1911",
                   request_field="paindetect"),
        instrument(
            "phq9", "Patient Health Questionnaire-9 (PHQ-9)",
            [_score_entry("phq9", scoring), _score_entry(SAFETY_MEASURE, scoring)],
            "Kroenke K, Spitzer RL, Williams JB 2001, J Gen Intern Med 16:606; developed "
            "with an educational grant from Pfizer Inc., free to reproduce",
            request_field="phq9.items", stem=PHQ9_STEM,
            items=_items(PHQ9_QUESTIONS, safety_item=PHQ9_ITEMS),
            answers=_answers(FREQUENCY_ANSWERS)),
        instrument(
            "gad7", "Generalized Anxiety Disorder-7 (GAD-7)", [_score_entry("gad7", scoring)],
            "Spitzer RL, Kroenke K, Williams JB, Löwe B 2006, Arch Intern Med 166:1092; free "
            "to reproduce", request_field="gad7", stem=GAD7_STEM,
            items=_items(GAD7_QUESTIONS), answers=_answers(FREQUENCY_ANSWERS)),
        instrument(
            "bpi", "Brief Pain Inventory (BPI): severity and interference",
            [_score_entry("bpi_severity", scoring, decimals=True),
             _score_entry("bpi_interference", scoring, decimals=True)],
            "Cleeland CS, Ryan KM 1994, Ann Acad Med Singapore 23:129 (copyright: item "
            "texts not reproduced); scores are the means of the items, 0-10",
            request_field="bpi"),
        instrument("pseq", "Pain Self-Efficacy Questionnaire (PSEQ)",
                   [_score_entry("pseq", scoring)],
                   "Nicholas MK 2007, Eur J Pain 11:153 (10 items, 0-6 each; higher is "
                   "more confident)", request_field="pseq"),
        instrument(
            "pgic", "Patient Global Impression of Change (PGIC)",
            [_score_entry("pgic", scoring)],
            "Guy W 1976 (CGI-I); an IMMPACT core outcome (Dworkin RH et al. 2005, "
            "Pain 113:9)", request_field="pgic",
            stem="Since the start of treatment, how would you describe the change (if any) "
                 "in your pain and how it affects your life?",
            answers=[{"value": v, "label": label} for v, _, label in PGIC_ANSWERS]),
    ]
