"""Grafana dashboards: valid JSON, provisioned, and asking only for metrics the chassis
exports (or, for per-practice panels, the one metric proposed for it)."""

from __future__ import annotations

import json
import re

import pytest
from deploy_support import REPO

DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
METRICS_PY = REPO / "libs" / "gpsoc-kit" / "src" / "gpsoc_kit" / "metrics.py"
# Not exported yet: proposed for the gateway (see docs/operations.md#dashboards).
PROPOSED = {"gateway_practice_requests_total"}


def chassis_suffixes() -> set[str]:
    """Metric names of gpsoc_kit.metrics without the service prefix, as Prometheus exposes them."""
    names = set(re.findall(r'f"\{_prefix\(service\)\}_(\w+)"', METRICS_PY.read_text()))
    out = set()
    for name in names:
        out.add(name)
        if "duration" in name:
            out |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return out


def exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_valid_and_uses_real_metrics(path):
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"].startswith("openGPSoC")
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    suffixes = chassis_suffixes()
    assert "http_request_duration_seconds" in suffixes and "consumer_lag_events" in suffixes
    for expr in exprs(dashboard):
        for name in re.findall(r"\$\{service\}_(\w+)", expr):
            assert name in suffixes, f"{path.name}: {name} is not a chassis metric"
        for name in re.findall(r"\b(gateway_\w+)\{", expr):
            assert name in PROPOSED, name


def test_service_dashboard_covers_what_ops_watch():
    text = (REPO / "deploy" / "grafana" / "dashboards" / "services.json").read_text()
    for metric in ("http_request_duration_seconds_count", "http_request_duration_seconds_bucket",
                   "outbox_oldest_age_seconds", "consumer_lag_events", "dead_letter_events_total"):
        assert metric in text


def test_practice_dashboard_breaks_down_by_practice():
    dashboard = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "practices.json").read_text())
    assert any("by (practice)" in e for e in exprs(dashboard))
    assert dashboard["templating"]["list"][0]["name"] == "practice"
