"""A referral as a referring system sends it in FHIR R4, for the FHIR gateway's tests."""

from __future__ import annotations

import base64
import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NHS = "https://fhir.nhs.uk/Id/nhs-number"
EMIS_REFERRALS = "urn:oid:2.16.840.1.113883.2.1.3.2.4.18.48"


def referral_bundle(*, bundle_value: str | None = "b-1001", request_value: str | None = "sr-1001",
                    nhs_number: str = "9434765919", snomed: str = "230572002",
                    priority: str = "urgent") -> dict[str, Any]:
    """Patient, ServiceRequest, Condition (SNOMED CT), the GP's role and practice, and a
    letter as DocumentReference + Binary."""
    letter = base64.b64encode(b"%PDF-1.4 referral letter").decode()
    sr: dict[str, Any] = {
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "priority": priority,
        "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
        "requester": {"reference": "urn:uuid:44444444-4444-4444-8444-444444444444"},
        "reasonReference": [{"reference": "urn:uuid:33333333-3333-4333-8333-333333333333"}],
        "supportingInfo": [{"reference": "urn:uuid:66666666-6666-4666-8666-666666666666"}],
        "note": [{"text": "Burning pain in both feet despite pregabalin; poor sleep."}],
    }
    if request_value:
        sr["identifier"] = [{"system": EMIS_REFERRALS, "value": request_value}]
    entries = [
        ("urn:uuid:11111111-1111-4111-8111-111111111111", {
            "resourceType": "Patient",
            "identifier": [{"system": NHS, "value": nhs_number}],
            "name": [{"family": "Whitfield", "given": ["Ann"]}],
            "birthDate": "1958-07-14",
            "telecom": [{"system": "email", "value": "ann.whitfield@example.org"},
                        {"system": "phone", "value": "+44 7700 900123"}]}),
        ("urn:uuid:22222222-2222-4222-8222-222222222222", sr),
        ("urn:uuid:33333333-3333-4333-8333-333333333333", {
            "resourceType": "Condition",
            "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": snomed,
                                 "display": "Diabetic neuropathy"}]},
            "onsetDateTime": "2026-03-01"}),
        ("urn:uuid:44444444-4444-4444-8444-444444444444", {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": "urn:uuid:55555555-5555-4555-8555-555555555555"},
            "organization": {"reference": "urn:uuid:77777777-7777-4777-8777-777777777777"}}),
        ("urn:uuid:55555555-5555-4555-8555-555555555555", {
            "resourceType": "Practitioner",
            "name": [{"prefix": ["Dr"], "text": "Dr Priya Patel"}]}),
        ("urn:uuid:77777777-7777-4777-8777-777777777777", {
            "resourceType": "Organization", "name": "Elm Street Surgery"}),
        ("urn:uuid:66666666-6666-4666-8666-666666666666", {
            "resourceType": "DocumentReference", "status": "current",
            "description": "GP referral letter",
            "content": [{"attachment": {
                "url": "urn:uuid:88888888-8888-4888-8888-888888888888",
                "title": "gp-letter.pdf", "contentType": "application/pdf"}}]}),
        ("urn:uuid:88888888-8888-4888-8888-888888888888", {
            "resourceType": "Binary", "contentType": "application/pdf", "data": letter}),
    ]
    bundle: dict[str, Any] = {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [{"fullUrl": url, "resource": res,
                   "request": {"method": "POST", "url": res["resourceType"]}}
                  for url, res in entries]}
    if bundle_value:
        bundle["identifier"] = {"system": "urn:ietf:rfc:3986",
                                "value": f"urn:uuid:{_uuid(bundle_value)}"}
    return bundle


def _uuid(seed: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def bare_service_request(request_value: str = "sr-2001") -> dict[str, Any]:
    """The same referral as one ServiceRequest with its resources contained."""
    bundle = referral_bundle(bundle_value=None, request_value=request_value,
                             nhs_number="9000000009")
    by_url = {e["fullUrl"]: copy.deepcopy(e["resource"]) for e in bundle["entry"]}
    sr = by_url.pop("urn:uuid:22222222-2222-4222-8222-222222222222")
    contained = []
    names = {}
    for n, (url, res) in enumerate(by_url.items()):
        if res["resourceType"] in ("Binary",):
            continue
        res["id"] = f"c{n}"
        names[url] = f"#c{n}"
        contained.append(res)

    def relink(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (names.get(v, v) if k == "reference" else relink(v))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [relink(v) for v in value]
        return value

    contained = [relink(c) for c in contained]
    for c in contained:  # the letter travels as a link, not inline, in a bare request
        if c["resourceType"] == "DocumentReference":
            c["content"][0]["attachment"]["url"] = "https://gp.example.org/letters/42"
            c["content"][0]["attachment"]["size"] = 48211
    sr = relink(sr)
    sr["contained"] = contained
    return sr


def subscription(endpoint: str, criteria: str) -> dict[str, Any]:
    """A referring system's R4 Subscription: rest-hook, the Task as the payload."""
    return {"resourceType": "Subscription", "status": "requested",
            "reason": "Tell our referral desk what happened to our referrals",
            "criteria": criteria,
            "channel": {"type": "rest-hook", "endpoint": endpoint,
                        "payload": "application/fhir+json"}}


class RestHookEndpoint:
    """A referring system's rest-hook receiver on this machine."""

    def __init__(self, status: int = 200) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.received.append((self.path, dict(self.headers), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def tasks(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _p, _h, body in self.received if body]

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)
