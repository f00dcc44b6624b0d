#!/usr/bin/env bash
# Mutation testing of the security and correctness core with mutmut (see tests/README.md).
#
# mutmut 3 imports the mutated code from mutants/src (or mutants/), so the packages are staged
# into build/mutation/src beside a copy of the tests, and mutmut runs there. Only in-process
# tests see mutants (a gateway started as a subprocess imports the installed, unmutated
# code), so the tests run are the in-process ones listed in TESTS below.
#
# Usage: scripts/mutation.sh [module ...]   (default: every module in MODULES)
# CPU-heavy: runs under flock /tmp/mcp-heavy.lock with MUTATION_WORKERS workers (default 2) and a
# bounded wall clock (MUTATION_TIMEOUT).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
work="$root/build/mutation"
python="$root/.venv/bin/python"
budget="${MUTATION_TIMEOUT:-2700}"  # seconds for the whole run (well under an hour)
workers="${MUTATION_WORKERS:-2}"
# Hang guard: a mutant that leaves a test waiting forever (a lost wake-up, an unbounded wait) fails
# that test after this many seconds (pytest-timeout) instead of holding a worker until mutmut's own
# wall-clock limit, 15x the tests' recorded time (minutes for the PostgreSQL tests). The slowest
# test takes ~5 s alone; a test's own timeout marker wins over this default.
hang_guard="${MUTATION_TEST_TIMEOUT:-30}"
export MCP_TEST_PG_ADMIN_DSN=${MCP_TEST_PG_ADMIN_DSN:-postgresql://mcp_test:mcp_test@127.0.0.1:5432/postgres}

MODULES=(
  mcp_gateway/policy.py
  mcp_gateway/auth/__init__.py
  mcp_gateway/auth/apikeys.py
  mcp_gateway/auth/oidc.py
  mcp_gateway/auth/secret_keys.py
  mcp_gateway/sessions.py
  mcp_gateway/request_state.py
  mcp_gateway/limits.py
  mcp_gateway/store/admission.py
  mcp_adapter/naming.py
  mcp_adapter/egress.py
)
TESTS=(
  tests/mutation
  tests/gateway/test_constant_time.py
  tests/gateway/test_store_admission.py
  tests/gateway/test_identity_claims.py
  tests/gateway/test_call_limits.py::test_in_memory_store_keys_limits_by_tool_subject_both_or_neither
)
if [ "$#" -gt 0 ]; then MODULES=("$@"); fi
# Only auth/secret_keys.py's Secret watch needs a kube-apiserver (tests/mutation/test_secret_key_watch.py).
# A run that does not mutate it leaves those tests out and starts no control plane; that can only
# lower another module's score (a mutant those tests alone would kill survives), never raise it.
needs_plane=false
for module in "${MODULES[@]}"; do [ "$module" = mcp_gateway/auth/secret_keys.py ] && needs_plane=true; done
ignore=""
$needs_plane || ignore=', "--ignore=tests/mutation/test_secret_key_watch.py"'

"$python" -c "import mutmut" 2>/dev/null || { echo "mutmut missing: .venv/bin/pip install -e '.[mutation]'" >&2; exit 2; }
rm -rf "$work"
mkdir -p "$work/src"
cp -r "$root/gateway/mcp_gateway" "$root/adapter/mcp_adapter" "$root/common/mcp_common" "$work/src/"
cp -r "$root/tests" "$work/tests"
find "$work" -name __pycache__ -prune -exec rm -rf {} +

quote() { printf '"%s", ' "$@"; }
cat > "$work/pyproject.toml" <<TOML
[tool.mutmut]
source_paths = ["src"]
only_mutate = [$(quote "${MODULES[@]/#/src/}")]
pytest_add_cli_args_test_selection = [$(quote "${TESTS[@]}")]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"$ignore]
process_isolation = "fork"

[tool.pytest.ini_options]
timeout = $hang_guard
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
TOML

# The Secret watch's tests need a kube-apiserver; mutmut runs pytest afresh per mutant, so one
# control plane serves the whole run (tests/mutation/conftest.py). Its stdin is a FIFO this script
# holds open: however the script ends, the control plane sees EOF and stops.
export MCP_TEST_BIN=${MCP_TEST_BIN:-$HOME/.cache/mcp-gateway/bin}
if $needs_plane; then
  mkfifo "$work/control-plane.stdin"
  (cd "$root" && exec "$python" -m tests.mutation.control_plane) \
    < "$work/control-plane.stdin" > "$work/control-plane.out" 2> "$work/control-plane.log" &
  plane_pid=$!
  exec 3> "$work/control-plane.stdin"
  trap 'exec 3>&-; wait "$plane_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 240); do [ -s "$work/control-plane.out" ] || ! kill -0 "$plane_pid" 2>/dev/null && break; sleep 0.5; done
  [ -s "$work/control-plane.out" ] || { echo "control plane did not start: $work/control-plane.log" >&2; exit 2; }
  MCP_MUTATION_KUBECONFIG="$(head -1 "$work/control-plane.out")"
  export MCP_MUTATION_KUBECONFIG
fi

cd "$work"
status=0
echo "mutmut: ${#MODULES[@]} modules, log in $work/run.log"
flock /tmp/mcp-heavy.lock timeout "$budget" "$python" -m mutmut run --max-children "$workers" > run.log 2>&1 || status=$?
[ "$status" -eq 124 ] && echo "stopped after ${budget}s (MUTATION_TIMEOUT): the scores cover the mutants run so far"
"$python" -m mutmut results --all true > results.txt 2>&1 || true
"$python" "$root/tests/mutation/score.py" results.txt "$root/tests/mutation/equivalents.txt"
exit "$status"
