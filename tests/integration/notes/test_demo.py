"""The demo notes pass the API's own validation and tell a clinical story."""

from services.notes import demo
from tests.support.clinic import bearer


class _Answer:
    def __init__(self, resp) -> None:
        self.resp = resp

    def raise_for_status(self) -> None:
        assert self.resp.status_code < 400, self.resp.get_json()

    def json(self):
        return self.resp.get_json()


class _ThroughTestClient:
    """`requests`' get and post, answered by the app in this process."""

    def __init__(self, client) -> None:
        self.client = client

    def get(self, url, headers=None, timeout=None):
        return _Answer(self.client.get(url.removeprefix("http://notes"), headers=headers))

    def post(self, url, json=None, headers=None, timeout=None):
        return _Answer(self.client.post(url.removeprefix("http://notes"), json=json,
                                        headers=headers))


def test_the_demo_seeds_a_six_week_story_once(clinic, monkeypatch):
    monkeypatch.setattr(demo, "requests", _ThroughTestClient(clinic.client))
    team = {"pain_medicine": "prov-pain", "psychology": "prov-psych",
            "physical_therapy": "prov-pt", "acupuncture": "prov-acu"}
    for provider, discipline in [(p, d) for d, p in team.items()]:
        clinic.book(provider, discipline, patient=demo.DEMO_PATIENT)

    def headers_for(discipline: str) -> dict:
        return bearer(clinic.settings, "specialist", f"sub-{discipline}",
                      discipline=discipline, provider_id=team[discipline])

    demo.seed("http://notes", headers_for)
    demo.seed("http://notes", headers_for)
    timeline = clinic.client.get(f"/patients/{demo.DEMO_PATIENT}/timeline",
                                 headers=headers_for("psychology")).get_json()
    assert timeline["total"] == 6
    assert {n["discipline"] for n in timeline["notes"]} == set(team)
    assert all(n["status"] == "signed" for n in timeline["notes"])
    assert timeline["trends"]["nrs_average"]["meaningful"] == "moderate_improvement"
    assert timeline["trends"]["pseq"]["meaningful"] == "meaningful_improvement"
