"""Print benchmark results as plain-text tables."""

from __future__ import annotations

from typing import Any


def _table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [f"\n{title}"]
    for n, row in enumerate(cells):
        padded = [c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  " + "  ".join(padded))
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine(info: dict[str, Any]) -> str:
    return (
        f"machine: {info['cores']} cores, {info['cpu']}, {info['memory_gb']} GB RAM, "
        f"Python {info['python']}, {info['platform']}"
    )


def overhead(data: dict[str, Any]) -> str:
    rows = []
    for target, points in data["targets"].items():
        for p in points:
            rows.append([target, p["concurrency"], p["p50_ms"], p["p99_ms"], p["calls_per_s"], p["errors"], _cpu(p)])
    out = _table(
        f"tools/call echo ({data['seconds_per_point']} s per point, median of {data['repeat']})",
        ["target", "conc", "p50 ms", "p99 ms", "calls/s", "errors", "CPU ms/call (upstream + adapter + gateway)"],
        rows,
    )
    ratio_rows = []
    for target, points in data["ratios_vs_direct"].items():
        for p in points:
            ratio_rows.append([target, p["concurrency"], p["added_p50_ms"], p["p50_ratio"], p["throughput_ratio"]])
    out += _table("against direct", ["target", "conc", "added p50 ms", "p50 x", "throughput x"], ratio_rows)
    out += _connections(data["targets"])
    out += _eras(data)
    rss = data["rss_mb_after_load"]
    out += "\n  RSS after load (MB): " + ", ".join(f"{k} {v}" for k, v in rss.items())
    return out


def _cpu(point: dict[str, Any]) -> str:
    cpu = point.get("cpu_ms_per_call", {})
    split = " + ".join(f"{v:.2f}" for v in cpu.values())
    return f"{sum(cpu.values()):.2f} ({split})" if len(cpu) > 1 else split


def _hops(point: dict[str, Any]) -> str:
    opened = point.get("new_connections_per_1000_calls", {})
    return ", ".join(f"{hop} {n}" for hop, n in opened.items()) or "-"


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.0%}"


def _connections(targets: dict[str, list[dict[str, Any]]]) -> str:
    rows = [
        [target, p["concurrency"], _hops(p)]
        for target, points in targets.items()
        for p in points
        if p.get("new_connections_per_1000_calls")
    ]
    return _table("new connections per 1,000 calls, each hop behind the front", ["target", "conc", "hops"], rows)


def _eras(data: dict[str, Any]) -> str:
    """Issue 15's figures, both eras side by side per path: added p50 at c=1, throughput kept at c=64,
    CPU per call per process at c=1 and c=64, new connections per 1,000 calls at c=64."""
    targets, ratios = data["targets"], data["ratios_vs_direct"]
    by_path: dict[str, list[str]] = {}
    for target in ratios:
        by_path.setdefault(target.split("@", 1)[0], []).append(target)
    rows = []
    for path, names in by_path.items():
        for target in names:
            era = target.split("@", 1)[1] if "@" in target else "2026-07-28"
            points = {p["concurrency"]: p for p in targets[target]}
            kept = {p["concurrency"]: _percent(p["throughput_ratio"]) for p in ratios[target]}
            added = next(p["added_p50_ms"] for p in ratios[target] if p["concurrency"] == 1)
            last = max(points)
            rows.append(
                [
                    path,
                    era,
                    f"{added:+.2f}",
                    points[1]["p99_ms"],
                    f"{kept.get(16, '-')} / {kept[last]}",
                    _cpu(points[1]),
                    _cpu(points[last]),
                    _hops(points[last]),
                ]
            )
    header = [
        "path",
        "era",
        "added p50 ms c=1",
        "p99 ms c=1",
        "kept c=16 / c=64",
        "CPU ms/call c=1 (upstream + adapter + gateway)",
        "CPU ms/call c=64",
        "new connections / 1,000 calls c=64",
    ]
    return _table("both eras side by side (issue 15)", header, rows)


def aggregation(data: dict[str, Any]) -> str:
    rows = []
    for name in ("reference_one_upstream_direct", "many_10x100", "openapi_500_adapter_direct", "openapi_500"):
        d = data[name]
        rss = d.get("gateway_rss_mb_after", d.get("adapter_rss_mb", ""))
        rows.append([name, d["tools"], d["first_list_ms"], d["p50_ms"], d["p99_ms"], rss])
    out = _table("tools/list (all pages)", ["profile", "tools", "first ms", "p50 ms", "p99 ms", "RSS MB after"], rows)
    calls = data["many_10x100_tools_call"]
    out += f"\n  tools/call on the 10x100 profile: p50 {calls['p50_ms']} ms, p99 {calls['p99_ms']} ms"
    return out + f"\n  gateway idle RSS: {data['gateway_idle_rss_mb']} MB"


