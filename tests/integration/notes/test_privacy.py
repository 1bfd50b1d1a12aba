"""Note bodies never reach a log line or an event, whatever path a request takes."""

import json
import logging

import pytest

from tests.integration.notes.conftest import PATIENT

SECRET = "Disclosed childhood trauma; flashbacks when the neuropathic pain flares zq7x"
ADDENDUM = "Patient asked that the assault history be kept private kv3m"


class _Everything(logging.Handler):
    """Keeps every record whole: message, arguments, extras and any traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = json.dumps(record.__dict__, default=repr)
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(record.getMessage() + " " + text)


@pytest.fixture
def every_log_line():
    """Every record of our code at every level: its loggers that other tests quietened
    (the referrals tests' `shared.web` at WARNING) are opened for this test and put back.
    Libraries keep their levels (SQLAlchemy's engine echo is off in every deployment)."""
    root = logging.getLogger()
    handler, level = _Everything(), root.level
    quietened = {name: lg.level for name, lg in logging.root.manager.loggerDict.items()
                 if isinstance(lg, logging.Logger) and lg.level > logging.DEBUG
                 and name.split(".")[0] in ("shared", "services")}
    for name in quietened:
        logging.getLogger(name).setLevel(logging.NOTSET)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(level)
    for name, was in quietened.items():
        logging.getLogger(name).setLevel(was)


def test_a_notes_text_appears_in_no_log_line_and_no_event(clinic, every_log_line, capfd):
    clinic.care_team()
    body = {"kind": "intake_assessment",
            "sections": {"history": SECRET, "plan": "Weekly CBT for pain."},
            "measures": {"phq9": {"items": [1, 2, 1, 1, 0, 1, 1, 0, 2]}, "nrs": {"worst": 9}}}
    made = clinic.write("psych", body).get_json()
    nid = made["id"]
    h = clinic.headers("psych")
    # the paths a body travels: save, a refused save, an invalid one, sign, addendum,
    # reads, a refused read, a correction, the timeline
    clinic.client.put(f"/notes/{nid}", json={"version": 1, "sections": {"history": SECRET}},
                      headers=h)
    clinic.client.put(f"/notes/{nid}", json={"version": 1, "sections": {"history": SECRET}},
                      headers=h)
    clinic.client.put(f"/notes/{nid}", json={"version": 2, "sections": {"secret": SECRET}},
                      headers=h)
    clinic.client.put(f"/notes/{nid}", json={"version": 2, "sections": {"history": SECRET},
                                             "measures": {"pseq": 99}}, headers=h)
    clinic.write("outsider", body)
    assert clinic.sign("psych", nid).status_code == 200
    clinic.client.put(f"/notes/{nid}", json={"version": 2, "sections": {"history": SECRET}},
                      headers=h)
    add = clinic.client.post(f"/notes/{nid}/addenda", json={"text": ADDENDUM}, headers=h)
    clinic.sign("psych", add.get_json()["id"])
    clinic.client.get(f"/notes/{nid}", headers=clinic.headers("acu"))
    clinic.client.get(f"/notes/{nid}", headers=clinic.headers("outsider"))
    clinic.client.get(f"/patients/{PATIENT}/timeline", headers=clinic.headers("pain_doc"))
    clinic.client.post(f"/notes/{nid}/entered-in-error",
                       json={"reason": "wrong patient's record"}, headers=h)

    events = clinic.events()
    assert {e["type"] for e in events} >= {"note.signed", "note.amended",
                                           "note.entered_in_error", "patient.safety_alert"}
    captured = capfd.readouterr()
    assert every_log_line, "the requests were logged"
    for text in (SECRET, ADDENDUM, "zq7x", "kv3m"):
        assert not [line for line in every_log_line if text in line]
        assert text not in captured.err and text not in captured.out
        assert not [e for e in events if text in json.dumps(e)]
    # ... while the note itself keeps them (entered in error: for its author)
    read = clinic.client.get(f"/notes/{nid}", headers=h).get_json()  # its author
    assert read["sections"]["history"] == SECRET
