#!/bin/bash
# The read replica's entrypoint (compose.yaml runs it as the postgres user). On the first start
# its data directory is empty: copy the primary with pg_basebackup, which also writes
# standby.signal and primary_conninfo (--write-recovery-conf) so that PostgreSQL starts as a hot
# standby streaming from the primary through the slot. Later starts find the copy and only start.
set -euo pipefail
: "${PGDATA:?}" "${PRIMARY_HOST:?}" "${REPLICATION_USER:?}" "${REPLICATION_PASSWORD:?}" "${REPLICATION_SLOT:?}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	export PGPASSWORD="$REPLICATION_PASSWORD"
	until pg_basebackup --host="$PRIMARY_HOST" --port="${PRIMARY_PORT:-5432}" --username="$REPLICATION_USER" \
		--no-password --pgdata="$PGDATA" --slot="$REPLICATION_SLOT" --wal-method=stream \
		--write-recovery-conf --checkpoint=fast; do
		echo "replica: no base backup from ${PRIMARY_HOST} yet; trying again in 2 s" >&2
		find "$PGDATA" -mindepth 1 -delete
		sleep 2
	done
	unset PGPASSWORD
	chmod 0700 "$PGDATA"
fi

# The image's own entrypoint finds an initialised data directory and starts the server.
exec docker-entrypoint.sh "$@"
