#!/usr/bin/env bash
# Step 9 of make proof-deploy: docker-compose.yml under podman-compose. It needs every
# image the file names; ours is built here (tagged as compose expects), the third-party
# ones (Kafka, PostgreSQL, mailpit) come from Docker Hub, which this machine cannot reach
# (only the package registries are). Exit 0: ran; 3: could not run here, and why (last
# line); anything else: a failure.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
image=${1:?image}
command -v podman-compose >/dev/null || { echo "podman-compose not installed"; exit 3; }
echo "$(podman-compose version 2>/dev/null | grep -i 'compose.* version')"
# the file as podman-compose reads it (its own loader, not compose-go): Debian's 1.0.3 has
# no `config`, so a dry run prints the podman commands it would run, one per container
if ! podman-compose -f docker-compose.yml --dry-run up -d >/tmp/compose-dry.$$ 2>&1; then
  tail -5 /tmp/compose-dry.$$; rm -f /tmp/compose-dry.$$
  echo "podman-compose cannot read docker-compose.yml"; exit 1
fi
runs=$(grep -c '^podman run ' /tmp/compose-dry.$$)
hardened=$(grep '^podman run ' /tmp/compose-dry.$$ | grep -c -- '--read-only.*--cap-drop ALL')
echo "podman-compose --dry-run: $runs containers, $hardened of them read-only without capabilities"
rm -f /tmp/compose-dry.$$
podman --runtime runc tag "$image" paincare:local
missing=()
for ref in $(grep -E '^\s+image:' docker-compose.yml | awk '{print $2}' | sort -u); do
  [ "$ref" = "paincare:local" ] && continue
  podman image exists "$ref" || missing+=("$ref")
done
# compose's services find each other on a bridge network: podman needs netavark or the
# CNI plugins for it, and this machine has neither working (only --network host runs)
if ! podman --runtime runc run --rm --ulimit nproc=1000 --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" \
     "$image" true >/tmp/compose-net.$$ 2>&1; then
  net="no container network here ($(tail -1 /tmp/compose-net.$$ | cut -c1-80))"
fi
rm -f /tmp/compose-net.$$
if [ ${#missing[@]} -gt 0 ] || [ -n "${net:-}" ]; then
  echo "not run: ${missing[*]:+${missing[*]} cannot be pulled here (no image registry reachable, no local stand-ins built)}${net:+; $net}"
  exit 3
fi
podman-compose -f docker-compose.yml up -d && sleep 60 && podman-compose -f docker-compose.yml ps
rc=$?
podman-compose -f docker-compose.yml down -v
[ $rc = 0 ] && echo "podman-compose ran the clinic" || echo "podman-compose up failed"
exit $rc
