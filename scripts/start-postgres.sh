#!/usr/bin/env bash
# Starts the machine's PostgreSQL 15 (installed, not running) and makes sure the
# test role exists. Idempotent: a second run only checks.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null; then
  echo "start-postgres: installing PostgreSQL 15" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
fi
if ! pg_lsclusters -h | awk '$1 == 15 && $2 == "main"' | grep -q .; then
  pg_createcluster 15 main >/dev/null
fi
if ! pg_lsclusters -h | awk '$1 == 15 && $2 == "main" {print $4}' | grep -q online; then
  pg_ctlcluster 15 main start
fi
as_postgres() { runuser -u postgres -- "$@"; }
for _ in $(seq 1 50); do as_postgres pg_isready -q -h 127.0.0.1 && break; sleep 0.2; done
as_postgres psql -q -v ON_ERROR_STOP=1 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mcp_test') THEN
    CREATE ROLE mcp_test LOGIN SUPERUSER PASSWORD 'mcp_test';
  END IF;
END $$;
SQL
# The throwaway database the suite starts from; tests make their own beside it.
as_postgres psql -q -c 'DROP DATABASE IF EXISTS mcp_gateway_test WITH (FORCE)' -c 'CREATE DATABASE mcp_gateway_test OWNER mcp_test'
