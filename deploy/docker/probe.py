"""Health probe for containers that have no curl: exits 0 when the URL answers 2xx.

    python deploy/docker/probe.py http://127.0.0.1:8001/readyz

Used by docker-compose health checks and by the worker's exec probes on Kubernetes. The
worker has no HTTP API, only /metrics on $WORKER_METRICS_ADDR:$WORKER_METRICS_PORT
(0.0.0.0:9100 in pods and compose, so Prometheus can scrape it; loopback by default):
the probe runs in the container and asks 127.0.0.1, which answers either way."""

from __future__ import annotations

import sys
import urllib.request


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: probe.py URL", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(argv[0], timeout=3) as resp:
            return 0 if 200 <= resp.status < 300 else 1
    except Exception as exc:  # any failure is "not healthy"
        print(f"probe {argv[0]}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
