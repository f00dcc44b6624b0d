"""The README's performance figures come from the recorded benchmark run in bench/README.md.

The README's table is recomputed from the raw `make bench` output recorded under "Latest full
run"; every other figure with a unit in the Performance section must appear, with its unit,
in bench/README.md. A figure rounded, improved or invented in the README fails here.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIGURE = re.compile(
    r"(?<![\w.,])(\d[\d,]*(?:\.\d+)?(?:\s?\u2013\s?\d[\d,]*(?:\.\d+)?)?)\s?(ms|µs|MB|calls/s|CPU-seconds|s|%)(?!\w)"
)
SUM = re.compile(r"(?<![\w.,])((?:\d[\d,]*(?:\.\d+)?\s\+\s)+\d[\d,]*(?:\.\d+)?)\s(ms|µs|MB|s)(?!\w)")
# README table row label -> the target's name in the raw run.
TARGETS = {
    "direct (SDK server)": "direct",
    "adapter → upstream": "adapter",
    "gateway (in-process state) → adapter → upstream": "gateway_memory",
    "gateway (PostgreSQL) → adapter → upstream": "gateway_postgres",
}
# A row labelled "2025-11-25: <path>" is the handshake era's figure of that path (`<target>@2025-11-25`
# in the raw run, bench/overhead.py); such rows are optional, the 2026-07-28 ones required.
ERA_LABEL = re.compile(r"^(\d{4}-\d{2}-\d{2}): (.+)$")


def _target(label: str) -> str | None:
    era = ERA_LABEL.match(label)
    if era is None:
        return TARGETS.get(label)
    path = TARGETS.get(era.group(2))
    return f"{path}@{era.group(1)}" if path else None


def performance_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n## Performance\n", 1)[1].split("\n## ", 1)[0]


def raw_run() -> tuple[dict[tuple[str, int], list[str]], dict[tuple[str, int], list[str]]]:
    """(the per-target table, the 'against direct' table) of the recorded run, keyed by (target, concurrency)."""
    bench = (ROOT / "bench" / "README.md").read_text()
    block = bench.split("\n## Latest full run\n", 1)[1].split("```", 2)[1]
    measured, against = block.split("against direct", 1)
    return _rows(measured), _rows(_first_table(against))


def _first_table(text: str) -> str:
    """The table right after a title: its rows are indented; the next table's title is not."""
    lines = text.strip("\n").splitlines()
    end = next((i for i, line in enumerate(lines) if line.strip() and not line.startswith("  ")), len(lines))
    return "\n".join(lines[:end])


def _rows(text: str) -> dict[tuple[str, int], list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if len(cells) > 2 and cells[1].isdigit():
            rows[(cells[0], int(cells[1]))] = cells[2:]
    return rows


def _round(text: str, places: str = "0.01") -> Decimal:
    """Rounded as a person would (0.215 -> 0.22), not as binary floats do."""
    return Decimal(text).quantize(Decimal(places), ROUND_HALF_UP)


def _normal(figure: str) -> str:
    return figure.replace(",", "").replace(" ", "")


def test_readme_table_is_the_recorded_run() -> None:
    measured, against = raw_run()
    lines = performance_section().splitlines()
    rows = [line for line in lines if line.startswith("| ") and _target(line.split("|")[1].strip().replace("*", ""))]
    seen = set()
    for row in rows:
        label, added, kept, cpu = (cell.strip().replace("*", "") for cell in row.strip("|").split("|"))
        target = _target(label)
        assert target is not None
        seen.add(target)
        assert cpu == f"{_round(measured[(target, 64)][4])} ms", row
        if target.split("@")[0] == "direct":
            p50, _, _, _, _ = measured[(target, 1)]
            assert added.startswith(f"{_round(p50)} ms"), row
            assert kept == f"{_round(measured[(target, 64)][2], '1'):,} calls/s", row
        else:
            assert added == f"+{_round(against[(target, 1)][0])} ms", row
            assert kept == f"{_round(against[(target, 64)][2]) * 100:.0f} %", row
    assert set(TARGETS.values()) <= seen


def test_every_other_figure_is_recorded_in_bench_readme() -> None:
    text = (ROOT / "bench" / "README.md").read_text()
    bench = {(_normal(m.group(1)), m.group(2)) for m in FIGURE.finditer(text)}
    # "1.18 + 0.77 ms": each term of a sum carries the unit written after the last one.
    for chain in SUM.finditer(text):
        bench.update((_normal(n), chain.group(2)) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", chain.group(1)))
    prose = "\n".join(line for line in performance_section().splitlines() if not line.startswith("|"))
    figures = [(_normal(m.group(1)), m.group(2)) for m in FIGURE.finditer(prose)]
    assert len(figures) > 5  # the pattern still finds the README's figures
    missing = [f"{number} {unit}" for number, unit in figures if (number, unit) not in bench]
    assert not missing, f"README figures not in bench/README.md: {missing}"
