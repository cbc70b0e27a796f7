#!/bin/bash
# The primary's one-time set-up for its streaming replica. The official postgres image runs the
# scripts in /docker-entrypoint-initdb.d/ once, when it initialises an empty data directory, with
# a temporary server up: this one adds the role the replica connects as, the replication slot
# that keeps WAL until the replica has received it, and the pg_hba.conf line that lets that role
# (and only it) make replication connections, with a password.
set -euo pipefail
: "${REPLICATION_USER:?}" "${REPLICATION_PASSWORD:?}" "${REPLICATION_SLOT:?}"

psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	-v role="$REPLICATION_USER" -v password="$REPLICATION_PASSWORD" -v slot="$REPLICATION_SLOT" <<'SQL'
CREATE ROLE :"role" WITH REPLICATION LOGIN PASSWORD :'password';
SELECT pg_create_physical_replication_slot(:'slot');
SQL

echo "host replication ${REPLICATION_USER} all scram-sha-256" >>"$PGDATA/pg_hba.conf"
