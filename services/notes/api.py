"""HTTP routes of the notes service and their schemas. Thin: validate, call a use case in
`care_notes`, shape the answer. Ranges come from `measures.RANGES`, so every 422 for
an out-of-range score names the measure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask import Response, current_app, jsonify
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy import select

from services.notes import care_notes as uc
from services.notes import domain as d
from services.notes import measures as m
from services.notes import safety
from services.notes.db import BreakGlassRepository, TimelineFilter, aware
from shared.errors import InvalidInput
from shared.events.vocabulary import DISCIPLINES
from shared.runtime import Runtime
from shared.web import PageArgs, current_principal, roles

blp = Blueprint("notes", __name__, description="Care notes, measures and the care team")
admin_blp = Blueprint("notes_admin", __name__, description="Audit trail and break-glass report")

MAX_SECTION = 20_000
# Every signed-in role reaches the patient-data routes, so that the use case itself
# refuses anyone outside the care team *and* audits the attempt (a scheduler included).
ANYONE = ("specialist", "scheduler", "service")
# admin reaches a patient's notes only through break-glass (with a reason, audited):
# the use cases refuse it otherwise.
READERS = (*ANYONE, "admin")


def _runtime() -> Runtime:
    return current_app.extensions["paincare.runtime"]


def _now() -> datetime:
    return datetime.now(UTC)


def _patient(patient_id: str) -> str:
    if not 1 <= len(patient_id) <= 64:
        raise InvalidInput("a patient id has 1 to 64 characters", field="patient_id")
    return patient_id


# ------------------------------------------------------------------------ measures

def _score(code: str, *, integer: bool = True) -> fields.Field:
    label, low, high = m.RANGES[code]
    rng = validate.Range(min=low, max=high, error=f"{label} must be between {{min}} and "
                                                   f"{{max}}, got {{input}}")
    if integer:
        return fields.Integer(strict=True, validate=rng, allow_none=True,
                              metadata={"description": f"{label}, {low:g}-{high:g}"})
    return fields.Float(validate=rng, allow_none=True, allow_nan=False,
                        metadata={"description": f"{label}, {low:g}-{high:g}"})


class NrsIn(ma.Schema):
    current = _score("nrs_current")
    average = _score("nrs_average")
    worst = _score("nrs_worst")


class Phq9In(ma.Schema):
    items = fields.List(
        fields.Integer(strict=True, validate=validate.Range(
            min=0, max=3, error="PHQ-9 item scores are between {min} and {max}, got {input}")),
        required=True,
        validate=validate.Length(equal=m.PHQ9_ITEMS, error="PHQ-9 takes its nine item scores"),
        metadata={"description": "the nine item scores (0-3); item 9 is thoughts of "
                                 "self-harm. The total is computed."})


class BpiIn(ma.Schema):
    severity = _score("bpi_severity", integer=False)
    interference = _score("bpi_interference", integer=False)


class MeasuresIn(ma.Schema):
    nrs = fields.Nested(NrsIn)
    dn4 = _score("dn4")
    dn4_form = fields.String(
        validate=validate.OneOf(tuple(m.DN4_FORMS)),
        metadata={"description": "which DN4 was used: `full` (10 items with the "
                                 "examination, 0-10, the default) or `interview` (the 7 "
                                 "sensory items, 0-7); kept with the note"})
    lanss = _score("lanss")
    paindetect = _score("paindetect")
    phq9 = fields.Nested(Phq9In)
    gad7 = _score("gad7")
    bpi = fields.Nested(BpiIn)
    pseq = _score("pseq")
    pgic = _score("pgic")

    @ma.validates_schema(skip_on_field_errors=True)   # a form it knows, a number
    def _dn4_in_its_forms_range(self, data: dict, **_kw: Any) -> None:
        """A DN4 score lies in the range of the form it was taken with."""
        form = data.get("dn4_form")
        if form and data.get("dn4") is None:
            raise ma.ValidationError("give the DN4 score with its form", "dn4")
        if data.get("dn4") is not None:
            wrong = m.out_of_range(m.flatten({"dn4": data["dn4"], "dn4_form": form}))
            if wrong:
                raise ma.ValidationError(wrong["dn4"], "dn4")

    @ma.post_load
    def _drop_empty(self, data: dict, **_kw: Any) -> dict:
        out = {k: v for k, v in data.items() if v is not None}
        for key in ("nrs", "bpi"):
            if key in out:
                out[key] = {k: v for k, v in out[key].items() if v is not None}
        if "dn4" in out:
            out.setdefault("dn4_form", m.DEFAULT_DN4_FORM)   # the note says which form
        return out


# ----------------------------------------------------------------------- treatment

class AcupunctureIn(ma.Schema):
    points = fields.List(fields.String(validate=validate.Length(min=1, max=20)),
                         required=True, validate=validate.Length(min=1, max=60),
                         metadata={"example": ["LI4", "ST36", "SP6"]})
    needle_count = fields.Integer(strict=True, required=True,
                                  validate=validate.Range(min=1, max=100))
    retention_minutes = fields.Integer(strict=True, validate=validate.Range(min=1, max=120))
    electroacupuncture = fields.Boolean(load_default=False)


class ExerciseIn(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    sets = fields.Integer(strict=True, validate=validate.Range(min=1, max=20))
    reps = fields.Integer(strict=True, validate=validate.Range(min=1, max=200))
    hold_seconds = fields.Integer(strict=True, validate=validate.Range(min=1, max=600))


class PhysicalTherapyIn(ma.Schema):
    exercises = fields.List(fields.Nested(ExerciseIn), required=True,
                            validate=validate.Length(min=1, max=40))
    modalities = fields.List(fields.String(validate=validate.Length(max=80)),
                             validate=validate.Length(max=20))


CBT_MODULES = ("psychoeducation", "pacing", "activity_scheduling", "cognitive_restructuring",
               "relaxation", "sleep", "mindfulness", "acceptance_commitment",
               "relapse_prevention")


class PsychologyIn(ma.Schema):
    cbt_module = fields.String(required=True, validate=validate.OneOf(CBT_MODULES))
    session_number = fields.Integer(strict=True, validate=validate.Range(min=1, max=52))


class MedicationIn(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    dose = fields.String(validate=validate.Length(max=80))
    change = fields.String(validate=validate.OneOf(("start", "increase", "decrease", "stop",
                                                    "continue")))


class PainMedicineIn(ma.Schema):
    medications = fields.List(fields.Nested(MedicationIn), validate=validate.Length(max=30))
    procedure = fields.String(validate=validate.Length(max=200))


class TreatmentIn(ma.Schema):
    """The treatment details of the author's own discipline."""

    acupuncture = fields.Nested(AcupunctureIn)
    physical_therapy = fields.Nested(PhysicalTherapyIn)
    psychology = fields.Nested(PsychologyIn)
    pain_medicine = fields.Nested(PainMedicineIn)


