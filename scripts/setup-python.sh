#!/usr/bin/env bash
# Creates .venv and installs the project with its test extras; reinstalls only
# when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
[[ -f $stamp ]] && exit 0
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test,demo]"
rm -f .venv/.installed-*
touch "$stamp"
