"""Bad input over HTTP, driven by each live service's own OpenAPI document.

Two passes per operation:
- schemathesis generates positive and negative cases (bounded examples, bounded time);
  checks: `not_a_server_error` and `problem_json` (every 4xx/5xx is problem+json);
- hostile strings (injection, control characters, huge, odd unicode) go into every text
  field the request has: every string in a generated body, query and path.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

PROBLEM = "application/problem+json"
# gunicorn answers these itself (request line or headers too long) before the app runs,
# as problem+json through shared.gunicorn_workers; counted apart, judged like the rest
SERVER_REFUSALS = (414, 431)

HOSTILE_STRINGS = [
    "' OR '1'='1'; DROP TABLE referrals; --",
    "\"; SELECT pg_sleep(5); --",
    "<script>alert(document.cookie)</script>",
    "{{7*7}}${7*7}%s%n%x",
    "../../../../etc/passwd",
    "\x00\x01\x02\x1b[31m",
    "\ud800",  # a lone surrogate: not encodable as UTF-8
    "\u202egnp.exe",
    "Zalgo: Z̵̡̢̛̮͍͇a̴̛̝̟l̸̢̛g̷o̶",
    "🧠💊" * 200,
    "A" * 100_000,
    "",
    " ",
    "null",
    "0",
    "-1",
    "9" * 400,
    "2026-02-30T25:61:61Z",
    "00000000-0000-0000-0000-000000000000",
]


FHIR_JSON = "application/fhir+json"


def error_type_ok(ctype: str, path: str) -> bool:
    """Errors are RFC 9457 problem documents; under /fhir the FHIR gateway answers the
    same problems as FHIR OperationOutcomes (what FHIR clients read)."""
    return ctype.startswith(PROBLEM) or (path.startswith("/fhir")
                                         and ctype.startswith(FHIR_JSON))


def problem_json(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every error answer is an RFC 9457 problem document (an OperationOutcome on /fhir)."""
    if response.status_code >= 400:
        ctype = (response.headers.get("content-type") or [""])[0]
        # gunicorn's own refusals too (its worker class)
        if not error_type_ok(ctype, str(getattr(case, "path", "") or "")):
            raise AssertionError(f"{response.status_code} answered as {ctype!r}, not {PROBLEM}")
    return None


@dataclass
class FuzzStats:
    service: str
    operations: int = 0
    cases: int = 0
    hostile: int = 0
    server_refusals: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def _check(resp: requests.Response, label: str, stats: FuzzStats) -> None:
    stats.statuses[resp.status_code] += 1
    ctype = resp.headers.get("Content-Type", "")
    if resp.status_code in SERVER_REFUSALS:
        stats.server_refusals += 1  # refused before the app saw it (still problem+json)
    if resp.status_code >= 500:
        stats.failures.append(f"{label} -> {resp.status_code}")
    elif resp.status_code >= 400 and not error_type_ok(ctype, urlparse(resp.url).path):
        stats.failures.append(f"{label} -> {resp.status_code} as {ctype!r}")


def _strings(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """Paths to every string leaf (and every scalar, which a text field may hold)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))
    elif path and isinstance(value, str):
        yield path


def _raw(text: str) -> bytes:
    """UTF-8, letting a lone surrogate through as the invalid bytes a client could send."""
    return text.encode("utf-8", "surrogatepass")


def _set(value: Any, path: tuple, new: Any) -> Any:
    out = copy.deepcopy(value)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return out


def fuzz_service(service: str, base_url: str, headers: dict[str, str], *,
                 max_examples: int, budget_seconds: float,
                 hostile_per_operation: int = len(HOSTILE_STRINGS)) -> FuzzStats:
    """Run both passes over every operation of one live service within a time budget."""
    stats = FuzzStats(service)
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json", timeout=10)
    deadline = time.monotonic() + budget_seconds
    session = requests.Session()
    operations = [r.ok() for r in schema.get_all_operations()]
    stats.operations = len(operations)
    per_op = max(budget_seconds / max(len(operations), 1), 1.0)
    for op in operations:
        op_deadline = min(deadline, time.monotonic() + per_op)
        samples: list[Any] = []
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if time.monotonic() > op_deadline:
                break

            run = _runner(op, mode, base_url, headers, session, stats, samples,
                          max_examples, op_deadline)
            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # the first failing case
                stats.failures.append(f"{op.label} [{mode.value}]: "
                                      f"{type(exc).__name__}: {str(exc)[:600]}")
        stats.hostile += _hostile_pass(op, samples, base_url, headers, session, stats,
                                       hostile_per_operation, op_deadline + per_op)
    return stats


def _runner(op: Any, mode: GenerationMode, base_url: str, headers: dict[str, str],
            session: requests.Session, stats: FuzzStats, samples: list, max_examples: int,
            op_deadline: float) -> Any:
    """A hypothesis test for one operation and mode, checking every answer."""

    @hsettings(max_examples=max_examples, deadline=None, database=None,
               phases=[Phase.explicit, Phase.generate],
               suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        if time.monotonic() > op_deadline:
            return
        stats.cases += 1
        if mode is GenerationMode.POSITIVE and len(samples) < 3:
            samples.append(case)
        resp = case.call(base_url=base_url, headers=headers, session=session, timeout=15)
        stats.statuses[resp.status_code] += 1
        case.validate_response(resp, checks=[not_a_server_error, problem_json],
                               headers=headers)

    return run


def _hostile_pass(op: Any, samples: list, base_url: str, headers: dict[str, str],
                  session: requests.Session, stats: FuzzStats, limit: int,
                  deadline: float) -> int:
    """Every text field of a valid-looking request, given each hostile string in turn."""
    sent = 0
    method = op.method.upper()
    for case in samples[:1]:
        body = case.body if isinstance(case.body, dict | list) else None
        query = dict(case.query or {})
        path_params = dict(case.path_parameters or {})
        targets: list[tuple[str, tuple]] = [("body", p) for p in _strings(body or {})]
        targets += [("query", (k,)) for k in query]
        targets += [("path", (k,)) for k in path_params]
        for where, path in targets:
            for hostile in HOSTILE_STRINGS[:limit]:
                if time.monotonic() > deadline:
                    return sent
                b, q, pp = body, query, path_params
                if where == "body":
                    b = _set(body, path, hostile)
                elif where == "query":  # bytes: a lone surrogate goes out as it is
                    q = {**query, path[0]: _raw(hostile)}
                else:
                    pp = {**path_params, path[0]: hostile[:2000] or "x"}
                url = base_url + op.path.format(**{k: requests.utils.quote(_raw(str(v)), safe="")
                                                   for k, v in pp.items()})
                label = f"{method} {op.path} {where}:{'.'.join(map(str, path))}={hostile[:20]!r}"
                try:
                    data = None
                    if b is not None:
                        import json as _json

                        # escaped: a lone surrogate arrives as valid JSON, reaching the app
                        data = _json.dumps(b, ensure_ascii=True).encode()
                    resp = session.request(method, url, params=q, data=data, timeout=15,
                                           headers={**headers,
                                                    "Content-Type": "application/json"})
                except requests.RequestException as exc:
                    stats.failures.append(f"{label}: {type(exc).__name__}")
                    continue
                sent += 1
                _check(resp, label, stats)
    return sent