def sessions(data: dict[str, Any]) -> str:
    rows = [
        [
            name,
            d["sessions"],
            d["rss_before_mb"],
            d["rss_after_mb"],
            d["rss_per_1000_sessions_mb"],
            d["initialize"]["p50_ms"],
            d["initialize"]["p99_ms"],
        ]
        for name, d in data.items()
    ]
    header = ["server", "sessions", "RSS before", "RSS after", "MB / 1000", "init p50 ms", "init p99 ms"]
    return _table("idle handshake-era sessions", header, rows)


def auth(data: dict[str, Any]) -> str:
    rows = []
    for mode, points in data["end_to_end"].items():
        for p in points:
            rows.append([mode, p["concurrency"], p["p50_ms"], p["p99_ms"], p["calls_per_s"], p["errors"]])
    header = ["auth", "conc", "p50 ms", "p99 ms", "calls/s", "err"]
    out = _table("auth modes, tools/call through the gateway", header, rows)
    added = [
        [m, a["added_p50_ms_c1"], a["added_ms_per_call_c16"], a["added_gateway_cpu_ms_per_call_c16"]]
        for m, a in data["added"].items()
    ]
    header = ["auth", "p50 ms (c=1)", "ms per call (c=16)", "gateway CPU ms/call (c=16)"]
    out += _table("added over auth none", header, added)
    ip = data["in_process"]
    key_us, jwt_us = ip["apiKey_us_per_verification"], ip["oidc_us_per_verification"]
    return out + f"\n  in process, per verification: API key {key_us} us, JWT (RS256) {jwt_us} us"


def policy(data: dict[str, Any]) -> str:
    rows = [
        [
            pid,
            p["concurrency"],
            p["p50_ms"],
            p["p99_ms"],
            p["calls_per_s"],
            p["errors"],
            p["cpu_ms_per_call"]["gateway"],
        ]
        for pid, points in data["end_to_end"].items()
        for p in points
    ]
    header = ["profile", "conc", "p50 ms", "p99 ms", "calls/s", "err", "gateway CPU ms/call"]
    turns = data.get("turns", 1)
    out = _table(f"tools/call without and with a 20-rule CEL policy (medians of {turns} turns)", header, rows)
    a = data["added"]
    cpu_c1 = a.get("added_gateway_cpu_ms_per_call_c1")
    out += (
        f"\n  added by the rules: p50 {a['added_p50_ms_c1']} ms (c=1), {a['added_ms_per_call_c16']} ms per call "
        f"(c=16), gateway CPU {cpu_c1} ms per call (c=1), {a['added_gateway_cpu_ms_per_call_c16']} ms (c=16)"
    )
    ip = data["in_process"]
    return out + (
        f"\n  in process, decide() per tools/call ({ip['rules']} rules): steady p50 {ip['steady']['p50_us']} us "
        f"(p99 {ip['steady']['p99_us']}), every rule evaluated p50 {ip['every_rule']['p50_us']} us "
        f"(p99 {ip['every_rule']['p99_us']}), no rules {ip['no_rules_us']} us"
    )


def gateway_cpu(point: dict[str, Any]) -> Any:
    return point["cpu_ms_per_call"]["gateway"]


def token_exchange(data: dict[str, Any]) -> str:
    rows = [
        [pid, p["concurrency"], p["p50_ms"], p["p99_ms"], p["calls_per_s"], p["errors"], gateway_cpu(p)]
        for pid, points in data["end_to_end"].items()
        for p in points
    ]
    header = ["profile", "conc", "p50 ms", "p99 ms", "calls/s", "err", "gateway CPU ms/call"]
    out = _table("tools/call without and with a cached token exchange (OIDC caller)", header, rows)
    a, ip = data["added"], data["in_process"]["cached_call"]
    return out + (
        f"\n  added by the exchange: p50 {a['added_p50_ms_c1']} ms (c=1), {a['added_ms_per_call_c16']} ms per call "
        f"(c=16), gateway CPU {a['added_gateway_cpu_ms_per_call_c16']} ms per call; "
        f"{data['exchanges']} exchange(s) at the token endpoint for the whole run"
        f"\n  in process, a cached exchange per call: p50 {ip['p50_us']} us (p99 {ip['p99_us']})"
    )


def operator(data: dict[str, Any]) -> str:
    if "skipped" in data:
        return f"\noperator at scale: skipped ({data['skipped']})"
    rows = [[k, v] for k, v in data.items()]
    return _table("operator at scale", ["measure", "value"], rows)


