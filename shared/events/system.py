"""Events about the platform itself."""

from marshmallow import Schema, fields, validate

from shared.events.envelope import register


@register("system.ping", 1)
class PingV1(Schema):
    """A heartbeat through the real pipe: proves outbox, relay, broker and consumer."""

    ping_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    message = fields.String(load_default="", validate=validate.Length(max=200))
