"""Events of the FHIR gateway (topic fhir.events, keyed by the referral's id so one
referral's Task changes stay in order)."""

from marshmallow import Schema, fields, validate

from shared.events.envelope import register

_id = fields.String(required=True, validate=validate.Length(min=1, max=64))


@register("fhir.task_changed", 1)
class FhirTaskChangedV1(Schema):
    """A referral's Task changed and a referring system subscribed to it (an R4
    Subscription, rest-hook): the notifier POSTs the Task to the endpoint. The Task holds
    ids, statuses and times only, never clinical text."""

    subscription_id = _id
    endpoint = fields.Url(required=True, schemes={"http", "https"}, require_tld=False,
                          validate=validate.Length(max=320))
    # application/fhir+json: the Task is the body; none: an empty POST (a ping)
    payload = fields.String(required=True,
                            validate=validate.OneOf(("application/fhir+json", "none")))
    referral_id = _id
    task_id = _id
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    status = fields.String(required=True, validate=validate.Length(max=40))
    business_status = fields.String(required=True, validate=validate.Length(max=40))
    task = fields.Dict(required=True)
