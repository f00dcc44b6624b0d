"""Before/after in one run: another checkout's gateway and adapter beside this one's, taking turns.

    .venv/bin/python -m bench.ab /path/to/before-tree [--store memory|postgres] [--concurrency 1,64]
        [--rounds 5] [--seconds 3]

On a shared machine two separate runs differ by more than most changes do. Here both
stacks (gateway → adapter, each tree's own code) sit behind the same echo upstream, and
each round measures direct, before and after back to back, in alternating order, in both
protocol eras, so drift in machine speed weighs on both. Medians over the rounds: p50,
calls/s, and CPU ms per call of each tree's gateway and adapter (from /proc).
Make the before tree with `git worktree add --detach /tmp/before <commit>`.
"""

from __future__ import annotations

import argparse
import statistics
from contextlib import ExitStack
from dataclasses import dataclass

from bench import report
from bench.loadgen import LEGACY, MODERN, call_once, open_session, run_wrk
from bench.overhead import echo_adapter_config, limited_routing
from bench.stack import Stack, ThrowawayDatabase, code_path, cpu_seconds

TREES = ("before", "after")


@dataclass
class Target:
    url: str
    key: dict[str, str]
    gateway_pid: int
    adapter_pid: int


@dataclass
class Sample:
    p50_ms: float
    calls_per_s: float
    gateway_cpu_ms: float = 0.0
    adapter_cpu_ms: float = 0.0


def _start(stack: Stack, name: str, tree: str | None, upstream: str, dsn: str | None) -> Target:
    env = {"PYTHONPATH": code_path(tree)}
    adapter_url, adapter_pid = stack.adapter(name, echo_adapter_config(upstream), env=env)
    gateway = stack.gateway(name, limited_routing(adapter_url), dsn=dsn, env=env)
    key = {"Authorization": f"Bearer {gateway.mint_key('bench', ['bench'])}"}
    return Target(gateway.url("bench"), key, gateway.pid, adapter_pid)


def _measure(target: Target, headers: dict[str, str], concurrency: int, seconds: int, era: str) -> Sample:
    gateway_before, adapter_before = cpu_seconds(target.gateway_pid), cpu_seconds(target.adapter_pid)
    result = run_wrk(target.url, headers=headers, concurrency=concurrency, seconds=seconds, era=era)
    calls = max(result.calls, 1)
    return Sample(
        result.p50_ms,
        result.calls_per_s,
        1000 * (cpu_seconds(target.gateway_pid) - gateway_before) / calls,
        1000 * (cpu_seconds(target.adapter_pid) - adapter_before) / calls,
    )


def run(before_tree: str, store: str, concurrency: list[int], rounds: int, seconds: int) -> str:
    samples: dict[tuple[str, int, str], list[Sample]] = {}
    with Stack("ab") as stack, ExitStack() as databases:
        upstream, _ = stack.python_module("echo", "bench.echo_server", ready_path="/mcp")
        targets = {}
        for name, tree in zip(TREES, (before_tree, None), strict=True):
            dsn = databases.enter_context(ThrowawayDatabase()).dsn if store == "postgres" else None
            targets[name] = _start(stack, name, tree, f"{upstream}/mcp", dsn)
        for era in (LEGACY, MODERN):
            direct_headers = open_session(f"{upstream}/mcp") if era == LEGACY else {}
            headers = {}
            for name, target in targets.items():
                headers[name] = open_session(target.url, target.key) if era == LEGACY else target.key
                call_once(target.url, headers=headers[name], era=era)
                run_wrk(target.url, headers=headers[name], concurrency=16, seconds=1, era=era)  # warm pools
            for c in concurrency:
                for turn in range(rounds):
                    direct = run_wrk(f"{upstream}/mcp", headers=direct_headers, concurrency=c, seconds=seconds, era=era)
                    samples.setdefault((era, c, "direct"), []).append(Sample(direct.p50_ms, direct.calls_per_s))
                    for name in TREES if turn % 2 == 0 else TREES[::-1]:
                        sample = _measure(targets[name], headers[name], c, seconds, era)
                        samples.setdefault((era, c, name), []).append(sample)
    return _table(samples, store, rounds, seconds)


def _table(samples: dict[tuple[str, int, str], list[Sample]], store: str, rounds: int, seconds: int) -> str:
    rows = []
    for (era, c, name), taken in sorted(samples.items()):
        p50 = statistics.median(s.p50_ms for s in taken)
        rate = statistics.median(s.calls_per_s for s in taken)
        direct = samples[(era, c, "direct")]
        direct_p50 = statistics.median(s.p50_ms for s in direct)
        direct_rate = statistics.median(s.calls_per_s for s in direct)
        added = "" if name == "direct" else f"{p50 - direct_p50:+.2f}"
        kept = "" if name == "direct" else f"{100 * rate / direct_rate:.0f} %"
        gateway = "" if name == "direct" else f"{statistics.median(s.gateway_cpu_ms for s in taken):.3f}"
        adapter = "" if name == "direct" else f"{statistics.median(s.adapter_cpu_ms for s in taken):.3f}"
        rows.append([era, c, name, f"{p50:.2f}", added, f"{rate:.1f}", kept, gateway, adapter])
    header = ["era", "conc", "tree", "p50 ms", "added ms", "calls/s", "kept", "gateway CPU ms", "adapter CPU ms"]
    title = f"before/after, {store} state, {seconds} s per point, median of {rounds} alternating rounds"
    return report._table(title, header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="another checkout of this repository (the 'before' code)")
    parser.add_argument("--store", choices=("memory", "postgres"), default="memory")
    parser.add_argument("--concurrency", default="1,64", help="comma-separated wrk connection counts")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args()
    concurrency = [int(c) for c in args.concurrency.split(",")]
    print(run(args.before, args.store, concurrency, args.rounds, args.seconds))


if __name__ == "__main__":
    main()
