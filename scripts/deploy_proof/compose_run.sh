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
echo "podman-compose $(podman-compose version 2>/dev/null | grep -i 'podman-compose version' | awk '{print $NF}')"
# the file as podman-compose reads it (it has its own loader, not compose-go)
if ! podman-compose -f docker-compose.yml config >/tmp/compose-config.$$ 2>&1; then
  tail -5 /tmp/compose-config.$$; rm -f /tmp/compose-config.$$
  echo "podman-compose cannot read docker-compose.yml"; exit 1
fi
echo "podman-compose config: $(grep -c '^  [a-z-]*:$' /tmp/compose-config.$$) top-level entries read"
rm -f /tmp/compose-config.$$
podman --runtime runc tag "$image" paincare:local
missing=()
for ref in $(grep -E '^\s+image:' docker-compose.yml | awk '{print $2}' | sort -u); do
  [ "$ref" = "paincare:local" ] && continue
  podman image exists "$ref" || missing+=("$ref")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "not run: ${missing[*]} cannot be pulled here (no image registry reachable) and no local stand-in is built yet"
  exit 3
fi
podman-compose -f docker-compose.yml up -d && sleep 60 && podman-compose -f docker-compose.yml ps
rc=$?
podman-compose -f docker-compose.yml down -v
[ $rc = 0 ] && echo "podman-compose ran the clinic" || echo "podman-compose up failed"
exit $rc
