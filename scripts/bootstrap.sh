#!/usr/bin/env bash
# Installs what PainCare needs on a fresh machine, once; later runs take seconds.
#   - the Python virtualenv (.venv) with the pinned dependencies
#   - Kafka's jars (Maven Central), PostgreSQL (Debian), on demand in their own scripts
#   - Chromium (Debian) for the browser tests, when BROWSER=1; Python's playwright
#     package drives it by executable_path (no browser download)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=${PYTHON:-python3.11}
command -v "$py" >/dev/null || py=python3
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing Python dependencies into .venv ..."
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[dev]'
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
