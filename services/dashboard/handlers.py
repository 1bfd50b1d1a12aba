"""Events in: each clinic event updates the read model through the pure rules in
`domain.changes`, inside the inbox's transaction (so a redelivery changes nothing)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from services.dashboard import domain
from services.dashboard.db import ReadModelStore
from shared.events import Envelope
from shared.kafka import Handler, Subscription
from shared.topics import NOTES, NOTIFICATIONS, REFERRALS, SCHEDULING

SUBSCRIPTION_PREFIX = "readmodel-g"


def apply_event(store: ReadModelStore, session: Session, envelope: Envelope) -> None:
    for record in domain.changes(envelope.type, envelope.payload, envelope.occurred_at,
                                 lambda kind, key: store.lookup(session, kind, key)):
        store.save(session, record)


def read_model_handler(store: ReadModelStore, generation: int) -> Handler:
    """A handler of one generation: after a rebuild has started a new one, the old
    consumer's late events are ignored instead of leaking into the fresh tables."""

    def handle(session: Session, envelope: Envelope) -> None:
        if store.generation(session, lock=True) != generation:
            return
        apply_event(store, session, envelope)

    return handle


def read_model_subscription(store: ReadModelStore, generation: int) -> Subscription:
    handler: Callable[[Session, Envelope], None] = read_model_handler(store, generation)
    return Subscription(f"{SUBSCRIPTION_PREFIX}{generation}",
                        (REFERRALS, SCHEDULING, NOTIFICATIONS, NOTES),
                        dict.fromkeys(domain.EVENT_TYPES, handler))
