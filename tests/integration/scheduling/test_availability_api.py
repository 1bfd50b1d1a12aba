"""Free time through the API, on a real database: a fixed week around the spring clock
change (London goes to BST on Sun 29 Mar 2026) with leave, a closure and bookings."""


def _spans(entry: dict, key: str = "free") -> list[tuple[str, str]]:
    return [(i["start"][:16], i["end"][:16]) for i in entry[key]]


def test_free_time_around_leave_a_closure_bookings_and_the_clock_change(clinic):
    assert clinic.book("pain", "2026-03-23T10:00:00+00:00").status_code == 201
    assert clinic.book("pain", "2026-03-30T10:00:00+01:00", patient="p-2").status_code == 201
    leave = clinic.post("/exceptions", {"provider_id": clinic.ids["pain"], "kind": "leave",
                                        "first_day": "2026-03-25"})
    assert leave.status_code == 201, leave.json
    closure = clinic.post("/exceptions", {"kind": "closure", "note": "fire drill",
                                          "start": "2026-03-27T13:00:00+00:00",
                                          "end": "2026-03-27T17:00:00+00:00"})
    assert closure.status_code == 201, closure.json

    got = clinic.get("/availability", provider_id=clinic.ids["pain"], visit_minutes=60,
                     step_minutes=60, **{"from": "2026-03-23", "to": "2026-03-31"})
    assert got.status_code == 200, got.json
    [okafor] = got.json
    assert _spans(okafor) == [
        ("2026-03-23T09:00", "2026-03-23T10:00"), ("2026-03-23T10:45", "2026-03-23T17:00"),
        ("2026-03-24T09:00", "2026-03-24T17:00"),
        # Wednesday 25th on leave
        ("2026-03-26T09:00", "2026-03-26T17:00"),
        ("2026-03-27T09:00", "2026-03-27T13:00"),   # closed in the afternoon
        # after the change 09:00-17:00 BST is 08:00-16:00 UTC
        ("2026-03-30T08:00", "2026-03-30T09:00"), ("2026-03-30T09:45", "2026-03-30T16:00"),
        ("2026-03-31T08:00", "2026-03-31T16:00"),
    ]
    starts = [s["start"] for s in okafor["slots"]]
    assert "2026-03-23T09:00:00+00:00" in starts
    assert "2026-03-23T10:00:00+00:00" not in starts      # booked until 10:45
    assert "2026-03-23T11:00:00+00:00" in starts          # next hour on the clock
    assert "2026-03-30T08:00:00+00:00" in starts          # 09:00 BST
    assert "2026-03-30T10:00:00+00:00" in starts          # 11:00 BST
    assert "2026-03-30T09:00:00+00:00" not in starts
    assert not any(s.startswith("2026-03-25") for s in starts)
    assert all(s["end"][:16] <= "2026-03-27T13:00" for s in okafor["slots"]
               if s["start"].startswith("2026-03-27"))

    listed = clinic.get("/exceptions", provider_id=clinic.ids["pain"],
                        **{"from": "2026-03-23", "to": "2026-03-31"})
    assert [e["kind"] for e in listed.json] == ["leave", "closure"]
    assert listed.json[0]["start"] == "2026-03-25T00:00:00+00:00"


def test_availability_by_discipline_and_never_in_the_past(clinic):
    by_discipline = clinic.get("/availability", discipline="physical_therapy",
                               **{"from": "2026-03-20", "to": "2026-03-20"})
    assert [e["provider_name"] for e in by_discipline.json] == ["Sam Reid"]
    assert _spans(by_discipline.json[0]) == [("2026-03-20T09:00", "2026-03-20T17:00")]

    clinic.clock.advance(hours=4, minutes=10)   # 12:10 on Friday
    later = clinic.get("/availability", provider_id=clinic.ids["pt"], visit_minutes=30,
                       **{"from": "2026-03-20", "to": "2026-03-20"})
    assert _spans(later.json[0]) == [("2026-03-20T12:10", "2026-03-20T17:00")]
    assert later.json[0]["slots"][0]["start"] == "2026-03-20T12:15:00+00:00"

    offers_cbt = clinic.get("/availability", visit_type="cbt",
                            **{"from": "2026-03-23", "to": "2026-03-23"})
    assert {e["provider_name"] for e in offers_cbt.json} == {"Dr Lind", "Sam Reid"}

    bad = clinic.get("/availability", **{"from": "2026-03-23", "to": "2026-03-01"})
    assert bad.status_code == 422
    assert bad.headers["Content-Type"] == "application/problem+json"


