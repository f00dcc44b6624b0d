#!/usr/bin/env bash
# Re-resolves the dependency locks from pyproject.toml (run after changing dependencies, or to
# take newer versions): requirements/dev.txt (the project with its test and demo extras: what
# `make run` and `make test` install) and requirements/runtime.txt (what the images install),
# every file pinned by hash. runtime.txt is resolved within dev.txt, so both agree.
# Resolved for Python 3.11 (the images' and CI's version); pip-tools lives in its own venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP_TOOLS_VERSION=7.6.2
tools=${XDG_CACHE_HOME:-$HOME/.cache}/mcp-gateway/pip-tools-$PIP_TOOLS_VERSION
if [[ ! -x $tools/bin/pip-compile ]]; then
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install -q "pip-tools==$PIP_TOOLS_VERSION"
fi
# --upgrade: take the newest versions pyproject.toml allows (default: keep what the locks pin).
common=(--quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links)
"$tools/bin/pip-compile" "${common[@]}" "$@" --extra test --extra demo -o requirements/dev.txt pyproject.toml
"$tools/bin/pip-compile" "${common[@]}" "$@" -c requirements/dev.txt -o requirements/runtime.txt pyproject.toml
echo "updated requirements/dev.txt and requirements/runtime.txt"
