#!/usr/bin/env bash
# PostgreSQL from Debian's package, on loopback, one database per service.
#   scripts/postgres.sh start|stop|status|url SERVICE
# Installs the package when it is missing (needs root, as CI and this machine are).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data="${PG_DATA:-$root/.cache/postgres/data}"
port="${PG_PORT:-5433}"
log="$root/.cache/postgres/postgres.log"
databases=(referrals scheduling notes notifier dashboard fhir paincare_test)

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

install() {
  if [ -n "$(bindir)" ] && [ -x "$(bindir)/initdb" ]; then return 0; fi
  echo "postgres.sh: installing Debian's postgresql package ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
  # Debian's package starts its own cluster on 5432; ours runs apart on $port.
}

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

running() { as_pg "$(bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1; }

start() {
  install
  local bin; bin=$(bindir)
  mkdir -p "$(dirname "$data")"
  if [ "$(id -u)" = 0 ]; then chown postgres "$(dirname "$data")"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    {
      echo "listen_addresses = '127.0.0.1'"
      echo "port = $port"
      echo "unix_socket_directories = '/tmp'"
      echo "max_connections = 200"
      echo "fsync = ${PG_FSYNC:-on}"
      echo "synchronous_commit = on"
    } >> "$data/postgresql.conf"
  fi
  if ! running; then
    as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null
  fi
  for db in "${databases[@]}"; do
    if ! as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
        "select 1 from pg_database where datname='$db'" | grep -q 1; then
      as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
    fi
  done
  echo "postgres.sh: PostgreSQL ready on 127.0.0.1:$port (databases: ${databases[*]})"
}

stop() {
  if [ -n "$(bindir)" ] && running; then as_pg "$(bindir)/pg_ctl" -D "$data" -m fast -w stop >/dev/null; fi
  echo "postgres.sh: stopped"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo running; else echo stopped; exit 1; fi ;;
  url) echo "postgresql+psycopg://postgres@127.0.0.1:$port/${2:?service}" ;;
  *) echo "usage: $0 start|stop|status|url SERVICE" >&2; exit 2 ;;
esac
