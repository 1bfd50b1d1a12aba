#!/usr/bin/env bash
# kustomize, built once from the Go module proxy into .cache/bin (gitignored), then cached.
#   scripts/kustomize.sh build deploy/k8s/overlays/dev     # runs kustomize with these args
#   scripts/kustomize.sh --path                            # installs if needed, prints its path
# No kubectl is needed: `kubectl kustomize DIR` and `kustomize build DIR` render the same.
# v5.8.2 is the newest kustomize whose go.mod accepts this machine's Go (1.26); v5.8.3 needs 1.27.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=${KUSTOMIZE_VERSION:-v5.8.2}
bin_dir="$root/.cache/bin"
bin="$bin_dir/kustomize-$version"

install() {
  command -v go >/dev/null || { echo "kustomize.sh: Go is needed to build kustomize" >&2; exit 1; }
  mkdir -p "$bin_dir"
  # one install at a time, even when several test runs start together
  exec 9>"$bin_dir/.kustomize.lock"
  flock 9
  if [ ! -x "$bin" ]; then
    echo "kustomize.sh: building kustomize $version from the Go module proxy (once) ..." >&2
    tmp=$(mktemp -d "$bin_dir/.build.XXXXXX")
    # GOTOOLCHAIN=local: use the machine's Go, never fetch another toolchain behind our back
    GOTOOLCHAIN=local GOBIN="$tmp" GOFLAGS=-buildvcs=false \
      go install "sigs.k8s.io/kustomize/kustomize/v5@$version" >&2
    mv "$tmp/kustomize" "$bin"
    rmdir "$tmp"
  fi
  exec 9>&-
}

[ -x "$bin" ] || install
if [ "${1:-}" = "--path" ]; then
  echo "$bin"
  exit 0
fi
exec "$bin" "$@"
