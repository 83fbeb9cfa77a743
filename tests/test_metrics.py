"""The metric registry and round summaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.metrics import METRICS, request_metrics, resource_metrics
from harness.results import RequestLog, ResourceSeries

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


def test_every_metric_is_documented():
    text = DOCS.read_text()
    missing = [name for name in METRICS if f"`{name}`" not in text]
    assert not missing, f"add these metrics to docs/metrics.md: {missing}"


def test_request_summary_excludes_failures_from_latency_and_counts_them():
    log = RequestLog(
        endpoint=("a",) * 4, intended=(0.0, 0.1, 0.2, 0.3), sent=(0.0, 0.1, 0.2, 0.3),
        latency=(0.01, 0.03, 0.02, 5.0), service=(0.01, 0.03, 0.02, 5.0),
        status=(200, 200, 200, 500), nbytes=(100, 100, 100, 10), error=(None, None, None, None),
    )
    summary = request_metrics(log, duration=2.0)
    assert summary["errors"] == 1.0
    assert summary["latency_mean"] == pytest.approx(0.02)
    assert summary["latency_max"] == pytest.approx(0.03)
    assert summary["responses_per_s"] == pytest.approx(1.5)
    assert summary["throughput_kbps"] == pytest.approx(300 / 1024 / 2.0)


def test_resource_summary_uses_deltas_and_leaves_unavailable_out():
    series = ResourceSeries(
        interval=1.0, t=(0.0, 1.0, 2.0),
        columns={"cpu_user": (1.0, 1.5, 2.0), "cpu_system": (0.5, 0.5, 1.0),
                 "rss": (10.0, 30.0, 20.0), "write_chars": (100.0, 150.0, 300.0)},
        unavailable=("read_bytes", "write_bytes"),
    )
    summary = resource_metrics(series, requests=10, duration=3600.0)
    assert summary["cpu_seconds"] == pytest.approx(1.5)
    assert summary["cpu_per_request"] == pytest.approx(0.15)
    assert summary["rss_max"] == 30.0
    assert summary["write_chars_per_request"] == pytest.approx(20.0)
    assert summary["write_chars_per_hour"] == pytest.approx(200.0)
    assert summary["write_bytes_per_request"] is None
