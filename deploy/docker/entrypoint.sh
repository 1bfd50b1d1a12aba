#!/bin/sh
# Container entrypoint for every PainCare role: prepares a clean Prometheus multiprocess
# directory (gunicorn's workers share it; stale files from a previous run would be summed),
# then runs the container's command as PID 1's only child via exec, so SIGTERM reaches
# gunicorn's arbiter (graceful shutdown) or the worker (stops its loops cleanly).
set -eu
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  rm -rf "$PROMETHEUS_MULTIPROC_DIR"
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi
exec "$@"
