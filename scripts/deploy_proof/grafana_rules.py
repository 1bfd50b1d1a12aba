"""Step 5 of `make proof-deploy`: every PromQL query of a Grafana dashboard written out as
the recording rule it would be, so that `promtool check rules` parses each one.

    python scripts/deploy_proof/grafana_rules.py deploy/grafana/paincare.json > rules.yml

Panel targets' `expr`, and the metric selector of each `label_values(SELECTOR, label)`
template query. Grafana's own variables become what they stand for at query time
($__rate_interval a duration, $service the "All" regex); any other `$` is left in, so
promtool refuses it rather than this script guessing. No query at all is an error."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "${__rate_interval}": "5m",
                     "$__interval": "1m", "${__interval}": "1m",
                     "$service": ".*", "${service}": ".*"}
LABEL_VALUES = re.compile(r"^\s*label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$")


def queries(dashboard: Any) -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    found.append(value)
                elif key == "query" and isinstance(value, dict) and \
                        isinstance(value.get("query"), str):
                    match = LABEL_VALUES.match(value["query"])
                    if match:
                        found.append(match.group(1))
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(dashboard)
    return found


def as_query_time(expr: str) -> str:
    for variable in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_VARIABLES[variable])
    return expr


def rules(exprs: list[str]) -> str:
    lines = ["groups:", "  - name: grafana", "    rules:"]
    for i, expr in enumerate(exprs):
        lines += [f"      - record: grafana:query_{i}",
                  f"        expr: {json.dumps(as_query_time(expr))}"]
    return "\n".join(lines) + "\n"


def main(path: str) -> int:
    exprs = queries(json.loads(Path(path).read_text()))
    if not exprs:
        print(f"grafana_rules: no PromQL query found in {path}", file=sys.stderr)
        return 1
    sys.stdout.write(rules(exprs))
    print(f"grafana_rules: {len(exprs)} queries from {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
