#!/usr/bin/env bash
# Starts this machine's PostgreSQL 15 if it is not running, makes sure the test role
# and database exist, and prints the URL the tests use. Needs root (or the postgres
# user) and Debian's postgresql-common tools.
set -euo pipefail
version=${PG_VERSION:-15}
cluster=${PG_CLUSTER:-main}
if ! pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1==v && $2==c {print $4}' | grep -q online; then
  pg_ctlcluster "$version" "$cluster" start >&2
fi
as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}
for _ in $(seq 1 50); do
  as_postgres psql -qtAc 'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.2
done
as_postgres psql -qtA >&2 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gatehouse') THEN
    CREATE ROLE gatehouse LOGIN PASSWORD 'gatehouse';
  END IF;
END $$;
SQL
if ! as_postgres psql -qtAc "SELECT 1 FROM pg_database WHERE datname = 'gatehouse_test'" | grep -q 1; then
  as_postgres createdb -O gatehouse gatehouse_test >&2
fi
# Each test creates its own schema, so the role must own the database.
as_postgres psql -qtAc "ALTER DATABASE gatehouse_test OWNER TO gatehouse" >&2
echo "postgres://gatehouse:gatehouse@127.0.0.1:5432/gatehouse_test"
