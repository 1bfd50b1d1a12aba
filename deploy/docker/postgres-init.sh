#!/bin/bash
# Runs once, when the PostgreSQL container's data volume is new: one role and one
# database per service (a service owns its database; none reads another's tables).
# The passwords are for the local clinic only; see deploy/README.md for a cluster.
set -euo pipefail
for service in ${PAINCARE_DATABASES:?}; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE ${service} LOGIN PASSWORD '${service}';
CREATE DATABASE ${service} OWNER ${service};
REVOKE ALL ON DATABASE ${service} FROM PUBLIC;
SQL
done
