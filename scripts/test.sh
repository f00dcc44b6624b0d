#!/usr/bin/env bash
# The README's test command (`make test`): on a fresh machine of this kind it
# installs and starts everything the suite needs, then runs ruff, mypy and pytest.
# Every step is cached, so a second run spends seconds on setup.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*" >&2; }
started=$SECONDS

step "Python environment (.venv)"
scripts/setup-python.sh

step "PostgreSQL 15"
scripts/start-postgres.sh

step "Node.js 22 and MCP tools from npm"
scripts/setup-node.sh

step "Chromium for the console's browser tests"
scripts/setup-browser.sh

step "Kubernetes control plane and Helm binaries"
scripts/build-tools.sh

echo "setup took $((SECONDS - started))s" >&2
export MCP_TEST_BIN=${MCP_GATEWAY_CACHE:-$HOME/.cache/mcp-gateway}/bin
export MCP_TEST_NODE22_BIN=${MCP_GATEWAY_CACHE:-$HOME/.cache/mcp-gateway}/node22/bin
export MCP_TEST_PG_ADMIN_DSN=${MCP_TEST_PG_ADMIN_DSN:-postgresql://mcp_test:mcp_test@127.0.0.1:5432/postgres}

step "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

step "mypy"
.venv/bin/mypy

step "pytest"
.venv/bin/pytest "$@"