_ALL_SECTIONS = sorted({s for names in d.SECTIONS.values() for s in names})
_sections = fields.Dict(
    keys=fields.String(validate=validate.OneOf(_ALL_SECTIONS)),
    values=fields.String(validate=validate.Length(max=MAX_SECTION)),
    metadata={"description": "free text by section: progress notes are SOAP (subjective, "
                             "objective, assessment, plan); see each kind's sections"})


class NoteIn(ma.Schema):
    kind = fields.String(required=True, validate=validate.OneOf(d.AUTHORED_KINDS))
    encounter_at = fields.AwareDateTime(metadata={"description": "when the visit took "
                                                                 "place; now if absent"})
    sections = _sections
    measures = fields.Nested(MeasuresIn, load_default=dict)
    treatment = fields.Nested(TreatmentIn, load_default=dict)


class NoteEditIn(ma.Schema):
    version = fields.Integer(required=True, strict=True,
                             metadata={"description": "the version this save replaces"})
    encounter_at = fields.AwareDateTime()
    sections = _sections
    measures = fields.Nested(MeasuresIn)
    treatment = fields.Nested(TreatmentIn)


class AddendumIn(ma.Schema):
    text = fields.String(required=True, validate=validate.Length(min=1, max=MAX_SECTION))


class ReasonIn(ma.Schema):
    reason = fields.String(required=True, validate=validate.Length(min=5, max=1000))


class BreakGlassIn(ma.Schema):
    reason = fields.String(required=True, validate=validate.Length(min=10, max=1000))


# --------------------------------------------------------------------------- output

class ScoreOut(ma.Schema):
    code = fields.String()
    label = fields.String()
    value = fields.Float()
    band = fields.String()


class ErrorMarkOut(ma.Schema):
    at = fields.DateTime()
    by = fields.String()
    reason = fields.String()


