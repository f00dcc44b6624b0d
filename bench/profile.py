"""Profile one component of the `tools/call` hot path under load with py-spy.

    .venv/bin/python -m bench.profile [gateway|gateway-postgres|adapter] [--seconds 10] [--concurrency 16]
        [--era 2025-11-25]

Starts echo upstream -> adapter -> gateway (API key, policy, limits on), drives
the chosen component with wrk and samples it with py-spy (`pip install -e
.[bench]`). Prints the functions with the most inclusive and self samples and
keeps the collapsed stacks (flamegraph input) under bench/results/.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import threading
from pathlib import Path

from bench.loadgen import LEGACY, MODERN, open_session, run_wrk
from bench.overhead import echo_adapter_config, limited_routing
from bench.stack import Stack, ThrowawayDatabase

RESULTS = Path(__file__).resolve().parent / "results"


def _summarise(collapsed: Path, top: int) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=["gateway", "gateway-postgres", "adapter"], nargs="?", default="gateway")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--era", choices=[MODERN, LEGACY], default=MODERN, help="2025-11-25: calls in one session")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(__file__).resolve().parents[1] / ".venv/bin/py-spy")
    RESULTS.mkdir(exist_ok=True)
    collapsed = RESULTS / f"profile-{args.target}-{args.era}.txt"
    with Stack("profile") as stack, ThrowawayDatabase() as db:
        echo_base, _ = stack.python_module("echo", "bench.echo_server", ready_path="/mcp")
        adapter_url, adapter_pid = stack.adapter("echo", echo_adapter_config(f"{echo_base}/mcp"))
        url, pid, headers = adapter_url, adapter_pid, None
        if args.target != "adapter":
            gateway = stack.gateway("gw", limited_routing(adapter_url), db.dsn if "postgres" in args.target else None)
            url, pid = gateway.url("bench"), gateway.pid
            headers = {"Authorization": f"Bearer {gateway.mint_key('bench', ['bench'])}"}
        if args.era == LEGACY:
            headers = open_session(url, headers)
        run_wrk(url, headers=headers, concurrency=args.concurrency, seconds=1, era=args.era)
        load = threading.Thread(
            target=run_wrk,
            args=(url,),
            kwargs={"headers": headers, "concurrency": args.concurrency, "seconds": args.seconds + 2, "era": args.era},
        )
        load.start()
        cmd = [py_spy, "record", "-p", str(pid), "-d", str(args.seconds), "-r", "200", "-f", "raw"]
        cmd += ["-o", str(collapsed)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=args.seconds + 60)
        load.join()
    print(_summarise(collapsed, args.top))
    print(f"\ncollapsed stacks: {collapsed}")


if __name__ == "__main__":
    main()
