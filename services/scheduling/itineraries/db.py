"""The itinerary tables, on the scheduling service's own `Base`.

An itinerary is one referral's whole pathway booked as a unit. Its visits are ordinary
rows of `appointments` (status proposed while held, booked once confirmed, with
`itinerary_id` set), so the slots it holds are refused to everyone else by the very
mechanism that prevents double booking (PostgreSQL exclusion constraints, SQLite's
BEGIN IMMEDIATE check in `desk.py`). These tables only remember what the search was
asked and which appointment is which session of which discipline.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Date, ForeignKey, Index, Integer, String, Table

from services.scheduling.diary.db import UtcDateTime, metadata

_id = String(36)

# proposed (slots held until hold_expires_at) -> booked | cancelled | expired ;
# unplaceable when no itinerary fits (the patient is on the waitlist instead).
ITINERARY_STATUSES = ("proposed", "booked", "cancelled", "expired", "unplaceable")

itineraries = Table(
    "itineraries", metadata,
    Column("id", _id, primary_key=True),
    Column("patient_id", String(64), nullable=False, index=True),
    Column("referral_id", String(64), nullable=True, index=True),
    Column("status", String(20), nullable=False),
    Column("priority", String(20), nullable=False, default="routine"),
    Column("due_by", Date, nullable=True),
    # What was asked, kept so that a lost hold can be searched again and a move checked
    # against the same constraints: pathway steps, rules, weights, patient busy times.
    Column("pathway", JSON, nullable=False),
    Column("rules", JSON, nullable=False),
    Column("weights", JSON, nullable=False),
    Column("patient_busy", JSON, nullable=False),
    Column("earliest", UtcDateTime, nullable=False),
    Column("latest", UtcDateTime, nullable=False),
    Column("hold_expires_at", UtcDateTime, nullable=True),
    Column("notes", JSON, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("score", JSON, nullable=True),
    Column("revision", Integer, nullable=False, default=1),
    Column("created_by", String(120), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_itineraries_status_hold", "status", "hold_expires_at"),
)

itinerary_visits = Table(
    "itinerary_visits", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("itinerary_id", _id, ForeignKey("itineraries.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("appointment_id", _id, ForeignKey("appointments.id"), nullable=False,
           unique=True),
    Column("discipline", String(40), nullable=False),
    Column("session_index", Integer, nullable=False),
)
