#!/usr/bin/env bash
# Installs the peer MCP gateways `make bench-peers` measures, each from its registry into its own
# venv under the cache (never into our lock), keyed by the version pinned in versions.env.
# A second run finds them and returns at once. Not part of `make test`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${MCP_GATEWAY_CACHE:-$HOME/.cache/mcp-gateway}
peers=$cache/peers
mkdir -p "$peers"
python=${PYTHON:-python3}

install_contextforge() {
  local venv=$peers/contextforge-$CONTEXTFORGE_VERSION
  [[ -f $venv/.installed ]] && return  # written last: a half-done install is redone
  echo "install-peers: ContextForge $CONTEXTFORGE_VERSION into $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q "mcp-contextforge-gateway==$CONTEXTFORGE_VERSION"
  touch "$venv/.installed"
}

install_contextforge
