"""Events of the notes service (topic notes.events, keyed by patient id).

Never a note's text: ids, author, discipline and measures only.
"""

from marshmallow import Schema, fields, validate

from shared.events.envelope import register
from shared.events.vocabulary import DISCIPLINES

_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
_discipline = fields.String(required=True, validate=validate.OneOf(DISCIPLINES))
NOTE_KINDS = ("intake_assessment", "progress", "treatment_record", "discharge_summary",
              "addendum")


@register("note.signed", 1)
class NoteSignedV1(Schema):
    note_id = _id
    patient_id = _id
    author_id = _id
    discipline = _discipline
    kind = fields.String(required=True, validate=validate.OneOf(NOTE_KINDS))
    signed_at = fields.AwareDateTime(required=True)
    measures = fields.Dict(keys=fields.String(validate=validate.Length(max=40)),
                           values=fields.Float(), load_default=dict)
    notify = fields.List(fields.String(validate=validate.Length(max=64)), load_default=list)


@register("note.amended", 1)
class NoteAmendedV1(Schema):
    note_id = _id
    amends_note_id = _id
    patient_id = _id
    author_id = _id
    discipline = _discipline
    signed_at = fields.AwareDateTime(required=True)
    notify = fields.List(fields.String(validate=validate.Length(max=64)), load_default=list)


@register("note.entered_in_error", 1)
class NoteEnteredInErrorV1(Schema):
    note_id = _id
    patient_id = _id
    by = _id
    at = fields.AwareDateTime(required=True)


@register("patient.safety_alert", 1)
class PatientSafetyAlertV1(Schema):
    alert_id = _id
    patient_id = _id
    note_id = _id
    author_id = _id
    measure = fields.String(required=True, validate=validate.Length(max=40))
    value = fields.Float(required=True)
    raised_at = fields.AwareDateTime(required=True)


@register("patient.break_glass", 1)
class PatientBreakGlassV1(Schema):
    """A clinician outside the care team opened a patient's notes in an emergency; for
    admins to review. The reason stays in the notes service (it is free text)."""

    access_id = _id
    patient_id = _id
    actor_id = _id
    discipline = fields.String(load_default=None, allow_none=True,
                               validate=validate.OneOf(DISCIPLINES))
    opened_at = fields.AwareDateTime(required=True)
    expires_at = fields.AwareDateTime(required=True)
