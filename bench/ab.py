"""Before/after in one run: another checkout's gateway and adapter beside this one's, taking turns.

    .venv/bin/python -m bench.ab /path/to/before-tree [--store memory|postgres] [--concurrency 1,64]
        [--rounds 5] [--seconds 3] [--think-ms 2]

On a shared machine two separate runs differ by more than most changes do. Here both
stacks (gateway → adapter, each tree's own code) sit behind the same echo upstream, and
each round measures direct, before and after back to back, in alternating order, in both
protocol eras, so drift in machine speed weighs on both. Medians over the rounds: p50,
calls/s, and CPU ms per call of each tree's gateway and adapter (from /proc).
With `--think-ms`, each round also times calls made one at a time with that pause between
them (`loadgen.run_paced`), as an agent makes them: work a server does after answering then
costs the caller nothing, which wrk's back-to-back calls cannot show.
Make the before tree with `git worktree add --detach /tmp/before <commit>`.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from bench import report
from bench.loadgen import LEGACY, MODERN, LoadResult, call_once, open_session, run_paced, run_wrk
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


Load = Callable[[str, dict[str, str]], LoadResult]
"""One point's load on a URL with these headers."""


def _measure(target: Target, headers: dict[str, str], load: Load) -> Sample:
    gateway_before, adapter_before = cpu_seconds(target.gateway_pid), cpu_seconds(target.adapter_pid)
    result = load(target.url, headers)
    calls = max(result.calls, 1)
    return Sample(
        result.p50_ms,
        result.calls_per_s,
        1000 * (cpu_seconds(target.gateway_pid) - gateway_before) / calls,
        1000 * (cpu_seconds(target.adapter_pid) - adapter_before) / calls,
    )


def _points(era: str, concurrency: list[int], seconds: int, think_ms: float) -> list[tuple[str, Load]]:
    """Each point's label and load: wrk at each concurrency, then (with think time) paced calls."""

    def wrk(c: int) -> Load:
        return lambda url, headers: run_wrk(url, headers=headers, concurrency=c, seconds=seconds, era=era)

    points = [(str(c), wrk(c)) for c in concurrency]
    if think_ms > 0:
        think = think_ms / 1000

        def paced(url: str, headers: dict[str, str]) -> LoadResult:
            return run_paced(url, headers=headers, era=era, think_seconds=think)

        points.append((f"1, {think_ms:g} ms think", paced))
    return points


def run(before_tree: str, store: str, concurrency: list[int], rounds: int, seconds: int, think_ms: float = 0) -> str:
    samples: dict[tuple[str, str, str], list[Sample]] = {}
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
            for label, load in _points(era, concurrency, seconds, think_ms):
                for turn in range(rounds):
                    direct = load(f"{upstream}/mcp", direct_headers)
                    samples.setdefault((era, label, "direct"), []).append(Sample(direct.p50_ms, direct.calls_per_s))
                    for name in TREES if turn % 2 == 0 else TREES[::-1]:
                        sample = _measure(targets[name], headers[name], load)
                        samples.setdefault((era, label, name), []).append(sample)
    return _table(samples, store, rounds, seconds)


def _table(samples: dict[tuple[str, str, str], list[Sample]], store: str, rounds: int, seconds: int) -> str:
    rows = []
    for (era, c, name), taken in samples.items():
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
    parser.add_argument("--think-ms", type=float, default=0, help="also time paced calls this far apart (0: off)")
    args = parser.parse_args()
    concurrency = [int(c) for c in args.concurrency.split(",")]
    print(run(args.before, args.store, concurrency, args.rounds, args.seconds, args.think_ms))


if __name__ == "__main__":
    main()
