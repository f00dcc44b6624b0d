"""Usage of a profile: tool calls over time (from the audit log) and quota counters.

The chart is an inline SVG rendered here, so the page needs no script and the
strict Content-Security-Policy holds. Only numbers and times go into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

from markupsafe import Markup

from mcp_gateway.config import Profile, Quota, RoutingConfig
from mcp_gateway.runtime import Gateway
from mcp_gateway.store.base import AuditQuery, AuditRecord

# window name -> (bucket width, bucket count, label format)
WINDOWS: dict[str, tuple[timedelta, int, str]] = {
    "1h": (timedelta(minutes=1), 60, "%H:%M"),
    "24h": (timedelta(hours=1), 24, "%H:00"),
    "30d": (timedelta(days=1), 30, "%m-%d"),
}
DEFAULT_WINDOW = "24h"
PAGE = 1000
MAX_SCAN = 5000  # audit records read for one chart, at most


@dataclass(frozen=True)
class Bucket:
    start: datetime
    ok: int
    failed: int


@dataclass(frozen=True)
class Series:
    window: str
    buckets: list[Bucket]
    label_format: str
    truncated: bool  # more calls than MAX_SCAN in the window: the oldest buckets undercount

    @property
    def total(self) -> int:
        return sum(b.ok + b.failed for b in self.buckets)


async def _records_since(gateway: Gateway, profile: Profile, since: datetime) -> tuple[list[AuditRecord], bool]:
    await gateway.audit.flush()
    out: list[AuditRecord] = []
    before: int | None = None
    while len(out) < MAX_SCAN:
        page = await gateway.store.query_audit(AuditQuery(profile.tenant, profile.id, None, before, PAGE))
        fresh = [r for r in page if r.at is not None and r.at >= since]
        out.extend(fresh)
        if len(page) < PAGE or len(fresh) < len(page) or page[-1].id is None:
            return out, False
        before = page[-1].id
    return out, True


def _floor(moment: datetime, width: timedelta) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // width) * width


async def call_series(gateway: Gateway, profile: Profile, window: str, now: datetime | None = None) -> Series:
    width, count, label_format = WINDOWS.get(window, WINDOWS[DEFAULT_WINDOW])
    window = window if window in WINDOWS else DEFAULT_WINDOW
    last = _floor(now or datetime.now(UTC), width)
    first = last - width * (count - 1)
    records, truncated = await _records_since(gateway, profile, first)
    ok = [0] * count
    failed = [0] * count
    for record in records:
        assert record.at is not None
        index = (_floor(record.at.astimezone(UTC), width) - first) // width
        if 0 <= index < count:
            (ok if record.outcome == "ok" else failed)[index] += 1
    buckets = [Bucket(first + width * i, ok[i], failed[i]) for i in range(count)]
    return Series(window, buckets, label_format, truncated)


def render_chart(series: Series, width: int = 1100, height: int = 200) -> Markup:
    """Stacked bars (ok / not ok) with a time axis, as inline SVG."""
    pad_left, pad_bottom, pad_top = 36, 22, 8
    plot_w, plot_h = width - pad_left - 4, height - pad_bottom - pad_top
    peak = max([b.ok + b.failed for b in series.buckets] + [1])
    slot = plot_w / len(series.buckets)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>tool calls per bucket, last {escape(series.window)}</title>',
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - 4}" y2="{pad_top + plot_h}" stroke="#98a2b3"/>',
        f'<text x="{pad_left - 6}" y="{pad_top + 10}" text-anchor="end" font-size="11" fill="#475467">{peak}</text>',
        f'<text x="{pad_left - 6}" y="{pad_top + plot_h}" text-anchor="end" font-size="11" fill="#475467">0</text>',
    ]
    label_every = max(1, len(series.buckets) // 6)
    for i, bucket in enumerate(series.buckets):
        x = pad_left + i * slot + 1
        ok_h = plot_h * bucket.ok / peak
        bad_h = plot_h * bucket.failed / peak
        label = bucket.start.strftime(series.label_format)
        tip = f"{label}: {bucket.ok} ok, {bucket.failed} failed"
        parts.append(f'<g class="bar"><title>{escape(tip)}</title>')
        y_ok = pad_top + plot_h - ok_h
        parts.append(f'<rect x="{x:.1f}" y="{y_ok:.1f}" width="{slot - 2:.1f}" height="{ok_h:.1f}" fill="#2e90fa"/>')
        y_bad = y_ok - bad_h
        parts.append(f'<rect x="{x:.1f}" y="{y_bad:.1f}" width="{slot - 2:.1f}" height="{bad_h:.1f}" fill="#f04438"/>')
        parts.append("</g>")
        if i % label_every == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - 6}" font-size="11" fill="#475467">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from numbers and escaped labels only


@dataclass(frozen=True)
class QuotaLine:
    scope: str
    period: str
    used: int
    limit: int | None


def _periods(now: datetime) -> dict[str, str]:
    return {f"d:{now:%Y-%m-%d}": "today", f"m:{now:%Y-%m}": "this month"}


def _limit(quota: Quota | None, period: str) -> int | None:
    if quota is None:
        return None
    return quota.daily if period.startswith("d:") else quota.monthly


async def quota_lines(gateway: Gateway, config: RoutingConfig, profile: Profile) -> list[QuotaLine]:
    """This period's counters of the profile's tenant and of its callers on this profile, with their limits."""
    tenant = config.tenant(profile.tenant)
    periods = _periods(datetime.now(UTC))
    rows = await gateway.store.usage(f"tenant:{profile.tenant}") + await gateway.store.usage(
        f"caller:{profile.tenant}:{profile.id}:", nested=True
    )
    lines = []
    for scope, period, used in rows:
        if period not in periods:
            continue
        quota = (tenant.limits.quota if tenant else None) if scope.startswith("tenant:") else profile.limits.quota
        lines.append(QuotaLine(scope, periods[period], used, _limit(quota, period)))
    return lines
