"""Proof that a note's text reaches no log line of any process and no event on any topic.

The notes service runs as in production (gunicorn web, worker) beside every other
service on the real broker. A specialist writes, saves, fails to save, signs and amends
a note whose text carries unique markers; then every log file of every process and every
record on every topic (dead-letter topics too) is searched for the markers.
"""

from __future__ import annotations

import uuid
from datetime import date

import pytest
import requests
from kafka import KafkaProducer

from shared import topics
from shared.config import Settings
from shared.events import new_event
from shared.launcher import available_services
from tests.proof.report import record
from tests.support.clinic import bearer, read_topic, wait_for
from tests.support.processes import running_services

pytestmark = pytest.mark.kafka


def test_note_text_appears_in_no_log_line_and_no_event(new_database_url, topic_prefix,
                                                       kafka_bootstrap, tmp_path,
                                                       backend) -> None:
    if backend != "sqlite":
        pytest.skip("process-level: one backend is enough (the notes suite covers both)")
    marker = f"NOTETEXT-{uuid.uuid4().hex}"
    addendum = f"ADDENDUMTEXT-{uuid.uuid4().hex}"
    patient, referral = f"pat-{uuid.uuid4().hex[:8]}", f"ref-{uuid.uuid4().hex[:8]}"
    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap, database_url="sqlite://")
    doctor = bearer(settings, "specialist", "dr-pain", discipline="pain_medicine",
                    provider_id="prov-pain")
    outsider = bearer(settings, "specialist", "dr-out", discipline="physical_therapy",
                      provider_id="prov-out")
    services = available_services()
    log_dir = tmp_path / "logs"
    with running_services(services, database_url=new_database_url, topic_prefix=topic_prefix,
                          log_dir=log_dir, extra_env={"LOG_LEVEL": "DEBUG"}) as clinic:
        notes = clinic["notes"].url
        accepted = new_event("referral.accepted", {
            "referral_id": referral, "patient_id": patient, "priority": "soon",
            "target_days": 28, "due_by": date(2026, 12, 20).isoformat(),
            "pathway": [{"discipline": "pain_medicine", "visit_minutes": 45, "sessions": 1,
                         "interval_days": 0}], "accepted_by": "dr-pain"}, producer="tests")
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        producer.send(settings.topic(topics.REFERRALS), key=patient.encode(),
                      value=accepted.to_bytes()).get(30)
        producer.close()
        wait_for(lambda: ((r := requests.get(f"{notes}/patients/{patient}/care-team",
                                            headers=doctor, timeout=5)).ok and r.json()) or None,
                 timeout=60, what="the care team from referral.accepted")
        body = {"kind": "progress", "sections": {
            "subjective": marker, "objective": f"{marker} objective",
            "assessment": "Painful neuropathy.", "plan": f"plan {marker}"},
            "measures": {"nrs": {"current": 6, "average": 7, "worst": 9}}}
        made = requests.post(f"{notes}/patients/{patient}/notes", json=body, headers=doctor,
                             timeout=10)
        assert made.status_code == 201, made.text
        note_id = made.json()["id"]
        paths = [  # the ways a body travels: refused, invalid, conflicting, signed, amended
            ("post", f"/patients/{patient}/notes", body, outsider),
            ("post", f"/patients/{patient}/notes", {**body, "kind": marker}, doctor),
            ("put", f"/notes/{note_id}", {"version": 99, "sections": {"subjective": marker}},
             doctor),
            ("put", f"/notes/{note_id}", {"version": 1, "sections": {marker: marker}}, doctor),
            ("post", f"/notes/{note_id}/sign", None, doctor),
            ("put", f"/notes/{note_id}", {"version": 2, "sections": {"subjective": marker}},
             doctor),
            ("post", f"/notes/{note_id}/addenda", {"text": addendum}, doctor),
            ("get", f"/notes/{note_id}", None, outsider),
            ("get", f"/notes/{note_id}", None, doctor),
            ("get", f"/patients/{patient}/timeline", None, doctor),
        ]
        answers = []
        for method, path, json_body, headers in paths:
            resp = requests.request(method, notes + path, json=json_body, headers=headers,
                                    timeout=10)
            answers.append(resp.status_code)
            assert resp.status_code < 500, f"{method} {path}: {resp.status_code} {resp.text}"
            if headers is outsider:  # a specialist of another discipline, not on the team
                assert resp.status_code == 403, f"{method} {path}: {resp.status_code}"
                assert marker not in resp.text and addendum not in resp.text
        assert 200 in answers and 201 in answers, answers  # signed and amended
        record("security", "another discipline's specialist refused this patient's note",
               tried=2, held=sum(1 for (_m, _p, _b, h), a in zip(paths, answers, strict=True)
                                 if h is outsider and a == 403))
        signed = wait_for(lambda: [v for _k, _h, v in read_topic(settings, topics.NOTES)
                                   if isinstance(v, dict) and v.get("type") == "note.signed"],
                          timeout=60, what="note.signed on notes.events")
        assert signed
        # let every consumer see the note events before looking at their logs
        import time

        time.sleep(3)
    on_topics = 0
    leaked_events = []
    for name in topics.ALL_TOPICS:
        for _k, headers, value in read_topic(settings, name):
            on_topics += 1
            text = f"{value} {headers}"
            if marker in text or addendum in text:
                leaked_events.append(name)
    lines = 0
    leaked_lines = []
    for path in sorted(log_dir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            lines += 1
            if marker in line or addendum in line:
                leaked_lines.append(f"{path.name}: {line[:300]}")
    record("security", "note text in no event on any topic", tried=on_topics,
           held=on_topics - len(leaked_events), detail=f"{len(topics.ALL_TOPICS)} topics")
    record("security", "note text in no log line of any process", tried=lines,
           held=lines - len(leaked_lines), detail=f"{len(list(log_dir.glob('*.log')))} logs")
    assert on_topics > 0 and lines > 0, "nothing to search: the proof would prove nothing"
    assert not leaked_events, f"note text on topics: {leaked_events}"
    assert not leaked_lines, "note text in logs:\n" + "\n".join(leaked_lines[:10])
