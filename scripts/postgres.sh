#!/usr/bin/env bash
# Starts this machine's PostgreSQL 15 if it is not running, makes sure the test role
# and database exist, drops the schemas earlier test runs left in it (each test makes
# a `t_<random>` schema of its own; thousands of them slow PostgreSQL's start by
# minutes), and prints the URL the tests use. Run it before a test run, not during one.
# Needs root (or the postgres user) and Debian's postgresql-common tools.
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
# One schema a transaction: dropping thousands in one would run out of lock slots.
as_postgres psql -qtA -d gatehouse_test >&2 <<'SQL'
SET client_min_messages = warning;
DO $$
DECLARE s text;
BEGIN
  FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\_%' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s);
    COMMIT;
  END LOOP;
END $$;
SQL
echo "postgres://gatehouse:gatehouse@127.0.0.1:5432/gatehouse_test"
