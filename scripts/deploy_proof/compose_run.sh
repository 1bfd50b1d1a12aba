#!/usr/bin/env bash
# Step 9 of make proof-deploy: docker-compose.yml run by podman-compose. Ours is the image
# built in step 6 (tagged paincare:local, as compose names it). The third-party images
# (apache/kafka, postgres, axllent/mailpit) cannot be pulled here (no image registry is
# reachable, only package registries), so local stand-ins are built from
# scripts/deploy_proof/standins/ on the same debootstrap'd base and swapped in by an
# override file: Kafka 4.3.0 from the same jars as scripts/kafka.sh, Debian's
# PostgreSQL 15 (bookworm has no 17) behind the official image's init contract, and a
# small SMTP sink for mailpit. Everything else is docker-compose.yml as written.
#   scripts/deploy_proof/compose_run.sh IMAGE BASE_IMAGE
# Exit 0: ran and every check passed; 3: could not run here, and why (last line);
# anything else: a failure (last line says which).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
image=${1:?image}
base=${2:?base image}
here=scripts/deploy_proof
project=paincare-proof
py="$root/.venv/bin/python"
work=$(mktemp -d "${TMPDIR:-/tmp}/compose-proof.XXXXXX")
command -v podman-compose >/dev/null || { echo "not run: podman-compose is not installed (apt-get install podman-compose)"; exit 3; }
echo "$(podman-compose version 2>/dev/null | grep -i 'compose.* version')"

# podman's own settings for every podman that podman-compose starts: this machine needs
# runc (crun fails here) and an nproc limit; its open-files limit is below podman's default
cat >"$work/containers.conf" <<CONF
[engine]
runtime = "runc"
[containers]
default_ulimits = ["nproc=1000:1000", "nofile=$(ulimit -Hn):$(ulimit -Hn)"]
CONF
export CONTAINERS_CONF="$work/containers.conf"

# the file as podman-compose reads it (its own loader, not compose-go): Debian's 1.0.3 has
# no `config`, so a dry run prints the podman commands it would run, one per container
# (1.0.3's dry run still makes the project's network and volumes: its own project name,
# removed right after)
dry=(podman-compose -p "$project-dryrun" -f docker-compose.yml)
"${dry[@]}" --dry-run up -d >"$work/dry-run" 2>&1; dry_rc=$?
podman volume ls -q | grep "^$project-dryrun_" | xargs -r podman volume rm >/dev/null 2>&1
podman network rm -f "$project-dryrun_default" >/dev/null 2>&1
if [ $dry_rc != 0 ]; then
  tail -5 "$work/dry-run"; echo "podman-compose cannot read docker-compose.yml"; exit 1
fi
runs=$(grep -c '^podman run ' "$work/dry-run")
hardened=$(grep '^podman run ' "$work/dry-run" | grep -c -- '--read-only.*--cap-drop ALL')
echo "podman-compose --dry-run: $runs containers, $hardened of them read-only without capabilities"

# compose's services find each other by name on a bridge network: podman's CNI backend
# (Debian's podman 4.3 without netavark) resolves names only with the dnsname plugin
backend=$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null)
if [ "$backend" = cni ] && ! ls /usr/lib/cni/dnsname >/dev/null 2>&1; then
  echo "not run: podman's CNI network has no dnsname plugin, so compose's services cannot find each other by name (apt-get install golang-github-containernetworking-plugin-dnsname)"
  exit 3
fi
net_check=$(podman network create "$project-netcheck" 2>&1 >/dev/null) &&
  podman run --rm --network "$project-netcheck" "$image" true >"$work/net.log" 2>&1 ||
  net_check="no container network here ($(tail -1 "$work/net.log" 2>/dev/null | cut -c1-100)${net_check:+ $net_check})"
podman network rm -f "$project-netcheck" >/dev/null 2>&1
[ -n "$net_check" ] && { echo "not run: $net_check"; exit 3; }
echo "container network: podman $backend backend, bridge network with name resolution"

# the stand-ins, built once per content
kafka_lib="$root/.cache/kafka/lib"
[ -f "$kafka_lib/.complete" ] || scripts/kafka.sh fetch >/dev/null
for standin in kafka postgres mailpit; do
  stamp=$(cat "$here/standins/"* | sha256sum | cut -c1-12)
  tag="localhost/paincare-standin-$standin:$stamp"
  if ! podman image exists "$tag"; then
    ctx="$work/ctx-$standin"; mkdir -p "$ctx"
    cp "$here/standins/"* "$ctx/"
    [ "$standin" = kafka ] && cp -r "$kafka_lib" "$ctx/kafka-libs"
    echo "building the $standin stand-in ($tag) ..."
    if ! nice -n 10 podman --runtime runc build --ulimit nproc=1000 --network host --build-arg BASE="$base" \
         -f "$ctx/Containerfile.$standin" -t "$tag" "$ctx" >"$work/build-$standin.log" 2>&1; then
      tail -10 "$work/build-$standin.log"; echo "the $standin stand-in did not build"; exit 1
    fi
  fi
  printf -v "standin_$standin" '%s' "$tag"
  # an older build of this stand-in (its sources changed since) is not needed again
  podman images --format '{{.Repository}}:{{.Tag}}' "localhost/paincare-standin-$standin" |
    grep -vxF "$tag" | xargs -r podman rmi >/dev/null 2>&1
done
cat >"$work/standins.yml" <<YAML
# no registry here: the stand-ins of $here/standins/ in place of the pulled images
services:
  kafka: {image: "$standin_kafka"}
  postgres: {image: "$standin_postgres"}
  mailpit: {image: "$standin_mailpit"}
YAML
podman tag "$image" localhost/paincare:local

# compose publishes the launcher's ports on the host: they must be free
busy=()
for port in $(grep -oE '"127\.0\.0\.1:[0-9]+:' docker-compose.yml | cut -d: -f2 | sort -u); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && busy+=("$port")
done
if [ ${#busy[@]} -gt 0 ]; then
  echo "compose not started: host ports ${busy[*]} are in use (make up running?)"; exit 1
fi

compose=(podman-compose -p "$project" -f docker-compose.yml -f "$work/standins.yml")
cleanup() {   # 1.0.3's down leaves the project's network
  "${compose[@]}" down -v >>"$work/down.log" 2>&1
  podman network rm -f "${project}_default" >/dev/null 2>&1
}
trap cleanup EXIT
if ! "${compose[@]}" up -d >"$work/up.log" 2>&1; then
  tail -20 "$work/up.log"; echo "podman-compose up failed (log: $work/up.log)"; exit 1
fi
"$py" "$here/compose_check.py" "$project" docker-compose.yml "${compose[@]}" | tee "$work/check.log"
rc=${PIPESTATUS[0]}
if [ "$rc" != 0 ]; then
  for c in $(podman ps -a --filter "label=io.podman.compose.project=$project" --format '{{.Names}}'); do
    if podman logs "$c" 2>&1 | grep -q "Traceback\|\[ERROR\]\|FATAL"; then
      echo "--- $c"; podman logs "$c" 2>&1 | tail -15
    fi
  done
fi
summary=$(tail -1 "$work/check.log")
echo "podman-compose ran docker-compose.yml with stand-ins for kafka, postgres, mailpit: $summary"
[ "$rc" = 0 ]
