"""Events of the notifier (topic notifier.events, keyed by recipient id)."""

from marshmallow import Schema, fields, validate

from shared.events.envelope import register
from shared.events.vocabulary import DELIVERY_CHANNELS

_id = fields.String(required=True, validate=validate.Length(min=1, max=64))


@register("notification.sent", 1)
class NotificationSentV1(Schema):
    notification_id = _id
    event_id = _id
    event_type = fields.String(required=True, validate=validate.Length(max=80))
    recipient_id = _id
    channel = fields.String(required=True, validate=validate.OneOf(DELIVERY_CHANNELS))
    sent_at = fields.AwareDateTime(required=True)


@register("notification.failed", 1)
class NotificationFailedV1(Schema):
    notification_id = _id
    event_id = _id
    event_type = fields.String(required=True, validate=validate.Length(max=80))
    recipient_id = _id
    channel = fields.String(required=True, validate=validate.OneOf(DELIVERY_CHANNELS))
    reason = fields.String(required=True, validate=validate.Length(max=1000))
    attempts = fields.Integer(required=True)
