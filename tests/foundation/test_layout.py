"""The operator's package never shadows the stdlib `operator` module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_stdlib_operator_is_not_shadowed_from_the_repo_root() -> None:
    code = "import operator, mcp_operator; print(operator.__file__); print(operator.itemgetter(1)([0, 7]))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    stdlib_path, value = out.split()
    assert Path(stdlib_path).parent == Path(subprocess.__file__).parent
    assert value == "7"