def discovery(data: dict[str, Any]) -> str:
    catalog = data["catalog"]
    rows: list[list[Any]] = []
    for r in data["rankings"]:
        rows += [
            [r["ranking"], q["tools"], q["requests"], f"{q['top1']:.1%}", f"{q['top5']:.1%}"] for q in r["quality"]
        ]
        rows += [
            [r["ranking"], f"{catalog['tools']} ({h['set']})", h["requests"], f"{h['top1']:.1%}", f"{h['top5']:.1%}"]
            for h in r["heldout"]
        ]
    quality = _table(
        f"discovery: search_tools hit rate ({catalog['tools']} real tools, {catalog['requests']} tuned requests)",
        ["ranking", "catalog tools", "requests", "top-1", "top-5"],
        rows,
    )
    if data["semantic_missing"]:
        quality += f"\n  semantic ranking not measured: {data['semantic_missing']}"
    lat_rows = []
    for r in data["rankings"]:
        for key, what in (("latency", ""), ("latency_cached", ", query vector cached")):
            if key not in r:
                continue
            for clock in ("wall", "cpu"):
                t = r[key][f"{clock}_ms"]
                label = f"{r['ranking']} search at 1000 tools{what}, {clock} (ms)"
                lat_rows.append([label, t["p50"], t["p95"], t["p99"]])
    lat_rows.append(["call_tool added work (us, median)", data["call_tool_added_us"], "", ""])
    latency = _table(
        f"discovery: latency (load average {data['load_average']})", ["what", "p50", "p95", "p99"], lat_rows
    )
    for r in data["rankings"]:
        if "memory" in r:
            memory, build = r["memory"], r["build_s"]
            latency += (
                f"\n  semantic: model load {memory['model_load_s']} s, first build of {build['tools']} tools'"
                f" vectors {build['first_build_s']} s, resident memory added {memory['rss_added_mb']} MB"
            )
        if "runners" in r:
            run = r["runners"]
            latency += (
                f"\n  model runners, CPU ms per query embedding (median, in turns): {run['loaded']}"
                f" {run['loaded_cpu_ms']}, float32 NumPy {run['numpy_cpu_ms']}; lowest cosine between"
                f" their vectors {run['min_cosine']}"
            )
    e2e = data["end_to_end"]
    latency += (
        f"\n  through a gateway ({e2e['calls']} calls each, interleaved): tools/call echo p50"
        f" {e2e['direct_p50_ms']} ms, call_tool echo p50 {e2e['call_tool_p50_ms']} ms, added {e2e['added_ms']} ms"
    )
    tokens = _table(
        f"discovery: tokens of tools/list ({data['tokenizer']})",
        ["tools", "discovery off", "search", "saved"],
        [[t["tools"], t["off"], t["search"], f"{t['saved']:.2%}"] for t in data["tokens"]],
    )
    note = f"\n  one search_tools answer (10 hits) adds about {data['search_answer_tokens']} tokens"
    return quality + latency + tokens + note


def tracing(data: dict[str, Any]) -> str:
    rows = []
    for mode, points in data["targets"].items():
        for p in points:
            cpu = p["cpu_ms_per_call"]
            rows.append(
                [
                    f"tracing {mode}",
                    p["concurrency"],
                    p["p50_ms"],
                    p["p99_ms"],
                    p["calls_per_s"],
                    p["errors"],
                    f"{cpu['adapter']:.3f}",
                    f"{cpu['gateway']:.3f}",
                ]
            )
    out = _table(
        f"gateway -> adapter -> echo, tracing off vs on ({data['seconds_per_point']} s per point, "
        f"median of {data['repeat']})",
        ["target", "conc", "p50 ms", "p99 ms", "calls/s", "errors", "adapter CPU ms/call", "gateway CPU ms/call"],
        rows,
    )
    added = [
        [
            p["concurrency"],
            p["added_p50_ms"],
            p["added_cpu_ms_per_call"]["adapter"],
            p["added_cpu_ms_per_call"]["gateway"],
        ]
        for p in data["added_by_tracing"]
    ]
    out += _table("added by tracing (on - off)", ["conc", "p50 ms", "adapter CPU ms", "gateway CPU ms"], added)
    work = data.get("span_work", {})
    if work:
        # The figure side by side: what tracing adds to a call's p50 when on (100 % sampling) and off.
        # Off has no stack without the code to compare with: its figure is the off helpers' own time on the
        # request path (the `enabled()` checks and shared no-op context managers), timed in isolation.
        side = [
            [
                p["concurrency"],
                f"{p['added_p50_ms']:+.3f}",
                f"{work['on']['request_path_us_per_call'] / 1000:.3f}",
                f"{work['off']['request_path_us_per_call'] / 1000:.4f}",
            ]
            for p in data["added_by_tracing"]
        ]
        out += _table(
            "added p50 per call, tracing on vs off (target: under 0.15 ms on, 0 off)",
            ["conc", "on: stacks on - off ms", "on: span work ms", "off: span work ms"],
            side,
        )
        rows = [
            [mode, w["spans_per_call"], w["request_path_us_per_call"], w["exporter_us_per_call"]]
            for mode, w in work.items()
        ]
        out += _table(
            "span work of one tool call in isolation (CPU us per call; 5 gateway + 2 adapter spans)",
            ["tracing", "spans", "request path us", "exporter thread us"],
            rows,
        )
    return out + f"\n  spans received: {data['spans']}"


SECTIONS = {
    "overhead": overhead,
    "aggregation": aggregation,
    "sessions": sessions,
    "auth": auth,
    "policy": policy,
    "token_exchange": token_exchange,
    "operator": operator,
    "discovery": discovery,
    "tracing": tracing,
}
