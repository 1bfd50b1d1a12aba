"""Requests gunicorn refuses before Flask sees them still get problem+json.

One service runs as in production (gunicorn with deploy/gunicorn.conf.py). A clinic
client, or a probe, sends an over-long URL, an over-long header, too many headers and
garbage request lines, over a raw socket and with `requests`: each gets the 4xx that
gunicorn's limits call for, as application/problem+json naming what was wrong, one JSON
log line without the URL's patient id, and the service goes on answering.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from shared.launcher import ServiceProcesses
from tests.support.processes import free_port

SERVICE = "referrals"
PATIENT = "pat-SECRET4711"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcesses]:
    base = tmp_path_factory.mktemp("gunicorn-errors")
    procs = ServiceProcesses(SERVICE, free_port(), {
        "DATABASE_URL": f"sqlite:///{base / 'referrals.db'}", "KAFKA_ENABLED": "false",
        "LOG_LEVEL": "INFO"}, base / "logs", web_workers=1)
    procs.migrate()
    procs.start_web()
    try:
        procs.wait_ready()
        yield procs
    finally:
        procs.stop()


def raw_exchange(procs: ServiceProcesses, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", procs.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    return int(status_line.split(" ")[1]), headers, body


def assert_problem(status: int, headers: dict[str, str] | requests.structures.CaseInsensitiveDict,
                   body: bytes, expected: int, detail: str) -> dict[str, object]:
    assert status == expected
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["content-length"]) == len(body)
    assert headers["connection"].lower() == "close"
    problem = json.loads(body)
    assert problem["status"] == expected
    assert problem["type"] == "about:blank"
    assert problem["title"]
    assert detail in problem["detail"]
    assert problem["request_id"] == headers["x-request-id"]
    return problem


def still_answers(procs: ServiceProcesses) -> None:
    for _ in range(3):
        assert requests.get(procs.url + "/healthz", timeout=5).status_code == 200


def web_log(procs: ServiceProcesses) -> str:
    return (procs.log_dir / f"{SERVICE}-web.log").read_text(errors="replace")


def test_a_10kb_url_is_414_problem_json_over_a_raw_socket(service: ServiceProcesses) -> None:
    target = f"/patients/{PATIENT}/notes?q=" + "a" * 10_000
    status, headers, body = raw_exchange(
        service, f"GET {target} HTTP/1.1\r\nHost: clinic\r\n\r\n".encode())
    problem = assert_problem(status, headers, body, 414,
                             "the request line is longer than 4094 bytes")
    assert problem["title"] == "URI Too Long"
    still_answers(service)


def test_a_10kb_url_is_414_problem_json_with_requests(service: ServiceProcesses) -> None:
    resp = requests.get(service.url + f"/patients/{PATIENT}/notes",
                        params={"q": "a" * 10_000}, timeout=10)
    assert_problem(resp.status_code, resp.headers, resp.content, 414,
                   "the request line is longer than 4094 bytes")
    still_answers(service)


def test_a_10kb_header_is_431_problem_json(service: ServiceProcesses) -> None:
    resp = requests.get(service.url + "/healthz", headers={"X-Referrer-Note": "b" * 10_000},
                        timeout=10)
    problem = assert_problem(resp.status_code, resp.headers, resp.content, 431,
                             "a header field is longer than 8190 bytes")
    assert problem["title"] == "Request Header Fields Too Large"
    status, headers, body = raw_exchange(
        service, b"GET /healthz HTTP/1.1\r\nHost: clinic\r\nX-Big: " + b"b" * 10_000
        + b"\r\n\r\n")
    assert_problem(status, headers, body, 431, "a header field is longer than 8190 bytes")
    still_answers(service)


def test_200_headers_are_431_problem_json(service: ServiceProcesses) -> None:
    many = {f"X-Extra-{i}": str(i) for i in range(200)}
    resp = requests.get(service.url + "/healthz", headers=many, timeout=10)
    assert_problem(resp.status_code, resp.headers, resp.content, 431,
                   "the request has more than 100 header fields")
    lines = b"".join(b"X-Extra-%d: %d\r\n" % (i, i) for i in range(200))
    status, headers, body = raw_exchange(
        service, b"GET /healthz HTTP/1.1\r\nHost: clinic\r\n" + lines + b"\r\n")
    assert_problem(status, headers, body, 431, "the request has more than 100 header fields")
    still_answers(service)


@pytest.mark.parametrize(("request_bytes", "detail"), [
    (b"HELLO CLINIC\r\n\r\n", "the request line is not 'METHOD /target HTTP/1.1'"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 junk HTTP/1.1\r\n\r\n",
     "the request method is not a valid HTTP method"),
    (b"GET /healthz HTTP/7.1\r\n\r\n", "HTTP version is not HTTP/1.0 or HTTP/1.1"),
    (b"GET /healthz HTTP/1.1\r\nHost: clinic\r\nthis is no header\r\n\r\n",
     "a header line is not 'Name: value'"),
    (b"GET /healthz HTTP/1.1\r\nHost: clinic\r\nBad Name: x\r\n\r\n",
     "a header field name is not a valid token"),
], ids=["two-words", "tls-hello", "http-7", "no-colon", "space-in-name"])
def test_garbage_is_400_problem_json(service: ServiceProcesses, request_bytes: bytes,
                                     detail: str) -> None:
    status, headers, body = raw_exchange(service, request_bytes)
    problem = assert_problem(status, headers, body, 400, detail)
    assert problem["title"] == "Bad Request"
    still_answers(service)


def test_refusals_are_logged_as_json_without_the_patient_id(service: ServiceProcesses) -> None:
    raw_exchange(service, f"GET /patients/{PATIENT}/notes?x={'c' * 9000} HTTP/1.1\r\n"
                 "Host: clinic\r\n\r\n".encode())
    deadline = time.monotonic() + 10
    refusals: list[dict[str, object]] = []
    while time.monotonic() < deadline and not refusals:
        refusals = [json.loads(line) for line in web_log(service).splitlines()
                    if line.startswith("{") and "request refused by gunicorn" in line]
        time.sleep(0.1)
    assert refusals, f"no refusal logged in {Path(service.log_dir)}"
    long_url = [r for r in refusals if r["reason"] == "request_line_too_long"]
    assert long_url and long_url[-1]["status"] == 414
    assert long_url[-1]["service"] == SERVICE and long_url[-1]["request_id"]
    garbage = [r for r in refusals if r["reason"] == "invalid_request_line"]
    assert all(len(str(r["request_line_prefix"] or "")) <= 24 for r in garbage)
    assert PATIENT not in web_log(service)
    assert "<html>" not in web_log(service)
