"""The report of a fixed run directory is exactly the golden one (JSON and HTML).

The run directory is plain data under ``tests/fixtures/report_run`` (made once by its
``generate.py``): a five-level step run with a planted queue bottleneck, so the report has
stages, hotspots, load models, resources and a Prometheus section. Only the volatile fields
(``created_unix_ns``, ``tool_version``) are normalised. A change to the report's content or
shape fails here; refresh the golden files on purpose with ``OAG_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from open_autoglm.analysis import (
    PrometheusSummary,
    Report,
    ReportError,
    build_report,
    render_html,
)
from open_autoglm.collector import write_span_store

FIXTURE = Path(__file__).parents[2] / "fixtures" / "report_run"
GOLDEN_JSON = FIXTURE / "golden_report.json"
GOLDEN_HTML = FIXTURE / "golden_report.html"
RUN_FILES = (
    "results.json",
    "requests.jsonl",
    "run.json",
    "server_metrics.jsonl",
    "server_memory.jsonl",
)
UPDATE = os.environ.get("OAG_UPDATE_GOLDEN") == "1"


def _columns(path: Path) -> dict[str, list[Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {key: [row[key] for row in rows] for key in rows[0]}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    run_dir = tmp_path_factory.mktemp("report_run")
    for name in RUN_FILES:
        shutil.copy(FIXTURE / name, run_dir / name)
    write_span_store(
        run_dir / "spans.duckdb",
        _columns(FIXTURE / "spans.jsonl"),
        _columns(FIXTURE / "events.jsonl"),
    )
    prometheus = PrometheusSummary.from_json(
        json.loads((FIXTURE / "prometheus.json").read_text(encoding="utf-8"))
    )
    built = build_report(run_dir, prometheus=prometheus)
    return dataclasses.replace(built, created_unix_ns=0, tool_version="golden")


def _check(path: Path, text: str) -> None:
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with OAG_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8")


def _rounded(value: Any) -> Any:
    """Floats to 12 significant digits: DuckDB's parallel aggregates may sum in another order
    from run to run, which moves the last bits of a mean (seen: 0.43564351012080244 vs ...55)."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_report_json_equals_the_golden_file(report: Report) -> None:
    text = json.dumps(report.to_json(), indent=2, default=str) + "\n"
    if UPDATE:
        GOLDEN_JSON.write_text(text, encoding="utf-8")
    assert GOLDEN_JSON.exists(), f"{GOLDEN_JSON} is missing: run with OAG_UPDATE_GOLDEN=1"
    data = json.loads(text)
    golden = json.loads(GOLDEN_JSON.read_text(encoding="utf-8"))
    assert list(golden) == list(data)  # the same fields, in the same order
    assert _rounded(data) == _rounded(golden)
    # the fixture exercises every section, so the comparison covers them
    assert data["stages"] is not None
    assert set(data["diagnosis"]["hotspots"]) == {"e2e", "ttft"}
    assert data["diagnosis"]["load_models"] is not None
    assert data["resources"]["samples"] == 12
    # peak memory measures serving: the load (240 MB) and the warm-up spike (400 MB) apart
    assert data["resources"]["server_rss_peak_bytes"] < 170_000_000
    assert data["resources"]["server_rss_load_peak_bytes"] == 240_000_000
    assert data["prometheus"]["queries"] == 14
    assert [d["level"] for d in data["distributions"]] == [0, 1, 2, 3, 4]


def test_report_html_equals_the_golden_file(report: Report) -> None:
    _check(GOLDEN_HTML, render_html(report))


def test_a_report_file_reads_back_to_the_same_report() -> None:
    """``Report.from_json`` validates a report file into the typed report; written again and
    rendered again, it is the golden report and page."""
    data = json.loads(GOLDEN_JSON.read_text(encoding="utf-8"))
    report = Report.from_json(data)
    assert report.load.levels[2].e2e_ms.p99 == data["load"]["levels"][2]["e2e_ms"]["p99"]
    assert json.dumps(report.to_json(), indent=2, default=str) + "\n" == GOLDEN_JSON.read_text(
        encoding="utf-8"
    )
    assert render_html(report) == GOLDEN_HTML.read_text(encoding="utf-8")


def test_a_report_of_another_shape_is_refused_with_the_field() -> None:
    data = json.loads(GOLDEN_JSON.read_text(encoding="utf-8"))
    data["load"]["levels"][0]["ttft_ms"]["p99"] = "fast"
    with pytest.raises(ReportError, match=r"load\.levels\.0\.ttft_ms\.p99"):
        Report.from_json(data)
    with pytest.raises(ReportError, match="version"):
        Report.from_json({**data, "version": "open-autoglm.report/0"})
