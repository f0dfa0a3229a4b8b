"""Pieces of the report: metric samples, resource summary, charts, HTML escaping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from open_autoglm.analysis import Report, ResourceSummary, render_html, summarize_samples
from open_autoglm.analysis._svg import _nice_max, cdf_chart, stacked_bars, waterfall
from open_autoglm.run import parse_sample
from open_autoglm.telemetry import names as n

SCRAPE = f"""# TYPE {n.METRIC_PROCESS_RSS} gauge
{n.METRIC_PROCESS_RSS} 1.5e+08
# TYPE {n.METRIC_QUEUE_DEPTH} gauge
{n.METRIC_QUEUE_DEPTH}{{backend="sim",model="m"}} 3.0
# TYPE {n.METRIC_GPU_MEMORY_USED} gauge
{n.METRIC_GPU_MEMORY_USED}{{gpu="0"}} 100.0
{n.METRIC_GPU_MEMORY_USED}{{gpu="1"}} 50.0
# TYPE {n.METRIC_GPU_UTILIZATION} gauge
{n.METRIC_GPU_UTILIZATION}{{gpu="0"}} 0.5
{n.METRIC_GPU_UTILIZATION}{{gpu="1"}} 1.0
"""


def test_parse_sample_sums_memory_and_averages_utilisation() -> None:
    sample = parse_sample(SCRAPE)
    assert sample == {
        "rss_bytes": 1.5e8,
        "queue_depth": 3.0,
        "gpu_memory_used_bytes": 150.0,
        "gpu_utilization": 0.75,
    }


def test_summary_takes_peaks(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    rows = [{"rss_bytes": 10, "batch_size": 2}, {"rss_bytes": 30, "peak_rss_bytes": 40,
            "batch_size": 6}]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = summarize_samples(path)
    assert summary.samples == 2
    assert summary.server_rss_peak_bytes == 40
    assert summary.batch_size_max == 6
    assert summary.batch_size_mean == 4
    assert summary.gpu_memory_peak_bytes is None
    assert summarize_samples(tmp_path / "absent.jsonl").samples == 0


@pytest.mark.parametrize(
    ("value", "expected"), [(0.7, 1.0), (3, 5), (12, 20), (230, 250), (1000, 1000), (0, 1.0)]
)
def test_nice_axis_maximum(value: float, expected: float) -> None:
    assert _nice_max(value) == pytest.approx(expected)


def test_charts_escape_text_and_handle_empty_data() -> None:
    hostile = "<script>alert(1)</script>"
    assert "<script>" not in cdf_chart({hostile: [1.0, 2.0, 3.0]}, "ms", hostile)
    assert "<script>" not in stacked_bars({hostile: {hostile: 1.0}}, "ms", "t")
    assert "<script>" not in waterfall([(hostile, "SERVER", 0.0, 1.0, 0)], "t")
    assert cdf_chart({}, "ms", "t") == "<p>No data.</p>"
    assert "No spans" in waterfall([], "t")


def test_html_escapes_model_names_and_errors() -> None:
    hostile = "<img src=x onerror=alert(1)>"
    report = Report(
        version="open-autoglm.report/1",
        tool_version="0",
        created_unix_ns=0,
        run={"backend": "sim", "model": hostile, "simulated": True},
        load={
            "endpoint": {"url": hostile},
            "levels": [
                {
                    "index": 0,
                    "label": hostile,
                    "succeeded": 1,
                    "failed": 1,
                    "errors": {hostile: 1},
                    "ttft_ms": {},
                    "tpot_ms": {},
                    "itl_ms": {},
                    "e2e_ms": {},
                }
            ],
        },
        resources=ResourceSummary(0, None, None, None, None, None, None, None),
        stages=None,
        notes=[hostile],
    )
    html = render_html(report)
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "simulated backend" in html
