"""Events in: keep the recipient directory and plan notifications. Runs inside the
consumer's inbox transaction, so planning and "handled" commit together; nothing is
sent from here (delivery is the delivery loop's job)."""

from __future__ import annotations

import json
from datetime import datetime

from services.notifier import db
from services.notifier.domain import (
    HANDLED_EVENTS,
    SAFETY_EVENTS,
    AlertHistory,
    Contact,
    Planned,
    Rules,
    plan,
)
from services.notifier.wiring import Clock
from shared import topics
from shared.events import Envelope, parse_event
from shared.kafka import Subscription
from shared.runtime import Runtime

# Events that only keep the directory: nothing is planned from them.
DIRECTORY_ONLY = ("patient.contact_changed",)
SOURCE_TOPICS = {"referral": topics.REFERRALS, "note": topics.NOTES, "patient": topics.NOTES,
                 "fhir": topics.FHIR}


def source_topic(event_type: str) -> str:
    """The topic an event came from (scheduling's events have several prefixes)."""
    return SOURCE_TOPICS.get(event_type.split(".")[0], topics.SCHEDULING)


def _instant(at: str | datetime) -> datetime:
    return datetime.fromisoformat(at) if isinstance(at, str) else at


def message_key(event: Envelope) -> str:
    p = event.payload
    return str(p.get("patient_id") or p.get("referral_id") or p.get("provider_id") or event.id)


class NotificationPlanner:
    """The consumer's handler: one event in, rows in `notifications` out."""

    def __init__(self, rules: Rules, now: Clock) -> None:
        self.rules = rules
        self.now = now

    def handle(self, session, event: Envelope) -> None:  # type: ignore[no-untyped-def]
        newcomer = self._keep_directory(session, event)
        if event.type not in DIRECTORY_ONLY:
            self._plan(session, event)
        if newcomer:  # what beat their contact here is planned again, for real
            for body, keys in db.take_provisional(session, newcomer):
                self._plan(session, parse_event(body), only=(newcomer, keys))

    def _plan(self, session, event: Envelope,  # type: ignore[no-untyped-def]
              only: tuple[str, set[str]] | None = None) -> None:
        """Plan an event; `only` re-plans just one recipient's withdrawn notifications
        (nothing else of an old event is replayed, its cancellations least of all)."""
        now = self.now()
        alert_id = event.payload.get("alert_id") if event.type in SAFETY_EVENTS else None
        if alert_id and only is None and event.type == "patient.safety_alert":
            db.alert_raised(session, alert_id, event.payload["patient_id"],
                            _instant(event.payload["raised_at"]))
        history = db.alert_history(session, alert_id) if alert_id else AlertHistory()
        result = plan(event.id, event.type, event.payload,
                      lambda rid: db.lookup(session, rid), self.rules, now,
                      version=event.version, alert=history)
        planned = result.notifications
        if only is None:
            db.cancel_reminders(session, result.cancel_reminders_for)
            if result.settled is not None:
                db.settle_alert(session, event.payload["patient_id"], result.settled)
        else:
            planned = [p for p in planned
                       if p.recipient_id == only[0] and p.dedupe_key in only[1]]
        if planned:
            db.remember_event(session, event.id, event.type, source_topic(event.type),
                              message_key(event), event.to_bytes())
            db.add_planned(session, event.id, event.type, planned, now)

    def _keep_directory(self, session, event: Envelope) -> str | None:  # type: ignore[no-untyped-def]
        """Keep contacts from events; the id of whoever was added or changed."""
        p = event.payload
        if event.type == "patient.contact_changed":  # the registry's current details
            contact = Contact(p["patient_id"], "patient", p["name"], p.get("email"),
                              p.get("phone"), p.get("preferred_channel") or "email",
                              p.get("language") or "en")
            taken = db.keep_patient_contact(session, contact, _instant(p["as_of"]), self.now())
            return p["patient_id"] if taken else None
        if event.type == "referral.received" and event.version == 1:  # older messages
            pt = p["patient"]
            db.upsert_recipient(session, Contact(
                pt["patient_id"], "patient", pt["name"], pt.get("email"), pt.get("phone"),
                pt.get("preferred_channel") or "email", pt.get("language") or "en"),
                self.now())
            return pt["patient_id"]
        elif event.type == "provider.registered":
            db.upsert_recipient(session, Contact(
                p["provider_id"], "provider", p["name"], p.get("email"), p.get("phone"),
                "email" if p.get("email") else "in_app"), self.now())
            return p["provider_id"]
        return None


class RestHookPlanner:
    """A referring system's FHIR Subscription: each `fhir.task_changed` is one POST to
    its endpoint, planned here and delivered (retried, dead-lettered) like any other
    notification. Planned in arrival order, which is the Task's order (one referral's
    events share a key), and due at once, so they leave in that order."""

    def __init__(self, now: Clock) -> None:
        self.now = now

    def handle(self, session, event: Envelope) -> None:  # type: ignore[no-untyped-def]
        p = event.payload
        now = self.now()
        body = json.dumps(p["task"]) if p["payload"] != "none" else ""
        planned = Planned(
            dedupe_key=event.id, recipient_id=p["subscription_id"], channel="rest_hook",
            template="fhir_task_changed", language="en", address=p["endpoint"],
            subject=f"Task/{p['task_id']} version {p['version']}: {p['business_status']}",
            body=body, due_at=now)
        db.remember_event(session, event.id, event.type, topics.FHIR, p["referral_id"],
                          event.to_bytes())
        db.add_planned(session, event.id, event.type, [planned], now)


def subscription(runtime: Runtime, rules: Rules, now: Clock) -> Subscription:
    planner = NotificationPlanner(rules, now)
    handled = (*HANDLED_EVENTS, "provider.registered", *DIRECTORY_ONLY)
    hooks = RestHookPlanner(now)
    return Subscription("notifications",
                        (topics.REFERRALS, topics.SCHEDULING, topics.NOTES, topics.FHIR,
                         topics.PATIENT_CONTACTS),
                        {**dict.fromkeys(handled, planner.handle),
                         "fhir.task_changed": hooks.handle})
