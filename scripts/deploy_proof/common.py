"""What the deploy proof's Python steps share: the podman command line, the ok/FAIL tally
they print, and waiting for a probe (a URL answering 200) within a deadline."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PODMAN = ["podman", "--runtime", "runc"]
results: list[tuple[bool, str]] = []


def check(ok: bool, what: str) -> bool:
    """Record one claim of the proof and print it as it is decided."""
    results.append((ok, what))
    print(f"  [{'ok' if ok else 'FAIL'}] {what}", flush=True)
    return ok


def summary(step: str) -> int:
    """Print the tally; the exit status is 1 when any claim failed."""
    failed = [w for ok, w in results if not ok]
    print(f"{step}: {len(results) - len(failed)} passed, {len(failed)} failed")
    for what in failed:
        print(f"  FAILED: {what}")
    return 1 if failed else 0


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)


def until(probe: Callable[[], bool], seconds: float, interval: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(interval)
    return False


def ready(url: str) -> bool:
    try:
        return requests.get(url, timeout=3).status_code == 200
    except requests.RequestException:
        return False
