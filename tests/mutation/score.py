"""Summarise `mutmut results --all true` output: killed/total per module, and the survivors.

Usage: python tests/mutation/score.py results.txt
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

# A mutant counts as killed when a test failed or timed out on it; "no tests" means no
# in-process test reached the code, which is a survivor as much as "survived".
KILLED = {"killed", "timeout"}


def main(path: str) -> None:
    per_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    for line in Path(path).read_text().splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if not sep or "__mutmut_" not in name:
            continue
        module = name.split(".x")[0].split(".x_")[0]
        module = name.rsplit(".", 1)[0] if "." in name else name
        per_module[module][status] += 1
        if status not in KILLED:
            survivors.append(f"{name}: {status}")
    total_killed = total = 0
    print(f"{'module':45} {'killed':>7} {'total':>6} {'score':>6}")
    for module, counts in sorted(per_module.items()):
        killed = sum(counts[s] for s in KILLED)
        count = sum(counts.values())
        total_killed += killed
        total += count
        print(f"{module:45} {killed:7} {count:6} {100 * killed / count:5.0f}%")
    if total:
        print(f"{'all':45} {total_killed:7} {total:6} {100 * total_killed / total:5.0f}%")
    print(f"\n{len(survivors)} survivors:")
    print("\n".join(survivors))


if __name__ == "__main__":
    main(sys.argv[1])
