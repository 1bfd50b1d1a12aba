#!/usr/bin/env bash
# Keycloak, the clinic's OpenID Connect provider for make up and the tests, with no Docker.
# The distribution (org.keycloak:keycloak-quarkus-dist, zip) comes from Maven Central once,
# into .cache/keycloak; `start` runs `kc.sh start-dev` on 127.0.0.1:8180 and imports the
# realm deploy/keycloak/paincare-realm.json (a changed realm file starts from a fresh store).
#   scripts/keycloak.sh start|stop|restart|status|fetch
# (--add-opens java.lang: jboss-threads on Java 24+ fails its executor threads without it.)
# Needs Java 21 or newer: KEYCLOAK_JAVA_HOME, else JAVA_HOME if new enough, else the newest
# JDK under /usr/lib/jvm.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version="26.5.6"
cache="${KEYCLOAK_CACHE:-$root/.cache/keycloak}"
home="$cache/keycloak-$version"
port="${KEYCLOAK_PORT:-8180}"
realm_file="${KEYCLOAK_REALM_FILE:-$root/deploy/keycloak/paincare-realm.json}"
realm="paincare"
pidfile="$cache/keycloak.pid"
log="$cache/keycloak.log"
url="http://127.0.0.1:$port"

fetch() {
  if [ -f "$home/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { echo "keycloak.sh: Maven (mvn) is needed to fetch Keycloak" >&2; exit 1; }
  echo "keycloak.sh: fetching Keycloak $version from Maven Central (once) ..."
  mkdir -p "$cache"
  mvn -q -B dependency:copy -Dartifact="org.keycloak:keycloak-quarkus-dist:$version:zip" \
      -DoutputDirectory="$cache"
  rm -rf "$home"
  (cd "$cache" && unzip -q "keycloak-quarkus-dist-$version.zip")
  touch "$home/.complete"
}

java_major() { "$1/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }

find_java() {
  local candidates=("${KEYCLOAK_JAVA_HOME:-}" "${JAVA_HOME:-}")
  for d in $(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -rV); do candidates+=("${d%/}"); done
  for c in "${candidates[@]}"; do
    if [ -n "$c" ] && [ -x "$c/bin/java" ] && [ "$(java_major "$c")" -ge 21 ] 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  return 1
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

ready() { curl -fs -o /dev/null --max-time 2 "$url/realms/$realm/.well-known/openid-configuration"; }

start() {
  local jdk
  jdk=$(find_java) || { echo "keycloak.sh: Keycloak $version needs Java 21 or newer; none found (set KEYCLOAK_JAVA_HOME)" >&2; exit 3; }
  fetch
  if running; then
    if ready; then echo "keycloak.sh: already running (pid $(cat "$pidfile")) on $url"; return 0; fi
  else
    # the realm is imported into a fresh store whenever its file changed
    local stamp; stamp=$(sha256sum "$realm_file" | cut -c1-16)
    if [ "$(cat "$cache/realm.sha" 2>/dev/null)" != "$stamp" ]; then
      rm -rf "$home/data/h2" "$home/data/import"
      echo "$stamp" > "$cache/realm.sha"
    fi
    mkdir -p "$home/data/import"
    cp "$realm_file" "$home/data/import/$realm-realm.json"
    local admin_password="$cache/admin-password"
    [ -s "$admin_password" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$admin_password")
    local t0; t0=$(date +%s.%N)
    JAVA_HOME="$jdk" PATH="$jdk/bin:$PATH" \
      JAVA_OPTS_KC_HEAP="-Xms96m -Xmx512m" \
      JAVA_OPTS_APPEND="--add-opens=java.base/java.lang=ALL-UNNAMED -XX:TieredStopAtLevel=1" \
      KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD="$(cat "$admin_password")" \
      nohup setsid "$home/bin/kc.sh" start-dev --http-host=127.0.0.1 --http-port="$port" \
        --hostname-strict=false --import-realm --log-level=WARN,org.keycloak.services:INFO \
        >"$log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    echo "keycloak.sh: starting Keycloak $version with $jdk ..."
    for _ in $(seq 1 2400); do
      if ! running; then echo "keycloak.sh: Keycloak exited; see $log" >&2; tail -30 "$log" >&2; exit 1; fi
      if ready; then
        echo "keycloak.sh: Keycloak $version ready on $url (realm $realm, pid $(cat "$pidfile")) in $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s"
        return 0
      fi
      sleep 0.25
    done
    echo "keycloak.sh: Keycloak did not become ready in 600 s; see $log" >&2; exit 1
  fi
  for _ in $(seq 1 2400); do ready && { echo "keycloak.sh: ready on $url"; return 0; }; sleep 0.25; done
  echo "keycloak.sh: Keycloak (pid $(cat "$pidfile")) did not answer in 600 s; see $log" >&2; exit 1
}

stop() {
  if ! running; then rm -f "$pidfile"; echo "keycloak.sh: not running"; return 0; fi
  local pid; pid=$(cat "$pidfile")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
  rm -f "$pidfile"
  echo "keycloak.sh: stopped"
}

case "${1:-start}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if running && ready; then echo "running on $url"; else echo "stopped"; exit 1; fi ;;
  java) find_java || { echo "no Java 21+" >&2; exit 3; } ;;
  *) echo "usage: $0 start|stop|restart|status|fetch|java" >&2; exit 2 ;;
esac
