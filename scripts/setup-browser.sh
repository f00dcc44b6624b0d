#!/usr/bin/env bash
# Headless Chromium for the console's browser tests.
#
# Installs Debian's `chromium` package when it is missing (a fast no-op when it
# is there) and Playwright's Python package into .venv. Playwright drives
# /usr/bin/chromium through `executable_path`; `playwright install` is never run
# because browser downloads are impossible here.
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM=${MCP_TEST_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
  echo "installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
"$CHROMIUM" --version >&2

PY=.venv/bin/python
if ! "$PY" -c "import playwright, jinja2" 2>/dev/null; then
  echo "installing playwright and jinja2 into .venv" >&2
  "$PY" -m pip install -q "playwright>=1.45" "jinja2>=3.1"
fi
