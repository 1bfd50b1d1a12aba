#!/usr/bin/env bash
# Installs what PainCare needs on a fresh machine, once; later runs take seconds.
#   - the Python virtualenv (.venv) from the lock file (pinned versions and hashes)
#   - Kafka's jars (Maven Central), PostgreSQL (Debian), on demand in their own scripts
#   - Chromium (Debian) for the browser tests, when BROWSER=1; Python's playwright
#     package drives it by executable_path (no browser download)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=${PYTHON:-python3.11}
command -v "$py" >/dev/null || py=python3
# Every package, transitive ones too, from the lock file at its pinned version and hash
# (requirements-dev.lock: runtime + dev; the image uses requirements.lock), then the
# project itself without resolving anything. Regenerate both after changing pyproject.toml:
#   uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
#     --python-platform x86_64-manylinux_2_28 --no-header --annotation-style line \
#     -o requirements.lock            (and --extra dev -o requirements-dev.lock)
stamp=.venv/.installed-$(cat pyproject.toml requirements-dev.lock | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing Python dependencies into .venv ..."
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  .venv/bin/pip install -q --require-hashes -r requirements-dev.lock
  .venv/bin/pip install -q --no-deps -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
scripts/kafka.sh fetch
if [ "${BROWSER:-0}" = 1 ] && ! command -v chromium >/dev/null; then
  echo "bootstrap: installing Debian's chromium for the browser tests ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
echo "bootstrap: ready"