class NoteOut(ma.Schema):
    id = fields.String()
    patient_id = fields.String()
    author_id = fields.String()
    discipline = fields.String()
    kind = fields.String()
    status = fields.String()
    version = fields.Integer()
    encounter_at = fields.DateTime()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    signed_at = fields.DateTime(allow_none=True)
    amends_note_id = fields.String(allow_none=True)
    addenda = fields.List(fields.String())
    sections = fields.Dict(keys=fields.String(), values=fields.String())
    measures = fields.Dict()
    scores = fields.List(fields.Nested(ScoreOut))
    treatment = fields.Dict()
    entered_in_error = fields.Nested(ErrorMarkOut, allow_none=True)
    safety_alert = fields.Boolean(metadata={"description": "true while the note has a safety "
                                                           "alert not yet closed"})
    safety_alert_id = fields.String(allow_none=True,
                                    metadata={"description": "the alert the note shows: an "
                                                             "unclosed one, else the last"})
    safety_alert_status = fields.String(allow_none=True,
                                        validate=validate.OneOf(safety.STATUSES))
    safety_alert_severity = fields.Integer(allow_none=True)
    access = fields.String()
    withheld = fields.Boolean(metadata={
        "description": "a sensitive note (NOTES_SENSITIVE_DISCIPLINES) shown without its "
                       "text: sections, measures' items and treatment are for its author "
                       "and discipline until the author shares it"})
    shared_at = fields.DateTime(allow_none=True)


class VersionOut(ma.Schema):
    note_id = fields.String()
    version = fields.Integer()
    saved_at = fields.DateTime()
    saved_by = fields.String()
    encounter_at = fields.DateTime()
    sections = fields.Dict()
    measures = fields.Dict()
    treatment = fields.Dict()


class PointOut(ma.Schema):
    note_id = fields.String()
    at = fields.DateTime()
    value = fields.Float()
    band = fields.String()
    change = fields.Float(allow_none=True)
    percent_change = fields.Float(allow_none=True)
    meaningful = fields.String(allow_none=True)
    beyond_measurement_error = fields.Boolean(
        allow_none=True, metadata={"description": "PSEQ: the change exceeds the "
                                                  "instrument's measurement error"})


class BaselineOut(ma.Schema):
    note_id = fields.String()
    at = fields.DateTime()
    value = fields.Float()


class TrendOut(ma.Schema):
    code = fields.String()
    label = fields.String()
    points = fields.List(fields.Nested(PointOut))
    baseline = fields.Nested(BaselineOut, allow_none=True,
                             metadata={"description": "the patient's first signed score of "
                                                      "the measure, whatever the filter: "
                                                      "every change is against it"})
    latest_band = fields.String(allow_none=True)
    meaningful = fields.String(allow_none=True,
                               metadata={"description": "the latest point's clinically "
                                                        "meaningful change, if any"})


class TimelineOut(ma.Schema):
    patient_id = fields.String()
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()
    notes = fields.List(fields.Nested(NoteOut))
    trends = fields.Dict(keys=fields.String(), values=fields.Nested(TrendOut))
    access = fields.String()


class BandOut(ma.Schema):
    name = fields.String()
    lower = fields.Float()
    upper = fields.Float()
    lower_inclusive = fields.Boolean()
    upper_inclusive = fields.Boolean()


class ChangeRuleOut(ma.Schema):
    rule = fields.String(metadata={"description": "`pain_intensity` (points and percent), "
                                                  "`points`, or `answer` (PGIC)"})
    points = fields.Float()
    moderate_percent = fields.Float()
    substantial_percent = fields.Float()
    measurement_error = fields.Float()
    better = fields.String(metadata={"description": "`lower` or `higher` scores"})
    source = fields.String()


class ScoreDefOut(ma.Schema):
    code = fields.String(metadata={"description": "the code notes, trends and events use"})
    label = fields.String()
    min = fields.Float()
    max = fields.Float()
    decimals = fields.Boolean()
    bands = fields.List(fields.Nested(BandOut))
    bands_source = fields.String(allow_none=True)
    change = fields.Nested(ChangeRuleOut, allow_none=True,
                           metadata={"description": "the clinically important change"})


class ItemOut(ma.Schema):
    number = fields.Integer()
    text = fields.String()
    safety = fields.Boolean(metadata={"description": "the self-harm item (PHQ-9 item 9)"})


class AnswerOut(ma.Schema):
    value = fields.Integer()
    label = fields.String()


class FormOut(ma.Schema):
    form = fields.String()
    code = fields.String()
    name = fields.String()
    min = fields.Float()
    max = fields.Float()
    cutoff = fields.Float()


