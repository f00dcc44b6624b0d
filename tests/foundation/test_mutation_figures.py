"""tests/README.md's mutation score table repeats recorded runs: each module's row must equal the
latest figures tests/mutation/runs.txt records for it (score.py's output of a real run), and the
"all" row must be the sum of the module rows. A figure edited by hand, or a module whose recorded
run is missing, fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# score.py's row: module, killed, total, score, equivalent, not run.
RUN_ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)%\s+(\d+)\s+(\d+)$")
TABLE_ROW = re.compile(r"^\| `?([\w.]+)`? \| (\d+) \| (\d+) \| (\d+)% \| (\d+) \| (\d+) \|")

Figures = tuple[int, int, int, int, int]  # killed, mutants, score, equivalent, not run


def recorded() -> dict[str, Figures]:
    """Each module's figures in the latest run that covered it (later sections win)."""
    latest: dict[str, Figures] = {}
    for line in (ROOT / "tests/mutation/runs.txt").read_text().splitlines():
        row = RUN_ROW.match(line.strip())
        if row and row.group(1) != "all":
            latest[row.group(1)] = tuple(int(n) for n in row.groups()[1:])  # type: ignore[assignment]
    return latest


def table() -> dict[str, Figures]:
    readme = (ROOT / "tests/README.md").read_text()
    section = readme.split("## Mutation testing", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for line in section.splitlines():
        row = TABLE_ROW.match(line)
        if row:
            rows[row.group(1)] = tuple(int(n) for n in row.groups()[1:])
    return rows  # type: ignore[return-value]


def test_the_score_table_repeats_the_recorded_runs() -> None:
    runs, rows = recorded(), table()
    overall = rows.pop("all")
    assert rows, "no score table in tests/README.md's mutation section"
    for module, figures in rows.items():
        assert module in runs, f"{module}: no recorded run in tests/mutation/runs.txt"
        assert figures == runs[module], f"{module}: README {figures}, latest recorded run {runs[module]}"
        killed, mutants, score = figures[:3]
        assert score == int(f"{100 * killed / mutants:.0f}"), module  # as score.py prints it
    killed, mutants = sum(f[0] for f in rows.values()), sum(f[1] for f in rows.values())
    sums = (killed, mutants, int(f"{100 * killed / mutants:.0f}"), *(sum(f[i] for f in rows.values()) for i in (3, 4)))
    assert overall == sums
