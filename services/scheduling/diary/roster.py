"""The clinic's roster: providers (the notifier learns each one's contact) and rooms.

Each use case runs inside the caller's transaction (`Diary.run`); the rules themselves
live in `domain.py` and `shared/availability.py`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from services.scheduling.diary import domain
from services.scheduling.diary.context import (
    Diary,
    Row,
    new_id,
)
from services.scheduling.diary.db import (
    providers,
    rooms,
)
from shared.errors import Conflict, NotFound


def provider(d: Diary, s: Session, provider_id: str) -> Row:
    row = s.execute(select(providers).where(providers.c.id == provider_id)).mappings().first()
    if row is None:
        raise NotFound(f"no provider {provider_id}")
    return dict(row)


def list_providers(d: Diary, s: Session, *, discipline: str | None = None,
                   active: bool | None = True) -> list[Row]:
    q = select(providers).order_by(providers.c.name)
    if discipline:
        q = q.where(providers.c.discipline == discipline)
    if active is not None:
        q = q.where(providers.c.active.is_(active))
    return [dict(r) for r in s.execute(q).mappings()]


def save_provider(d: Diary, s: Session, data: Row, now: datetime,
                  provider_id: str | None = None) -> Row:
    """Create or change a provider; the notifier learns their contact either way."""
    if provider_id is None:
        row = {"id": new_id(), "visit_types": [], "email": None, "phone": None,
               "active": True, "created_at": now, **data, "updated_at": now}
        domain.check_discipline(row["discipline"])
        s.execute(insert(providers).values(**row))
    else:
        row = {**provider(d, s, provider_id), **data, "updated_at": now}
        domain.check_discipline(row["discipline"])
        s.execute(update(providers).where(providers.c.id == provider_id).values(
            **{k: v for k, v in row.items() if k != "id"}))
    d.emit(s, "provider.registered", {
        "provider_id": row["id"], "name": row["name"], "discipline": row["discipline"],
        "email": row["email"], "phone": row["phone"], "active": row["active"]},
        key=row["id"])
    return row


def room(d: Diary, s: Session, room_id: str) -> Row:
    row = s.execute(select(rooms).where(rooms.c.id == room_id)).mappings().first()
    if row is None:
        raise NotFound(f"no room {room_id}")
    return dict(row)


def list_rooms(d: Diary, s: Session) -> list[Row]:
    return [dict(r) for r in s.execute(select(rooms).order_by(rooms.c.name)).mappings()]


def save_room(d: Diary, s: Session, data: Row, now: datetime, room_id: str | None = None) -> Row:
    if room_id is None:
        row = {"id": new_id(), "active": True, "fit_for": [], "created_at": now, **data}
        taken = s.execute(select(rooms.c.id).where(rooms.c.name == row["name"])).first()
        if taken:
            raise Conflict(f"there is already a room called {row['name']!r}")
        s.execute(insert(rooms).values(**row))
        return row
    row = {**room(d, s, room_id), **data}
    s.execute(update(rooms).where(rooms.c.id == room_id).values(
        **{k: v for k, v in row.items() if k != "id"}))
    return row