class InstrumentOut(ma.Schema):
    code = fields.String()
    name = fields.String()
    request_field = fields.String(metadata={"description": "where it goes in a note's "
                                                           "`measures`"})
    source = fields.String()
    scores = fields.List(fields.Nested(ScoreDefOut))
    stem = fields.String(allow_none=True)
    items = fields.List(fields.Nested(ItemOut))
    answers = fields.List(fields.Nested(AnswerOut))
    forms = fields.List(fields.Nested(FormOut))


class TimelineArgs(ma.Schema):
    discipline = fields.List(fields.String(validate=validate.OneOf(DISCIPLINES)),
                             load_default=list)
    kind = fields.List(fields.String(validate=validate.OneOf(d.KINDS)), load_default=list)
    author_id = fields.String(validate=validate.Length(max=64))
    since = fields.AwareDateTime()
    until = fields.AwareDateTime()
    measure = fields.List(fields.String(validate=validate.OneOf(tuple(m.RANGES))),
                          load_default=list,
                          metadata={"description": "the trends to chart (all if none named)"})
    include_entered_in_error = fields.Boolean(
        load_default=False,
        metadata={"description": "the author's own; all to an admin through break-glass"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class MemberOut(ma.Schema):
    member_id = fields.String()
    discipline = fields.String(allow_none=True)
    source = fields.String()
    referral_id = fields.String(allow_none=True)
    joined_at = fields.DateTime()
    left_at = fields.DateTime(allow_none=True)
    active = fields.Boolean()


class BreakGlassOut(ma.Schema):
    id = fields.String()
    patient_id = fields.String()
    opened_at = fields.DateTime()
    expires_at = fields.DateTime()
    in_care_team = fields.Boolean()


class BreakGlassReportOut(ma.Schema):
    id = fields.String()
    patient_id = fields.String()
    actor_subject = fields.String()
    actor_id = fields.String()
    discipline = fields.String(allow_none=True)
    reason = fields.String()
    opened_at = fields.DateTime()
    expires_at = fields.DateTime()


class AuditArgs(PageArgs):
    patient_id = fields.String(validate=validate.Length(max=64))
    actor = fields.String(validate=validate.Length(max=120))
    action = fields.String(validate=validate.Length(max=60))
    resource_id = fields.String(validate=validate.Length(max=64))
    outcome = fields.String(validate=validate.OneOf(("allowed", "denied", "break_glass")))
    since = fields.AwareDateTime()
    until = fields.AwareDateTime()


class AuditOut(ma.Schema):
    id = fields.Integer()
    at = fields.DateTime()
    actor = fields.String()
    actor_role = fields.String()
    action = fields.String()
    resource = fields.String()
    resource_id = fields.String(allow_none=True)
    patient_id = fields.String(allow_none=True)
    outcome = fields.String()
    reason = fields.String(allow_none=True)
    correlation_id = fields.String(allow_none=True)


class ReportArgs(PageArgs):
    since = fields.AwareDateTime()


# -------------------------------------------------------------------------- shaping

def _withheld(note: d.Note) -> bool:
    return d.withheld(note, uc.clinician(current_principal()),
                      uc.sensitive_disciplines(_runtime()))


def _shape(note: d.Note, *, addenda: list[str] | None = None,
           alert: safety.Alert | None = None, access: d.Access | None = None,
           scoring: m.Scoring | None = None) -> dict[str, Any]:
    scored = m.score(note.scores, scoring or m.Scoring())
    hidden = _withheld(note)
    mark = None
    if note.entered_in_error_at:
        mark = {"at": note.entered_in_error_at, "by": note.entered_in_error_by,
                "reason": note.entered_in_error_reason}
    return {
        "id": note.id, "patient_id": note.patient_id, "author_id": note.author_id,
        "discipline": note.discipline, "kind": note.kind, "status": note.status,
        "version": note.version, "encounter_at": note.encounter_at,
        "created_at": note.created_at, "updated_at": note.updated_at,
        "signed_at": note.signed_at, "amends_note_id": note.amends_note_id,
        "addenda": addenda or [], "sections": {} if hidden else note.sections,
        "measures": {} if hidden else note.measures,
        "scores": [vars(s) for s in scored if not (hidden and "_item" in s.code)],
        "treatment": {} if hidden else note.treatment,
        "withheld": hidden, "shared_at": note.shared_at,
        "entered_in_error": mark,
        "safety_alert": alert is not None and alert.status != safety.CLOSED,
        "safety_alert_id": alert.id if alert else None,
        "safety_alert_status": alert.status if alert else None,
        "safety_alert_severity": alert.severity if alert else None,
        "access": access.value if access else None,
    }


# ------------------------------------------------------------------------ catalogue

@blp.get("/measures")
@blp.response(200, InstrumentOut(many=True))
@roles(*ANYONE, "admin")
def measures_catalogue() -> list:
    """Every outcome measure the clinic records: ranges, bands and clinically important
    change with their sources, and the questions where they are free to show (the PHQ-9's
    nine, item 9 marked as the self-harm item). No patient data: any signed-in staff."""
    return m.catalogue(uc.scoring(_runtime()))


# ---------------------------------------------------------------------------- notes

@blp.post("/patients/<patient_id>/notes")
@blp.arguments(NoteIn)
@blp.response(201, NoteOut)
@roles(*ANYONE)
def create_note(body: dict, patient_id: str) -> dict:
    """Start a draft note for a patient (care-team specialists). A positive PHQ-9 item 9
    raises a safety alert at once."""
    runtime = _runtime()
    saved = uc.write_note(runtime, current_principal(), patient_id=_patient(patient_id),
                          body=body, now=_now())
    return _shape(saved.note, alert=saved.alert, scoring=uc.scoring(runtime))


@blp.get("/notes/<note_id>")
@blp.response(200, NoteOut)
@roles(*READERS)
def get_note(note_id: str) -> dict:
    """Read one note (care team, or break-glass with a reason); the read is audited."""
    runtime = _runtime()
    view = uc.read_note(runtime, current_principal(), note_id, _now())
    return _shape(view.note, addenda=view.addenda, access=view.access, alert=view.alert,
                  scoring=uc.scoring(runtime))


@blp.put("/notes/<note_id>")
@blp.arguments(NoteEditIn)
@blp.response(200, NoteOut)
@roles(*ANYONE)
def edit_note(body: dict, note_id: str) -> dict:
    """Save a draft again (its author): a new version. A signed note answers 409."""
    runtime = _runtime()
    saved = uc.edit_note(runtime, current_principal(), note_id, body, _now())
    return _shape(saved.note, alert=saved.alert, scoring=uc.scoring(runtime))


@blp.get("/notes/<note_id>/versions")
@blp.response(200, VersionOut(many=True))
@roles(*READERS)
def note_versions(note_id: str) -> list:
    """Every saved version of a note's draft, oldest first."""
    return uc.read_versions(_runtime(), current_principal(), note_id, _now())


@blp.post("/notes/<note_id>/sign")
@blp.response(200, NoteOut)
@roles(*ANYONE)
def sign_note(note_id: str) -> dict:
    """Sign a draft (its author): locked for ever; the care team is told (note.signed, or
    note.amended for an addendum)."""
    runtime = _runtime()
    note = uc.sign_note(runtime, current_principal(), note_id, _now())
    return _shape(note, scoring=uc.scoring(runtime))


@blp.post("/notes/<note_id>/share")
@blp.response(200, NoteOut)
@blp.alt_response(403, description="Not the note's author")
@blp.alt_response(409, description="Not signed yet, or already shared")
@roles(*ANYONE)
def share_note(note_id: str) -> dict:
    """The author shares a sensitive note (psychology by default) with the whole care
    team; audited, and note.shared (ids only) is emitted."""
    runtime = _runtime()
    note = uc.share_note(runtime, current_principal(), note_id, _now())
    return _shape(note, scoring=uc.scoring(runtime))


@blp.post("/notes/<note_id>/addenda")
@blp.arguments(AddendumIn)
@blp.response(201, NoteOut)
@roles(*ANYONE)
def add_addendum(body: dict, note_id: str) -> dict:
    """Correct a signed note: a draft addendum pointing at it; sign it to publish. The
    original stays as it was."""
    runtime = _runtime()
    saved = uc.write_note(runtime, current_principal(), patient_id=None, amends_note_id=note_id,
                          body={"sections": {"text": body["text"]}}, now=_now())
    return _shape(saved.note, scoring=uc.scoring(runtime))


@blp.post("/notes/<note_id>/entered-in-error")
@blp.arguments(ReasonIn)
@blp.response(200, NoteOut)
@roles(*ANYONE)
def mark_entered_in_error(body: dict, note_id: str) -> dict:
    """Mark a note entered in error (its author), with a reason. Nothing is deleted: it
    stays readable to its author and to an admin through break-glass."""
    runtime = _runtime()
    note = uc.enter_in_error(runtime, current_principal(), note_id, body["reason"], _now())
    return _shape(note, scoring=uc.scoring(runtime))


# ------------------------------------------------------------------------- patients

def _trend_out(trend: m.Trend) -> dict[str, Any]:
    latest = trend.latest
    return {"code": trend.code, "label": trend.label,
            "points": [vars(p) for p in trend.points],
            "baseline": vars(trend.baseline) if trend.baseline else None,
            "latest_band": latest.band if latest else None,
            "meaningful": latest.meaningful if latest else None}


def _plain(value: Any) -> Any:
    """JSON-ready without a schema pass: datetimes as ISO 8601, as the schemas write them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@blp.get("/patients/<patient_id>/timeline")
@blp.arguments(TimelineArgs, location="query")
@blp.response(200, TimelineOut)
@roles(*READERS)
def patient_timeline(args: dict, patient_id: str) -> Response:
    """Every discipline's notes in time order, filterable, with each measure's trend
    (banded, with clinically meaningful change marked) ready for a chart."""
    # Shaped here to exactly TimelineOut's fields and answered directly: a schema pass
    # over 500 notes and their trend points costs more than the whole read.
    runtime = _runtime()
    flt = TimelineFilter(disciplines=tuple(args["discipline"]), kinds=tuple(args["kind"]),
                         author_id=args.get("author_id"), since=args.get("since"),
                         until=args.get("until"),
                         include_entered_in_error=args["include_entered_in_error"])
    found = uc.timeline(runtime, current_principal(), _patient(patient_id), flt,
                        limit=args["limit"], offset=args["offset"], now=_now())
    scoring = uc.scoring(runtime)
    return jsonify(_plain({
        "patient_id": found.patient_id, "total": found.total, "limit": args["limit"],
        "offset": args["offset"], "access": found.access.value,
        "notes": [_shape(n, addenda=found.addenda.get(n.id), alert=found.alerts.get(n.id),
                         scoring=scoring) for n in found.notes],
        "trends": {code: _trend_out(t) for code, t in found.trends.items()
                   if not args["measure"] or code in args["measure"]}}))


@blp.get("/patients/<patient_id>/care-team")
@blp.response(200, MemberOut(many=True))
@roles(*READERS)
def patient_care_team(patient_id: str) -> list:
    """Who is (and was) on the patient's care team, and why."""
    return uc.care_team_of(_runtime(), current_principal(), _patient(patient_id), _now())


@blp.post("/patients/<patient_id>/break-glass")
@blp.arguments(BreakGlassIn)
@blp.response(201, BreakGlassOut)
@roles(*READERS)
def break_glass(body: dict, patient_id: str) -> dict:
    """Emergency access for a clinician outside the care team: give a reason; reading is
    then allowed for a while, every read audited, the privacy officer told."""
    return uc.open_break_glass(_runtime(), current_principal(), _patient(patient_id),
                               body["reason"], _now())


# ---------------------------------------------------------------------------- admin

@admin_blp.get("/audit")
@admin_blp.arguments(AuditArgs, location="query")
@admin_blp.response(200, AuditOut(many=True))
@roles("admin", "privacy_officer")
def audit_trail(args: dict) -> list:
    """Who read or wrote which patient's notes, when and why (newest first)."""
    runtime = _runtime()
    t = runtime.tables.audit
    stmt = select(t)
    for name in ("patient_id", "actor", "action", "resource_id", "outcome"):
        if args.get(name):
            stmt = stmt.where(t.c[name] == args[name])
    if args.get("since"):
        stmt = stmt.where(t.c.at >= args["since"])
    if args.get("until"):
        stmt = stmt.where(t.c.at < args["until"])
    stmt = stmt.order_by(t.c.id.desc()).limit(args["limit"]).offset(args["offset"])
    with runtime.db.transaction() as s:
        return [{**r, "at": aware(r["at"])} for r in s.execute(stmt).mappings()]


@admin_blp.get("/break-glass")
@admin_blp.arguments(ReportArgs, location="query")
@admin_blp.response(200, BreakGlassReportOut(many=True))
@roles("admin", "privacy_officer")
def break_glass_report(args: dict) -> list:
    """Every emergency access, newest first, with the reason given, for review."""
    runtime = _runtime()
    with runtime.db.transaction() as s:
        return BreakGlassRepository(s).report(since=args.get("since"), limit=args["limit"],
                                              offset=args["offset"])
