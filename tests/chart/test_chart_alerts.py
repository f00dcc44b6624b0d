"""The chart's PrometheusRule, checked and unit-tested by the real promtool.

helm renders the rules (defaults, `monitoring.prometheusRule.enabled`); `promtool check rules`
validates them and `promtool test rules` runs tests/chart/alerts/alerts_test.yaml, in which
every alert fires on the series it is meant for and stays silent on healthy neighbours.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.support import VALUES_FULL, one, render
from tests.support.tools import require_tool

ALERT_TESTS = Path(__file__).resolve().parent / "alerts" / "alerts_test.yaml"

pytestmark = pytest.mark.late_tools


def rendered_rules(*sets: str) -> dict[str, Any]:
    docs = render(sets=("monitoring.prometheusRule.enabled=true", *sets))
    return one(docs, "PrometheusRule")


def write_rules(folder: Path, rule: dict[str, Any]) -> Path:
    """The PrometheusRule's spec is a Prometheus rule file as it stands."""
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    return path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    tool = str(require_tool("promtool"))
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def alert_names(rule: dict[str, Any]) -> set[str]:
    return {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r}


def test_no_prometheus_rule_by_default() -> None:
    assert not [d for d in render() if d["kind"] == "PrometheusRule"]


def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    for values in ((), (VALUES_FULL,)):
        rule = one(render(*values, sets=("monitoring.prometheusRule.enabled=true",)), "PrometheusRule")
        result = promtool("check", "rules", str(write_rules(tmp_path, rule)), cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


def test_every_alert_fires_in_promtool_unit_tests(tmp_path: Path) -> None:
    rule = rendered_rules()
    write_rules(tmp_path, rule)
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    result = promtool("test", "rules", ALERT_TESTS.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    # Each alert of the chart has a case in which it fires.
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired = {c["alertname"] for t in cases for c in t["alert_rule_test"] if c["exp_alerts"]}
    assert fired == alert_names(rule)
    wanted = {"UpstreamDown", "ErrorRate", "Latency", "Quota", "Database", "ReconcileErrors", "RoutingConfigStalled"}
    assert all(any(w in name for name in fired) for w in wanted), fired


def test_thresholds_and_labels_come_from_values(tmp_path: Path) -> None:
    rule = rendered_rules(
        "monitoring.prometheusRule.thresholds.p99LatencySeconds=7",
        "monitoring.prometheusRule.for.database=9m",
        "monitoring.prometheusRule.alertLabels.team=platform",
        "monitoring.prometheusRule.labels.release=prometheus",
    )
    rules = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert rules["McpGatewayHighLatency"]["expr"].rstrip().endswith("> 7")
    assert rules["McpGatewayDatabaseUnavailable"]["for"] == "9m"
    assert all(r["labels"]["team"] == "platform" for r in rules.values())
    assert rule["metadata"]["labels"]["release"] == "prometheus"


def test_a_raised_threshold_silences_its_alert_in_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: with p99LatencySeconds above the test's 4.96 s, its latency case does."""
    write_rules(tmp_path, rendered_rules("monitoring.prometheusRule.thresholds.p99LatencySeconds=7"))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    result = promtool("test", "rules", ALERT_TESTS.name, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "McpGatewayHighLatency" in output
    assert "McpGatewayHighErrorRate" not in output


DASHBOARD = Path(__file__).resolve().parents[2] / "charts" / "mcp-gateway" / "dashboards" / "mcp-gateway.json"


def panel_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]


def test_dashboard_ships_in_a_configmap_for_grafanas_sidecar() -> None:
    assert not [d for d in render() if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]
    docs = render(sets=("monitoring.dashboard.enabled=true", "monitoring.dashboard.namespace=grafana"))
    config_map = one(docs, "ConfigMap", "-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "grafana"
    assert json.loads(config_map["data"]["mcp-gateway.json"]) == json.loads(DASHBOARD.read_text())


def test_every_dashboard_query_parses_with_promtool(tmp_path: Path) -> None:
    board = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and all(p["targets"] for p in board["panels"])
    queries = panel_queries()
    titles = " ".join(title for title, _ in queries).lower()
    for wanted in ("calls", "errors", "latency", "refusals", "upstream"):
        assert wanted in titles, wanted
    for title, expr in queries:
        # Grafana's variables, as Grafana fills them in for "All" and its rate interval.
        promql = re.sub(r"\$(namespace|tenant|profile)\b", ".*", expr.replace("$__rate_interval", "1m"))
        result = promtool("--experimental", "promql", "format", promql, cwd=tmp_path)
        assert result.returncode == 0, f"{title}: {promql}\n{result.stderr}"
    broken = promtool("--experimental", "promql", "format", "sum by (tenant (rate(x[1m]))", cwd=tmp_path)
    assert broken.returncode != 0  # the check can fail


def test_operator_pod_monitor_scrapes_the_health_port() -> None:
    assert not [d for d in render() if d["kind"] == "PodMonitor"]
    monitor = one(render(sets=("operator.podMonitor.enabled=true",)), "PodMonitor")
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint == {"port": "health", "path": "/metrics", "interval": "30s"}
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
