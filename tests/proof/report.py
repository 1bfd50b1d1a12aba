"""Every proof suite says what it tried and what held, one line per check.

Lines go to stdout (visible with `pytest -s`) and, when `PROOF_REPORT` names a file, are
appended to it as JSON so `scripts/proof.py` can print one table at the end of a run.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Finding:
    suite: str
    check: str
    tried: int
    held: int
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.tried > 0 and self.held == self.tried


def record(suite: str, check: str, *, tried: int, held: int, detail: str = "") -> Finding:
    """Print and (for make proof) persist one line: `held` of `tried` attempts held."""
    finding = Finding(suite, check, tried, held, detail)
    mark = "HELD" if finding.ok else "FAILED"
    print(f"[proof] {suite:<10} {check:<60} tried={tried:<6} held={held:<6} {mark} {detail}")
    target = os.environ.get("PROOF_REPORT")
    if target:
        with Path(target).open("a") as fh:
            fh.write(json.dumps({**asdict(finding), "at": time.time()}) + "\n")
    return finding


def load(path: Path) -> list[Finding]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            data = json.loads(line)
            data.pop("at", None)
            out.append(Finding(**data))
    return out


def long_form() -> bool:
    """`make proof` sets PROOF_LONG=1: more examples, longer streams, more load."""
    return os.environ.get("PROOF_LONG", "") in ("1", "true", "yes")


def table(rows: list[list[str]], headers: list[str]) -> str:
    """A plain text table: wide enough for every cell, no dependency."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def fmt(cells: list[str]) -> str:
        return "|" + "|".join(f" {c!s:<{w}} " for c, w in zip(cells, widths, strict=False)) + "|"

    return "\n".join([line, fmt(headers), line, *(fmt(r) for r in rows), line])
