#!/bin/sh
# Entry point of the local PostgreSQL stand-in (scripts/build-images.sh --local-bases makes
# localhost/mcp-postgres-standin:15 from Debian's postgresql-15, where the official postgres
# image cannot be pulled). It keeps the part of the official image's contract that
# deploy/compose/compose.yaml uses: POSTGRES_USER, POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE,
# POSTGRES_DB and PGDATA; the database is created on first start only; pg_isready works.
set -eu
export PATH="/usr/lib/postgresql/15/bin:$PATH"
PGDATA=${PGDATA:-/var/lib/postgresql/data}
user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  password=${POSTGRES_PASSWORD:-}
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then password=$(cat "$POSTGRES_PASSWORD_FILE"); fi
  [ -n "$password" ] || { echo "postgres-standin: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE" >&2; exit 1; }
  pwfile=$(mktemp)
  printf '%s\n' "$password" >"$pwfile"
  initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$database" != postgres ]; then
    echo "CREATE DATABASE \"$database\" OWNER \"$user\";" | postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
  echo "postgres-standin: created database $database for $user"
fi
# /var/run is a fresh tmpfs in some runtimes, without the packaged socket directory.
sockets=/var/run/postgresql
[ -d "$sockets" ] && [ -w "$sockets" ] || sockets=/tmp
exec postgres -D "$PGDATA" -c unix_socket_directories="$sockets" "$@"
