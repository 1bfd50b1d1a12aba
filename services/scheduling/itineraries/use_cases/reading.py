"""Reading itineraries: one with its visits, a patient's or a referral's, and how a plan is
shown."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.scheduling.diary import roster
from services.scheduling.diary.db import appointments, patient_links
from services.scheduling.itineraries.db import itineraries, itinerary_visits
from services.scheduling.itineraries.model import (
    Itinerary,
)
from services.scheduling.itineraries.planner import (
    Ask,
    Planner,
    Row,
)
from shared import patient_links as links
from shared.errors import NotFound


def itinerary_row(planner: Planner, s: Session, itinerary_id: str, *, lock: bool = False) -> Row:
    q = select(itineraries).where(itineraries.c.id == itinerary_id)
    found = s.execute(q.with_for_update() if lock else q).mappings().first()
    if found is None:
        raise NotFound(f"no itinerary {itinerary_id}")
    return dict(found)


def visits_of(planner: Planner, s: Session, itinerary_id: str, *, lock: bool = False
            ) -> list[tuple[Row, Row]]:
    """(itinerary visit, appointment) pairs, by start. `lock`: hold the appointment
    rows (PostgreSQL) so that a booking releasing a lapsed hold waits for us, or we
    see what it did."""
    iv, a = itinerary_visits.c, appointments.c
    q = select(itinerary_visits, appointments).join(
        appointments, a.id == iv.appointment_id).where(iv.itinerary_id == itinerary_id) \
        .order_by(a.start_at, iv.discipline)
    if lock:
        q = q.with_for_update()
    out = []
    for r in s.execute(q).mappings():
        out.append(({"discipline": r["discipline"], "session_index": r["session_index"],
                     "appointment_id": r["appointment_id"]},
                    {c.name: r[c] for c in appointments.c}))
    return out


def place_names(planner: Planner, s: Session) -> dict[str, str]:
    names = {p["id"]: p["name"] for p in roster.list_providers(planner.diary, s, active=None)}
    names.update({r["id"]: r["name"] for r in roster.list_rooms(planner.diary, s)})
    return names


def view(planner: Planner, s: Session, now: datetime, itinerary_id: str) -> Row:
    """The itinerary as the API shows it; a hold past its time reads as expired even
    before the expiry loop has released it."""
    row = itinerary_row(planner, s, itinerary_id)
    names = place_names(planner, s)
    status = row["status"]
    if status == "proposed" and row["hold_expires_at"] and row["hold_expires_at"] <= now:
        status = "expired"
    visits = [{"appointment_id": appt["id"], "discipline": visit["discipline"],
               "session_index": visit["session_index"],
               "provider_id": appt["provider_id"],
               "provider_name": names.get(appt["provider_id"], ""),
               "room_id": appt["room_id"], "room_name": names.get(appt["room_id"] or "", ""),
               "start": appt["start_at"], "end": appt["end_at"], "status": appt["status"]}
              for visit, appt in visits_of(planner, s, itinerary_id)]
    return {**row, "status": status, "visits": visits}


def find(planner: Planner, s: Session, now: datetime, *, patient_id: str | None = None,
         referral_id: str | None = None, limit: int = 50, offset: int = 0) -> list[Row]:
    q = select(itineraries.c.id).order_by(itineraries.c.created_at, itineraries.c.id)
    if patient_id:
        q = q.where(itineraries.c.patient_id.in_(links.group(s, patient_links, patient_id)))
    if referral_id:
        q = q.where(itineraries.c.referral_id == referral_id)
    ids = s.execute(q.limit(limit).offset(offset)).scalars().all()
    return [view(planner, s, now, i) for i in ids]


def plan_view(planner: Planner, it: Itinerary, rank: int, names: dict[str, str]) -> Row:
    return {"rank": rank, "score": asdict(it.score), "notes": list(it.notes),
            "first_visit_same_day": it.first_visit_same_day,
            "visits": [{"discipline": v.discipline, "session_index": v.session_index,
                        "provider_id": v.provider_id,
                        "provider_name": names.get(v.provider_id, ""),
                        "room_id": v.room_id, "room_name": names.get(v.room_id or "", ""),
                        "start": v.start, "end": v.end} for v in it.visits]}


def ask_of(planner: Planner, row: Row) -> Ask:
    return Ask(patient_id=row["patient_id"], pathway=row["pathway"],
               earliest=row["earliest"], latest=row["latest"],
               referral_id=row["referral_id"], priority=row["priority"],
               due_by=row["due_by"],
               patient_busy=[(datetime.fromisoformat(a), datetime.fromisoformat(b))
                             for a, b in row["patient_busy"]],
               rules=row["rules"], weights=row["weights"])
