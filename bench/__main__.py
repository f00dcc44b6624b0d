"""`make bench` / `python -m bench [--only SECTION,...] [--skip-operator]`.

Runs each section with its own processes on loopback, prints a table per
section and writes everything, with the machine, to bench/results/latest.json.
A section that fails is reported and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import machine, report

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = (
    "overhead",
    "aggregation",
    "sessions",
    "auth",
    "policy",
    "token_exchange",
    "discovery",
    "tracing",
    "operator",
)


def _operator(count: int) -> dict[str, Any]:
    if not (Path(__file__).parent / "operator_scale.py").exists():
        return {"skipped": "bench/operator_scale.py is not there"}
    bin_dir = Path(os.environ.get("MCP_TEST_BIN", Path.home() / ".cache/mcp-gateway/bin"))
    if not (bin_dir / "kube-apiserver").exists():
        return {"skipped": f"kube binaries missing in {bin_dir} (make tools)"}
    from bench import operator_scale

    result: dict[str, Any] = operator_scale.run(count, timeout=300)
    return result


def _runner(name: str, args: argparse.Namespace) -> Callable[[], dict[str, Any]]:
    if name == "overhead":
        from bench import overhead

        return lambda: overhead.run(args.seconds, args.repeat)
    if name == "aggregation":
        from bench import aggregation

        return aggregation.run
    if name == "sessions":
        from bench import sessions

        return sessions.run
    if name == "auth":
        from bench import auth

        return lambda: auth.run(args.seconds)
    if name == "tracing":
        from bench import tracing

        return lambda: tracing.run(args.seconds, args.repeat)
    if name == "policy":
        from bench import policy

        return lambda: policy.run(args.seconds, args.repeat)
    if name == "token_exchange":
        from bench import token_exchange

        return lambda: token_exchange.run(args.seconds, args.repeat)
    if name == "discovery":
        from bench import discovery_search

        return discovery_search.run
    return lambda: _operator(args.operator_count)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    parser.add_argument("--skip-operator", action="store_true", help="skip the operator section (needs kube binaries)")
    parser.add_argument("--seconds", type=int, default=4, help="wrk duration per load point")
    parser.add_argument("--repeat", type=int, default=3, help="runs per load point (the median is reported)")
    parser.add_argument("--operator-count", type=int, default=200, help="Upstreams and Profiles to create")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    if args.skip_operator and "operator" in chosen:
        chosen.remove("operator")

    info = machine.describe()
    print(report.machine(info), flush=True)
    results: dict[str, Any] = {"machine": info, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    failed = False
    for name in chosen:
        began = time.monotonic()
        print(f"\n== {name} ...", flush=True)
        try:
            data = _runner(name, args)()
        except Exception as exc:
            traceback.print_exc()
            data = {"failed": f"{type(exc).__name__}: {exc}"[:2000]}
            failed = True
        data["section_seconds"] = round(time.monotonic() - began, 1)
        results[name] = data
        if "failed" in data:
            print(f"  {name} failed: {data['failed']}", flush=True)
        else:
            print(report.SECTIONS[name]({k: v for k, v in data.items() if k != "section_seconds"}), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")  # after each section: partial runs keep figures
    print(f"\nwrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
