#!/bin/sh
# One-shot (the `temporal-schema` service of docker-compose.yml, image temporalio/admin-tools): creates
# Temporal's two PostgreSQL databases and brings their schemas to the version this server image
# needs, with temporal-sql-tool, the way Temporal documents for a production deployment (the
# temporalio/auto-setup image does the same at every start and is meant for development only). Safe
# to run again: existing databases are kept and the schema update applies only what is missing.
# The `temporal` service starts only after this exits 0.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS (the database host) is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required (deploy/temporal.env)}"
: "${POSTGRES_PWD:?POSTGRES_PWD is required (deploy/temporal.env)}"
DB_PORT="${DB_PORT:-5432}"
DBNAME="${DBNAME:-temporal}"
VISIBILITY_DBNAME="${VISIBILITY_DBNAME:-temporal_visibility}"
SCHEMA_DIR="${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}"

# The password reaches temporal-sql-tool through its environment, not its command line.
SQL_PASSWORD="$POSTGRES_PWD"
export SQL_PASSWORD

sql() {
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

# docker-compose.yml starts this once PostgreSQL is healthy (pg_isready).
for pair in "$DBNAME:temporal" "$VISIBILITY_DBNAME:visibility"; do
  db="${pair%%:*}"
  schema="${pair##*:}"
  # PostgreSQL's image already created the database named after the user.
  if [ "$db" != "$POSTGRES_USER" ]; then
    sql --db "$db" create || echo "database $db: not created (it exists already?); the schema steps below fail if it is unusable"
  fi
  sql --db "$db" setup-schema -v 0.0
  sql --db "$db" update-schema -d "$SCHEMA_DIR/$schema/versioned"
  echo "database $db: schema up to date"
done
