"""Outcome measures in the clinic's terms: their valid ranges, how each is scored and
banded, and what counts as a clinically meaningful change over time.

Pure: no Flask, SQLAlchemy or Kafka. The API validates ranges with the same `RANGES`
table, so a range is written once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# code -> (label, low, high). The flattened codes are what notes store, events carry
# and the timeline charts.
RANGES: dict[str, tuple[str, float, float]] = {
    "nrs_current": ("NRS current pain", 0, 10),
    "nrs_average": ("NRS average pain", 0, 10),
    "nrs_worst": ("NRS worst pain", 0, 10),
    "dn4": ("DN4", 0, 10),
    "lanss": ("LANSS", 0, 24),
    "paindetect": ("painDETECT", -1, 38),
    "phq9": ("PHQ-9", 0, 27),
    "phq9_item9": ("PHQ-9 item 9 (thoughts of self-harm)", 0, 3),
    "gad7": ("GAD-7", 0, 21),
    "bpi_severity": ("BPI pain severity", 0, 10),
    "bpi_interference": ("BPI pain interference", 0, 10),
    "pseq": ("PSEQ", 0, 60),
}
PHQ9_ITEMS = 9
PHQ9_ITEM_RANGE = (0, 3)
DEFAULT_DN4_CUTOFF = 4
SAFETY_MEASURE = "phq9_item9"

# Bands as (lowest score of the band, name), ascending.
_PHQ9 = ((0, "minimal"), (5, "mild"), (10, "moderate"), (15, "moderately_severe"),
         (20, "severe"))
_GAD7 = ((0, "minimal"), (5, "mild"), (10, "moderate"), (15, "severe"))
_NRS = ((0, "none"), (1, "mild"), (4, "moderate"), (7, "severe"))
_BPI = ((0, "none"), (0.01, "mild"), (5, "moderate"), (7, "severe"))
_PSEQ = ((0, "low_confidence"), (20, "moderate_confidence"), (40, "high_confidence"))
_PAINDETECT = ((-1, "neuropathic_unlikely"), (13, "unclear"), (19, "likely_neuropathic"))

NRS_CODES = ("nrs_current", "nrs_average", "nrs_worst")


@dataclass(frozen=True)
class Scoring:
    """Clinic-configurable thresholds (DN4's cut-off varies between clinics: 3 or 4)."""

    dn4_cutoff: int = DEFAULT_DN4_CUTOFF


def _band(value: float, bands: Iterable[tuple[float, str]]) -> str:
    name = ""
    for low, label in bands:
        if value >= low:
            name = label
    return name


def flatten(measures: Mapping[str, Any]) -> dict[str, float]:
    """The API's nested measures -> flat codes with numbers; PHQ-9's total is computed
    from its nine items, and item 9 kept on its own for the safety check."""
    flat: dict[str, float] = {}
    nrs = measures.get("nrs") or {}
    for part in ("current", "average", "worst"):
        if nrs.get(part) is not None:
            flat[f"nrs_{part}"] = nrs[part]
    for code in ("dn4", "lanss", "paindetect", "gad7", "pseq"):
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
    """Each measure outside its range, with a message naming it (the schema checks the
    same table; this guards the domain against any other way in)."""
    wrong = {}
    for code, value in flat.items():
        label, low, high = RANGES[code]
        if not low <= value <= high:
            wrong[code] = f"{label} must be between {low:g} and {high:g}, got {value:g}"
    return wrong


def band(code: str, value: float, scoring: Scoring = Scoring()) -> str:
    """The clinical band of one score."""
    if code == "phq9":
        return _band(value, _PHQ9)
    if code == "gad7":
        return _band(value, _GAD7)
    if code in NRS_CODES:
        return _band(value, _NRS)
    if code.startswith("bpi_"):
        return _band(value, _BPI)
    if code == "pseq":
        return _band(value, _PSEQ)
    if code == "lanss":
        return "likely_neuropathic" if value >= 12 else "neuropathic_unlikely"
    if code == "paindetect":
        return _band(value, _PAINDETECT)
    if code == "dn4":
        return "likely_neuropathic" if value >= scoring.dn4_cutoff else "neuropathic_unlikely"
    if code == SAFETY_MEASURE:
        return "positive" if value > 0 else "negative"
    return ""


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


def safety_positive(flat: Mapping[str, float]) -> bool:
    """PHQ-9 item 9 above 0 is a safety concern whatever the total."""
    return flat.get(SAFETY_MEASURE, 0) > 0


# --------------------------------------------------------------------------- trends

@dataclass(frozen=True)
class Point:
    note_id: str
    at: datetime
    value: float
    band: str
    change: float | None = None          # from the baseline (first point)
    percent_change: float | None = None  # from the baseline, NRS only
    meaningful: str | None = None        # clinically meaningful change, if any


@dataclass
class Trend:
    code: str
    label: str
    points: list[Point] = field(default_factory=list)

    @property
    def latest(self) -> Point | None:
        return self.points[-1] if self.points else None


def meaningful_change(code: str, baseline: float, value: float) -> tuple[float | None, str | None]:
    """(percent change, label) against the baseline.

    NRS: a fall of 30 % is a moderate, of 50 % a substantial improvement (IMMPACT).
    PSEQ: a change of 7 points or more either way is meaningful.
    """
    if code in NRS_CODES or code == "bpi_severity":
        if baseline <= 0:
            return None, None
        drop = (baseline - value) / baseline * 100
        if drop >= 50:
            return -drop, "substantial_improvement"
        if drop >= 30:
            return -drop, "moderate_improvement"
        if drop <= -30:
            return -drop, "worsening"
        return -drop, None
    if code == "pseq":
        delta = value - baseline
        if delta >= 7:
            return None, "meaningful_improvement"
        if delta <= -7:
            return None, "meaningful_deterioration"
    return None, None


def trends(observations: Iterable[tuple[str, datetime, Mapping[str, float]]],
           scoring: Scoring = Scoring()) -> dict[str, Trend]:
    """Per measure, its points in time order with change against the first, ready for a
    chart. `observations` are (note id, when, flat measures) of signed notes."""
    out: dict[str, Trend] = {}
    for note_id, at, flat in sorted(observations, key=lambda o: (o[1], o[0])):
        for code in RANGES:
            if code not in flat:
                continue
            value = flat[code]
            trend = out.setdefault(code, Trend(code, RANGES[code][0]))
            if not trend.points:
                trend.points.append(Point(note_id, at, value, band(code, value, scoring)))
                continue
            baseline = trend.points[0].value
            percent, label = meaningful_change(code, baseline, value)
            trend.points.append(Point(
                note_id, at, value, band(code, value, scoring), change=value - baseline,
                percent_change=None if percent is None else round(percent, 1),
                meaningful=label))
    return {code: out[code] for code in RANGES if code in out}
