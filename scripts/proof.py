"""`make proof`: the long forms of the fault, load, bad-input and security suites on this
machine, each printing what it tried and what held, ending with one summary table.

It runs on a private Kafka broker (its own ports and data, started and removed here),
because the fault suite stops brokers and must never stop one somebody else uses; and on
the project's PostgreSQL server (its own databases). Usage:

    python scripts/proof.py [--only security,hostile,bad-input,faults,journeys,load] [--short]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# scripts/mint_token.py would shadow the standard library's `token` module
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "scripts"]
sys.path.insert(0, str(ROOT))

from tests.proof.broker import private_broker  # noqa: E402
from tests.proof.report import load, table  # noqa: E402
from tests.support import infra  # noqa: E402

PY = str(ROOT / ".venv/bin/python") if (ROOT / ".venv/bin/python").exists() else sys.executable
PYTEST = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=1500", "-W", "ignore"]

STEPS: list[tuple[str, str, list[str]]] = [
    ("security", "role-by-route matrix; role x route x patient (care teams); note text in "
     "no log line, no event",
     [*PYTEST, "tests/integration/security/test_route_matrix.py",
      "tests/integration/security/test_data_matrix.py",
      "tests/e2e/test_note_text_never_logged.py"]),
    ("hostile", "malformed and hostile events on every consumed topic",
     [*PYTEST, "tests/integration/security/test_hostile_events.py"]),
    ("bad-input", "schemathesis + hostile strings on every OpenAPI operation",
     [*PYTEST, "tests/e2e/test_openapi_fuzz.py"]),
    ("faults", "SIGKILL workers, broker restart, database away, poison; reconciled",
     [*PYTEST, "-s", "tests/e2e/test_faults.py"]),
    ("journeys", "every end-to-end journey on SQLite and on PostgreSQL (make test runs "
     "each on one)",
     [*PYTEST, "-m", "journey", "tests/e2e"]),
    ("load", "every service under gunicorn at a sustained rate vs bare Kafka",
     [PY, "bench/bench_load.py"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated steps")
    parser.add_argument("--short", action="store_true", help="the normal suite's short forms")
    args = parser.parse_args()
    wanted = {s for s in args.only.split(",") if s} or {name for name, _d, _c in STEPS}
    unknown = wanted - {name for name, _d, _c in STEPS}
    if unknown:
        parser.error(f"unknown steps: {sorted(unknown)}")

    out_dir = ROOT / ".var" / "proof" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    report = out_dir / "findings.jsonl"
    started = time.monotonic()
    print(f"proof: logs in {out_dir}")
    infra.ensure_postgres()
    broker = private_broker(Path(tempfile.mkdtemp(prefix="paincare-proof-kafka-")))
    print(f"proof: private Kafka broker on {broker.bootstrap}")
    env = {**os.environ, **broker.env(), "PROOF_REPORT": str(report),
           "PYTHONPATH": str(ROOT), "PROOF_LONG": "" if args.short else "1",
           # the long form: three minutes of load on each database
           "BENCH_SECONDS": os.environ.get("BENCH_SECONDS", "30" if args.short else "180"),
           "BENCH_BACKEND": os.environ.get("BENCH_BACKEND",
                                           "sqlite" if args.short else "both")}
    steps: list[list[str]] = []
    try:
        for name, description, command in STEPS:
            if name not in wanted:
                continue
            print(f"\n== {name}: {description}", flush=True)
            before = len(load(report))
            t0 = time.monotonic()
            with (out_dir / f"{name}.log").open("w") as log:
                proc = subprocess.run(command, cwd=ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, timeout=1800)
            seconds = time.monotonic() - t0
            tail = (out_dir / f"{name}.log").read_text(errors="replace").splitlines()
            for line in tail:  # the faults as they were done, the load figures
                if line.startswith("[faults]") or (name == "load" and (
                        line.startswith(("|", "+", "throughput", "pings", "clinic",
                                          "confirmations", "errors")))):
                    print("  " + line)
            for f in load(report)[before:]:  # what was tried and what held
                print(f"  [{'held' if f.ok else 'FAILED'}] {f.check}: {f.held}/{f.tried} "
                      f"{f.detail}")
            summary = next((ln for ln in reversed(tail) if " passed" in ln or " failed" in ln
                            or " error" in ln), "")
            print(f"  -> exit {proc.returncode} in {seconds:.0f}s {summary.strip('= ')}")
            if proc.returncode:
                print("  last lines of the log:")
                for line in tail[-25:]:
                    print("    " + line[:300])
            found = len(load(report)) - before
            steps.append([name, "PASS" if proc.returncode == 0 else "FAIL", f"{seconds:.0f}s",
                          str(found), summary.strip("= ")[:60]])
    finally:
        broker.destroy()

    findings = load(report)
    rows = [[f.suite, f.check[:90], str(f.tried), str(f.held), "held" if f.ok else "FAILED",
             f.detail[:60]] for f in findings]
    total = time.monotonic() - started
    print("\nPROOF SUMMARY")
    print(table(rows, ["suite", "check", "tried", "held", "result", "detail"]))
    print(table(steps, ["step", "result", "time", "checks", "pytest"]))
    ok = all(s[1] == "PASS" for s in steps) and all(f.ok for f in findings) and findings
    print(f"proof: {'ALL HELD' if ok else 'FAILED'}: {sum(f.ok for f in findings)}/"
          f"{len(findings)} checks held, {len(steps)} steps, {total / 60:.1f} min "
          f"(budget 30 min); logs in {out_dir}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
