#!/usr/bin/env bash
# First start of the compose PostgreSQL: a database and two roles per service, as devstack
# provisions them. <db>_owner owns the database and runs migrations; <db>_app is what the
# service connects as: neither owner nor BYPASSRLS, so row-level security applies to it.
# Development passwords only (GPSOC_DB_PASSWORD); production databases come from the cluster.
set -euo pipefail

for db in ${GPSOC_DATABASES}; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE "${db}_owner" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '${GPSOC_DB_PASSWORD}';
CREATE ROLE "${db}_app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '${GPSOC_DB_PASSWORD}';
CREATE DATABASE "${db}" OWNER "${db}_owner" ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE "${db}" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE "${db}" TO "${db}_app";
SQL
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$db" <<SQL
GRANT USAGE ON SCHEMA public TO "${db}_app";
ALTER DEFAULT PRIVILEGES FOR ROLE "${db}_owner" IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "${db}_app";
ALTER DEFAULT PRIVILEGES FOR ROLE "${db}_owner" IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO "${db}_app";
SQL
  echo "init-databases: ${db} with roles ${db}_owner and ${db}_app"
done
