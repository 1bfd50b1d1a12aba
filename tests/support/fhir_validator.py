"""The HAPI FHIR reference validator (scripts/fhir-validator), started once per test
session as a long-running Java process: a resource in on stdin, its messages out.

Also checks that a resource parses with the Python FHIR R4 models (fhir.resources)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import Any

from shared.config import ROOT

BUILD = ROOT / "scripts" / "fhir-validator" / "build.sh"


class FhirValidator:
    """One JVM for the whole session; `errors(resource)` is thread-safe."""

    def __init__(self) -> None:
        started = time.monotonic()
        home = subprocess.run(["bash", str(BUILD)], check=True, capture_output=True,
                              text=True, timeout=900).stdout.strip().splitlines()[-1]
        self.build_seconds = time.monotonic() - started
        started = time.monotonic()
        self.proc = subprocess.Popen(
            # C1 only and the serial collector: a start several times quicker on a small
            # shared machine (36s against 122s measured at load 28 on 2 cores); the few
            # dozen resources a run validates do not need C2's code
            ["java", "-Xss4m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
             "-cp", f"{home}/classes:{home}/lib/*",
             "paincare.ValidatorRunner"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, encoding="utf-8", bufsize=1)
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        if json.loads(ready or "{}").get("ready") is not True:
            raise RuntimeError(f"the FHIR validator did not start: {ready!r}")
        self.start_seconds = time.monotonic() - started
        self._lock = threading.Lock()

    def messages(self, resource: dict[str, Any]) -> list[dict[str, str]]:
        with self._lock:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(json.dumps(resource) + "\n")
            self.proc.stdin.flush()
            return json.loads(self.proc.stdout.readline())["messages"]

    def errors(self, resource: dict[str, Any]) -> list[dict[str, str]]:
        return [m for m in self.messages(resource) if m["severity"] in ("error", "fatal")]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def parses_as_r4(resource: dict[str, Any]) -> Any:
    """The resource read by the fhir.resources R4 (4.0.1) models, strictly (an unknown
    element or a wrong type raises)."""
    from fhir.resources.fhirelementfactory import FHIRElementFactory

    parsed = FHIRElementFactory.instantiate(resource["resourceType"], resource, strict=True)
    assert parsed.resource_type == resource["resourceType"]
    return parsed


def assert_valid(validator: FhirValidator, resource: dict[str, Any]) -> None:
    """Zero errors from the reference validator, and the Python models read it."""
    errors = validator.errors(resource)
    assert errors == [], json.dumps({"resource": resource, "errors": errors}, indent=1)
    parses_as_r4(resource)
