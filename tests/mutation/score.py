"""Summarise `mutmut results --all true` output: killed/total per module, and the survivors.

Usage: python tests/mutation/score.py results.txt [equivalents.txt]

equivalents.txt (reviewed, in the repo) lists mutants that no test can kill because they do not
change behaviour, one per line: `<mutant name>  # why`. They are left out of the score (and
counted in their own column); one that a test now kills is reported as stale, so the list
cannot hide a real survivor for long.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

# A mutant counts as killed when a test failed or timed out on it; "no tests" means no
# in-process test reached the code, which is a survivor as much as "survived".
KILLED = {"killed", "timeout"}
# Not reached before the run's time budget ran out (MUTATION_TIMEOUT): counted as a survivor too.
NOT_RUN = "not checked"


def read_equivalents(path: str | None) -> dict[str, str]:
    """Mutant name -> reason; every entry must give one."""
    equivalents: dict[str, str] = {}
    if path is None or not Path(path).exists():
        return equivalents
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, reason = line.partition("#")
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: an equivalent mutant needs its reason after '#'")
        equivalents[name.strip()] = reason.strip()
    return equivalents


def main(path: str, equivalents_path: str | None = None) -> None:
    equivalents = read_equivalents(equivalents_path)
    per_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    stale: list[str] = []
    for line in Path(path).read_text().splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if not sep or "__mutmut_" not in name:
            continue
        module = name.rsplit(".", 1)[0]
        if name in equivalents:
            per_module[module]["equivalent"] += 1
            if status in KILLED:
                stale.append(name)
            continue
        per_module[module][status] += 1
        if status not in KILLED:
            survivors.append(f"{name}: {status}")
    total_killed = total = total_equivalent = total_unrun = 0
    print(f"{'module':45} {'killed':>7} {'total':>6} {'score':>6} {'equivalent':>11} {'not run':>8}")
    for module, counts in sorted(per_module.items()):
        killed = sum(counts[s] for s in KILLED)
        equivalent = counts["equivalent"]
        unrun = counts[NOT_RUN]
        count = sum(counts.values()) - equivalent
        total_killed += killed
        total += count
        total_equivalent += equivalent
        total_unrun += unrun
        score = 100 * killed / count if count else 100.0
        print(f"{module:45} {killed:7} {count:6} {score:5.0f}% {equivalent:11} {unrun:8}")
    if total:
        score = 100 * total_killed / total
        print(f"{'all':45} {total_killed:7} {total:6} {score:5.0f}% {total_equivalent:11} {total_unrun:8}")
    if stale:
        print(f"\n{len(stale)} mutants listed as equivalent are killed now (remove them from the list):")
        print("\n".join(stale))
    print(f"\n{len(survivors)} survivors:")
    print("\n".join(survivors))


if __name__ == "__main__":
    main(*sys.argv[1:3])
