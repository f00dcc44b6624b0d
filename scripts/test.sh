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

step "Container tools (podman, containerd, runc, CNI plugins, iptables) for the images and the pod tests' node"
scripts/setup-containers.sh

# The Go builds take minutes on a fresh machine (seconds when cached): run them in the
# background, at low priority, while the tests that need none of them run first.
step "Go-built tools (kube-apiserver, etcd, helm, kubelet, ...) and the images: building in the background"
mkdir -p tests/artifacts
export MCP_TEST_BUILD_STATUS=$PWD/tests/artifacts/build-tools.status
rm -f "$MCP_TEST_BUILD_STATUS"
# setsid: its own process group, so an early exit stops the whole build, compilers too.
setsid bash -c 'nice -n 10 scripts/build-tools.sh >"${1%.status}.log" 2>&1; echo $? >"$1"' _ "$MCP_TEST_BUILD_STATUS" &
builder=$!
trap 'kill -- -$builder 2>/dev/null || true' EXIT

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
status=0
.venv/bin/pytest "$@" || status=$?
if [[ -f $MCP_TEST_BUILD_STATUS && $(cat "$MCP_TEST_BUILD_STATUS") != 0 ]]; then
  echo "the background tool build failed; its log:" >&2
  tail -n 40 "${MCP_TEST_BUILD_STATUS%.status}.log" >&2
  status=1
fi
exit $status
