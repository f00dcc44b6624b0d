"""One trace, as Jaeger's query API returns it (`GET /api/traces/{id}`), drawn as a timeline page.

The Jaeger all-in-one the tests build from Go modules has no UI assets (they are built with npm
from another repository and are not published as a package), so the docs' trace picture is this
page, screenshotted by scripts/trace_screenshot.py in headless Chromium. It shows what Jaeger
stored: each span's service, name, kind, start, duration, parent (indentation), status and the
MCP attributes; every text is HTML-escaped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

SHOWN_TAGS = (
    "mcp.method.name",
    "gen_ai.tool.name",
    "mcp.gateway.tenant",
    "mcp.gateway.profile",
    "mcp.gateway.upstream",
    "mcp.gateway.refusal",
    "http.response.status_code",
)
COLOURS = {"mcp-gateway": "#3b7dd8", "mcp-adapter": "#2f9e6e"}
OTHER_COLOUR = "#8a6fd1"


@dataclass(frozen=True)
class Row:
    depth: int
    service: str
    name: str
    kind: str
    start_us: int  # from the trace's first span
    duration_us: int
    error: bool
    tags: tuple[tuple[str, str], ...]


def rows(answer: dict[str, Any]) -> list[Row]:
    """The trace's spans depth-first (children by start time), each with its depth under the trace's roots."""
    trace = answer["data"][0]
    services = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
    spans = {s["spanID"]: s for s in trace["spans"]}
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for span in spans.values():
        parents = [r["spanID"] for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
        if parents and parents[0] in spans:
            children.setdefault(parents[0], []).append(span)
        else:  # its parent is the client's span, which Jaeger never received
            roots.append(span)
    origin = min(s["startTime"] for s in spans.values())
    found: list[Row] = []

    def visit(span: dict[str, Any], depth: int) -> None:
        tags = {t["key"]: t["value"] for t in span.get("tags", [])}
        found.append(
            Row(
                depth=depth,
                service=services[span["processID"]],
                name=span["operationName"],
                kind=str(tags.get("span.kind", "internal")),
                start_us=span["startTime"] - origin,
                duration_us=span["duration"],
                error=tags.get("error") is True or tags.get("otel.status_code") == "ERROR",
                tags=tuple((k, str(tags[k])) for k in SHOWN_TAGS if k in tags),
            )
        )
        for child in sorted(children.get(span["spanID"], []), key=lambda s: s["startTime"]):
            visit(child, depth + 1)

    for root in sorted(roots, key=lambda s: s["startTime"]):
        visit(root, 0)
    return found


def page(answer: dict[str, Any], caption: str) -> str:
    """A self-contained HTML page: a header, then one row per span with its bar on a common time axis."""
    found = rows(answer)
    total = max(r.start_us + r.duration_us for r in found) or 1
    trace_id = answer["data"][0]["traceID"]
    body = []
    for row in found:
        left, width = 100 * row.start_us / total, max(0.3, 100 * row.duration_us / total)
        colour = "#d9534f" if row.error else COLOURS.get(row.service, OTHER_COLOUR)
        tags = " · ".join(f"{html.escape(k)}={html.escape(v)}" for k, v in row.tags)
        body.append(
            f'<div class="row"><div class="label" style="padding-left:{12 + 18 * row.depth}px">'
            f'<span class="svc" style="color:{colour}">{html.escape(row.service)}</span> '
            f"<b>{html.escape(row.name)}</b> <span class=kind>{html.escape(row.kind)}</span>"
            f'<span class="dur">{row.duration_us / 1000:.2f} ms</span><div class="tags">{tags}</div></div>'
            f'<div class="lane"><div class="bar" style="left:{left:.2f}%;width:{width:.2f}%;background:{colour}"></div>'
            f"</div></div>"
        )
    services = sorted({r.service for r in found})
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>trace {html.escape(trace_id)}</title>
<style>
body {{ font: 13px/1.35 "DejaVu Sans", sans-serif; margin: 0; color: #222; background: #fff; }}
header {{ padding: 12px 16px; background: #f3f5f8; border-bottom: 1px solid #d8dde6; }}
header h1 {{ font-size: 16px; margin: 0 0 4px; }}
header p {{ margin: 0; color: #555; }}
.row {{ display: flex; border-bottom: 1px solid #eceff3; min-height: 40px; }}
.label {{ width: 50%; padding: 5px 8px; box-sizing: border-box; overflow: hidden; }}
.svc {{ font-weight: bold; }}
.kind {{ color: #888; font-size: 11px; }}
.tags {{ color: #666; font-size: 11px; }}
.lane {{ position: relative; width: 50%; margin-right: 12px; border-left: 1px solid #d8dde6; }}
.bar {{ position: absolute; top: 50%; margin-top: -7px; height: 14px; border-radius: 2px; }}
.dur {{ float: right; font-size: 12px; color: #333; }}
</style></head><body>
<header><h1>Trace {html.escape(trace_id)}: {len(found)} spans, {", ".join(map(html.escape, services))},
{total / 1000:.2f} ms</h1><p>{html.escape(caption)}</p></header>
{"".join(body)}
</body></html>
"""
