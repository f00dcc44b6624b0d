"""The chart ships the CRDs in its crds/ folder; they must be the repository's CRDs (the one
source, which the test control plane installs), byte for byte. `make sync` copies them."""

from __future__ import annotations

from tests.chart.support import CHART, REPO


def test_chart_crds_are_byte_identical_to_top_level_crds() -> None:
    top = {p.name: p.read_bytes() for p in sorted((REPO / "crds").glob("*.yaml"))}
    chart = {p.name: p.read_bytes() for p in sorted((CHART / "crds").glob("*.yaml"))}
    fix = "run `make sync` (edit crds/, never the chart's copies)"
    assert top, "crds/*.yaml is empty"
    assert sorted(chart) == sorted(top), f"chart CRD files differ from crds/: {sorted(chart)} vs {sorted(top)}; {fix}"
    stale = [name for name in top if chart[name] != top[name]]
    assert not stale, f"chart CRDs out of date: {stale}; {fix}"
