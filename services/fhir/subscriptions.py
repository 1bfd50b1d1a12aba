"""R4 Subscriptions: a referring system hears back when its referrals' Tasks change.

Supported, and nothing more (anything else is refused naming the element):
- `channel.type` `rest-hook`, `channel.endpoint` an http(s) URL, `channel.payload`
  `application/fhir+json` (the Task is POSTed to the endpoint) or absent (an empty POST);
  `channel.header` is refused (the gateway keeps no secrets of the receiver);
- `criteria` `Task` or `Task?requester={the subscriber}`: the Tasks of the referrals this
  system sent. The subscriber is the token's subject; another requester is refused.

A Subscription is kept in the read model's table (source: the subscriber) and is
`active` at once. When a subscribed referral's Task gets a new version, the gateway emits
`fhir.task_changed` (topic fhir.events, keyed by the referral, in the change's
transaction); the notifier delivers it on its `rest_hook` channel with its retries and
dead letters.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from services.fhir import access
from services.fhir.db import Emit, ResourceRow, Resources, served
from shared.errors import InvalidInput

FHIR_JSON = "application/fhir+json"


def _bad(element: str, detail: str) -> InvalidInput:
    return InvalidInput(f"{element}: {detail}", errors={element: [detail]})


def subscription(body: Any, *, subscriber: str) -> dict[str, Any]:
    """A Subscription as asked -> the one kept (with its id and `active`), or InvalidInput
    naming the element."""
    if not isinstance(body, dict) or body.get("resourceType") != "Subscription":
        raise _bad("resourceType", "expected Subscription")
    known = {"resourceType", "id", "meta", "status", "reason", "criteria", "channel",
             "contact", "end", "error", "text"}
    for name in body:
        if name not in known:
            raise _bad(f"Subscription.{name}", "not supported here")
    if body.get("status") not in ("requested", "active"):
        raise _bad("Subscription.status", "expected requested (or active)")
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise _bad("Subscription.reason", "required, up to 500 characters")
    criteria = body.get("criteria")
    if not isinstance(criteria, str):
        raise _bad("Subscription.criteria", "required, e.g. Task?requester=...")
    rtype, _, query = criteria.partition("?")
    if rtype != "Task":
        raise _bad("Subscription.criteria", "only Task criteria are supported")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name != "requester":
            raise _bad("Subscription.criteria", f"{name}: only requester is supported")
        if value.removeprefix("Organization/").removeprefix("Device/") != subscriber:
            raise _bad("Subscription.criteria",
                       f"requester {value!r}: a system subscribes to its own referrals")
    channel = body.get("channel")
    if not isinstance(channel, dict):
        raise _bad("Subscription.channel", "required")
    for name in channel:
        if name not in ("type", "endpoint", "payload"):
            raise _bad(f"Subscription.channel.{name}", "not supported here")
    if channel.get("type") != "rest-hook":
        raise _bad("Subscription.channel.type", "only rest-hook is supported")
    endpoint = channel.get("endpoint")
    parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
            or len(endpoint) > 320:  # type: ignore[arg-type]
        raise _bad("Subscription.channel.endpoint", "an http(s) URL, up to 320 characters")
    payload = channel.get("payload")
    if payload not in (None, FHIR_JSON, "application/json+fhir"):
        raise _bad("Subscription.channel.payload", f"expected {FHIR_JSON} or none")
    kept: dict[str, Any] = {
        "resourceType": "Subscription", "id": str(uuid.uuid4()), "status": "active",
        "reason": reason.strip(), "criteria": criteria,
        "channel": {"type": "rest-hook", "endpoint": endpoint,
                    **({"payload": FHIR_JSON} if payload else {})}}
    if body.get("end"):
        kept["end"] = body["end"]
    return kept


def subscriber_key(subject: str) -> str:
    return access.subject_key(subject)


def of_subscriber(repo: Resources, subject: str) -> list[ResourceRow]:
    return [r for r in repo.by_source("Subscription", subscriber_key(subject))
            if r.status == "active"]


def task_changed(repo: Resources, referral_id: str, task: ResourceRow) -> None:
    """Tell every active Subscription of the referral's sender that its Task changed."""
    emit: Emit | None = repo.emit
    if emit is None:
        return
    intake = repo.fact("intake", referral_id) or {}
    if not intake.get("created_by"):
        return
    body = served(task)
    for sub in of_subscriber(repo, intake["created_by"]):
        channel = sub.body["channel"]
        emit("fhir.task_changed", {
            "subscription_id": sub.id, "endpoint": channel["endpoint"],
            "payload": channel.get("payload") or "none",
            "referral_id": referral_id, "task_id": task.id, "version": task.version,
            "status": body["status"],
            "business_status": body["businessStatus"]["coding"][0]["code"],
            "task": body}, referral_id)
