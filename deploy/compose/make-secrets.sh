#!/bin/sh
# Writes the secrets compose.yaml mounts, once: random values in ./secrets. The directory is
# private to you (700); the files are world-readable (644) because Compose bind-mounts them
# as they are, and the gateway and PostgreSQL read them as their own non-root users.
# Existing files are kept, so re-running never changes a password or the key pepper
# (changing the pepper invalidates every API key).
set -eu
cd "$(dirname "$0")"
mkdir -p secrets
chmod 700 secrets
umask 022
random() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }
keep() { [ -s "secrets/$1" ] || { printf '%s\n' "$2" >"secrets/$1" && echo "wrote secrets/$1"; }; }
keep postgres_password "$(random)"
keep database_url "postgresql://mcp:$(cat secrets/postgres_password)@postgres:5432/mcp"
keep key_pepper "$(random)"
keep session_keys "$(random)"
keep admin_token "$(random)"