def test_days_outside_any_clinic_calendar_are_refused_naming_the_field(clinic):
    """Found by schemathesis: year 9999 has no next local midnight to convert (was a 500)."""
    for path in ("/availability", "/exceptions"):
        far = clinic.get(path, **{"from": "9999-12-31", "to": "9999-12-31"})
        assert far.status_code == 422, far.json
        assert set(far.json["errors"]) == {"query.from", "query.to"}
        backwards = clinic.get(path, **{"from": "2026-03-23", "to": "2026-03-01"})
        assert backwards.status_code == 422
        assert set(backwards.json["errors"]) == {"query.to"}


def test_an_exception_that_ends_before_it_starts_is_refused_naming_the_field(clinic):
    """Found by schemathesis in the proof: instants out of order were a 500."""
    backwards = clinic.post("/exceptions", {"kind": "closure", "note": "K",
                                            "start": "2000-01-07T23:20:51.5824+16:36",
                                            "end": "1254-12-05T08:37:41-05:58"})
    assert backwards.status_code == 422, backwards.json
    assert set(backwards.json["errors"]) == {"end"}
    days = clinic.post("/exceptions", {"kind": "closure", "first_day": "2026-03-24",
                                       "last_day": "2026-03-20"})
    assert days.status_code == 422, days.json
    assert set(days.json["errors"]) == {"last_day"}
    listed = clinic.get("/exceptions", **{"from": "1900-01-01", "to": "2999-12-30"})
    assert listed.status_code == 200 and listed.json == []  # nothing half-written


def test_a_lifted_leave_frees_the_day_again(clinic):
    leave = clinic.post("/exceptions", {"provider_id": clinic.ids["psych"], "kind": "training",
                                        "start": "2026-03-24T09:00:00+00:00",
                                        "end": "2026-03-24T12:00:00+00:00"})
    day = {"from": "2026-03-24", "to": "2026-03-24"}
    before = clinic.get("/availability", provider_id=clinic.ids["psych"], **day)
    assert _spans(before.json[0]) == [("2026-03-24T12:00", "2026-03-24T17:00")]
    assert clinic.book("psych", "2026-03-24T10:00:00+00:00").status_code == 409
    gone = clinic.client.delete(f"/exceptions/{leave.json['id']}", headers=clinic.scheduler)
    assert gone.status_code == 204
    after = clinic.get("/availability", provider_id=clinic.ids["psych"], **day)
    assert _spans(after.json[0]) == [("2026-03-24T09:00", "2026-03-24T17:00")]


def test_slots_with_a_room_need_a_fitting_room_free_too(clinic):
    # Consulting room 1 is the only room fit for psychology; Dr Okafor takes it at 10:00
    assert clinic.book("pain", "2026-03-23T10:00:00+00:00", patient="p-1",
                       room_id=clinic.ids["room1"]).status_code == 201
    day = {"from": "2026-03-23", "to": "2026-03-23"}
    plain = clinic.get("/availability", provider_id=clinic.ids["psych"], visit_minutes=60,
                       step_minutes=60, **day).json[0]
    roomed = clinic.get("/availability", provider_id=clinic.ids["psych"], visit_minutes=60,
                        step_minutes=60, with_room="true", **day).json[0]
    assert "2026-03-23T10:00:00+00:00" in [s["start"] for s in plain["slots"]]
    assert [s["start"][11:16] for s in roomed["slots"]] == [
        "09:00", "11:00", "12:00", "13:00", "14:00", "15:00", "16:00"]

    no_room = clinic.book("psych", "2026-03-23T10:15:00+00:00", patient="p-2",
                          assign_room=True)
    assert no_room.status_code == 409
    assert "no room fit for psychology" in no_room.json["detail"]
    given = clinic.book("psych", "2026-03-23T11:00:00+00:00", patient="p-2",
                        assign_room=True)
    assert given.status_code == 201, given.json
    assert given.json["room_id"] == clinic.ids["room1"]
    gym = clinic.book("pt", "2026-03-23T10:00:00+00:00", patient="p-3", assign_room=True)
    assert gym.json["room_id"] == clinic.ids["gym"]


def test_free_time_across_the_autumn_clock_change(clinic):
    got = clinic.get("/availability", provider_id=clinic.ids["pt"], visit_minutes=45,
                     **{"from": "2026-10-23", "to": "2026-10-26"}).json[0]
    assert _spans(got) == [("2026-10-23T08:00", "2026-10-23T16:00"),   # Fri, BST
                           ("2026-10-26T09:00", "2026-10-26T17:00")]   # Mon, GMT again
    series = clinic.post("/series", {"patient_id": "p-5", "provider_id": clinic.ids["pt"],
                                     "first_start": "2026-10-19T16:15:00+01:00",
                                     "minutes": 45, "count": 2})
    assert [a["start"] for a in series.json["booked"]] == [
        "2026-10-19T15:15:00+00:00", "2026-10-26T16:15:00+00:00"]
