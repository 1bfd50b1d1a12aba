"""Benchmark: reading a patient's timeline of 500 notes.

A notes database holding one patient with 500 signed notes across the four disciplines
(weekly visits over about ten years, each with NRS, PHQ-9, GAD-7, BPI and PSEQ; one in
ten with an addendum) among 40 other patients with 100 notes each. It times:

- the timeline route end to end (HTTP through Flask's test client: auth, care-team check,
  audit row, one query, trends, JSON), and
- the timeline's read itself, our way (one query for the notes, trends in memory)
  against a naive baseline in the same run (list the ids, then one query per note and
  one per note for its addenda), checking both give the same notes and trends.

Prints medians and p95 and the baseline/ours ratio. Never judges time.

Run: .venv/bin/python bench/bench_notes.py [--notes 500] [--repeat 15] [--database-url URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select

from services.notes import domain as d
from services.notes import measures as m
from services.notes.app import create_app
from services.notes.db import NotesRepository, TimelineFilter, care_team, notes
from services.notes.wiring import build_runtime
from shared.auth import mint_token
from shared.config import Settings

PATIENT = "pat-bench"
DISCIPLINES = ("pain_medicine", "physical_therapy", "psychology", "acupuncture")
READER = d.Clinician("dr-pain", "specialist", "pain_medicine", "prov-pain")


def _note_rows(patient: str, count: int, rng: random.Random) -> list[dict]:
    start = datetime(2016, 1, 4, 9, tzinfo=UTC)
    rows = []
    nrs = 8.0
    for i in range(count):
        nrs = min(10, max(0, nrs + rng.choice((-1, 0, 0, 1)) * 0.5))
        at = start + timedelta(days=7 * i, hours=rng.randint(0, 6))
        discipline = DISCIPLINES[i % 4]
        measures = {"nrs": {"current": int(nrs), "average": int(nrs), "worst": min(10,
                                                                                int(nrs) + 2)},
                    "phq9": {"items": [rng.randint(0, 2) for _ in range(8)] + [0]},
                    "gad7": rng.randint(0, 21), "bpi": {"severity": round(nrs, 1),
                                                       "interference": rng.randint(0, 10)},
                    "pseq": rng.randint(10, 60)}
        sections = {"subjective": "Burning and tingling in both feet. " * 8,
                    "objective": "Reduced vibration sense at the hallux bilaterally. " * 4,
                    "assessment": "Stable on current plan. " * 4,
                    "plan": "Continue; review in one week. " * 3}
        rows.append(dict(
            id=f"{patient}-{i:05d}", patient_id=patient, author_id=f"prov-{discipline}",
            author_subject=f"sub-{discipline}", discipline=discipline, kind="progress",
            status=d.SIGNED, version=1, encounter_at=at, created_at=at, updated_at=at,
            signed_at=at, amends_note_id=None, sections=sections, measures=measures,
            scores=m.flatten(measures), treatment={}))
    for i in range(0, count, 10):
        at = rows[i]["encounter_at"] + timedelta(days=1)
        rows.append(dict(
            id=f"{patient}-a{i:05d}", patient_id=patient, author_id="prov-pain",
            author_subject="dr-pain", discipline="pain_medicine", kind="addendum",
            status=d.SIGNED, version=1, encounter_at=at, created_at=at, updated_at=at,
            signed_at=at, amends_note_id=rows[i]["id"],
            sections={"text": "Correction: dose was 60 mg."}, measures={}, scores={},
            treatment={}))
    return rows


def seed(runtime, count: int) -> None:
    rng = random.Random(7)
    with runtime.db.transaction() as s:
        s.execute(insert(notes), _note_rows(PATIENT, count, rng))
        for p in range(40):
            s.execute(insert(notes), _note_rows(f"pat-{p:03d}", 100, rng))
        s.execute(insert(care_team).values(
            patient_id=PATIENT, member_id="dr-pain", discipline="pain_medicine",
            source="referral.accepted", referral_key="ref-bench",
            joined_at=datetime(2016, 1, 1, tzinfo=UTC), left_at=None))


def ours(runtime) -> tuple[list[d.Note], dict]:
    """The service's read: one query, trends in memory."""
    with runtime.db.transaction() as s:
        found = NotesRepository(s).timeline(PATIENT, READER, TimelineFilter())
    addenda: dict[str, list[str]] = {}
    for n in found:
        if n.amends_note_id:
            addenda.setdefault(n.amends_note_id, []).append(n.id)
    signed = [(n.id, n.encounter_at, n.scores) for n in found if n.status == d.SIGNED]
    return found, m.trends(signed)


def naive(runtime) -> tuple[list[d.Note], dict]:
    """The baseline: the ids first, then each note and its addenda by its own query."""
    with runtime.db.transaction() as s:
        repo = NotesRepository(s)
        ids = [r[0] for r in s.execute(
            select(notes.c.id).where(notes.c.patient_id == PATIENT,
                                     notes.c.status == d.SIGNED)
            .order_by(notes.c.encounter_at, notes.c.created_at, notes.c.id))]
        found = []
        addenda: dict[str, list[str]] = {}
        for note_id in ids:
            note = repo.get(note_id)
            assert note is not None
            found.append(note)
            addenda.update(repo.addenda_of([note_id]))
    signed = [(n.id, n.encounter_at, n.scores) for n in found]
    return found, m.trends(signed)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm up
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def p95(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(len(samples) * 0.95) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notes", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/notes-bench.db"
        settings = Settings.for_service("notes", database_url=url, kafka_enabled=False,
                                        log_level="WARNING")
        runtime = build_runtime(settings)
        app = create_app(runtime=runtime)
        seed(runtime, args.notes)
        client = app.test_client()
        token = mint_token(settings.jwt_secret, subject="dr-pain", role="specialist",
                           discipline="pain_medicine", provider_id="prov-pain",
                           issuer=settings.jwt_issuer, audience=settings.jwt_audience)
        headers = {"Authorization": f"Bearer {token}"}

        a_notes, a_trends = ours(runtime)
        b_notes, b_trends = naive(runtime)
        assert [n.id for n in a_notes] == [n.id for n in b_notes], "same notes, same order"
        assert {k: [p.value for p in t.points] for k, t in a_trends.items()} == \
            {k: [p.value for p in t.points] for k, t in b_trends.items()}, "same trends"

        def route() -> None:
            resp = client.get(f"/patients/{PATIENT}/timeline", query_string={"limit": 1000},
                              headers=headers)
            assert resp.status_code == 200 and resp.get_json()["total"] == len(a_notes)

        http = timed(route, args.repeat)
        fast = timed(lambda: ours(runtime), args.repeat)
        slow = timed(lambda: naive(runtime), args.repeat)
        runtime.db.dispose()

    backend = url.split(":", 1)[0]
    print(f"notes timeline benchmark ({backend}): one patient, {len(a_notes)} notes "
          f"({args.notes} visits + addenda) among {40 * 110} notes of 40 other patients; "
          f"{args.repeat} runs each")
    print(f"  timeline route, HTTP end to end   median {statistics.median(http):8.1f} ms"
          f"   p95 {p95(http):8.1f} ms")
    print(f"  read, one query (ours)            median {statistics.median(fast):8.1f} ms"
          f"   p95 {p95(fast):8.1f} ms")
    print(f"  read, per-note queries (baseline) median {statistics.median(slow):8.1f} ms"
          f"   p95 {p95(slow):8.1f} ms")
    ratio = statistics.median(slow) / statistics.median(fast)
    print(f"  ratio baseline/ours (median)      {ratio:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
