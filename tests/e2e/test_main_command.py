"""The README's main command as a user runs it, then the report checked against its sources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from open_autoglm.collector import SpanStore
from open_autoglm.telemetry import names as n

CLI = [sys.executable, "-m", "open_autoglm"]
STAGES = (n.SPAN_TOKENIZE, n.SPAN_QUEUE, n.SPAN_PREFILL, n.SPAN_DECODE)


def read_jsonl(path: Path) -> list[dict]:  # type: ignore[type-arg]
    with path.open() as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="module")
def main_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``open-autoglm benchmark --backend sim --concurrency 16 --output report.json``."""
    cwd = tmp_path_factory.mktemp("main")
    proc = subprocess.run(
        [
            *CLI,
            "benchmark",
            "--backend",
            "sim",
            "--concurrency",
            "16",
            "--output",
            "report.json",
            "--quiet",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "report: report.json" in proc.stdout
    (run_dir,) = (cwd / "runs").iterdir()
    return cwd / "report.json", run_dir


def test_report_counts_match_the_records(main_run: tuple[Path, Path]) -> None:
    report_path, run_dir = main_run
    report = json.loads(report_path.read_text())
    assert report["version"] == "open-autoglm.report/1"
    assert report["run"]["backend"] == "sim"
    assert report["run"]["simulated"] is True
    assert report["run"]["hardware"]["cpu_cores"] == os.cpu_count()
    records = read_jsonl(run_dir / "requests.jsonl")
    (level,) = report["load"]["levels"]
    ok = [r for r in records if r["status"] == "ok" and r["phase"] == "measure"]
    assert level["succeeded"] == len(ok) == 100
    assert level["ttft_ms"]["count"] == len(ok)
    assert report["stages"]["requests"] == len(ok)
    assert report["stages"]["with_server_spans"] == len(ok)
    assert report["resources"]["server_rss_peak_bytes"] > 20 * 2**20
    assert report["resources"]["batch_size_max"] <= 16
    assert any("simulator" in note for note in report["notes"])
    assert len(report["distributions"][0]["ttft_ms"]) == 101


def test_every_request_has_its_stage_spans_in_the_store(main_run: tuple[Path, Path]) -> None:
    _, run_dir = main_run
    records = read_jsonl(run_dir / "requests.jsonl")
    trace_ids = {r["trace_id"] for r in records if r["status"] == "ok"}
    with SpanStore(run_dir / "spans.duckdb") as store:
        rows = store.connection.execute(
            "SELECT trace_id, list(name) FROM spans WHERE trace_id IN (SELECT unnest(?)) "
            "GROUP BY trace_id",
            [sorted(trace_ids)],
        ).fetchall()
    names = {trace_id: set(span_names) for trace_id, span_names in rows}
    assert set(names) == trace_ids
    client_name = n.client_span_name(n.OPERATION_CHAT, "sim-llm")
    for span_names in names.values():
        assert {client_name, "POST /v1/chat/completions", *STAGES} <= span_names


def test_ttft_decomposition_adds_up(main_run: tuple[Path, Path]) -> None:
    report = json.loads(main_run[0].read_text())
    slow = report["stages"]["slowest"][0]
    parts = slow["ttft_parts_ms"]
    assert sum(v for v in parts.values() if v is not None) == pytest.approx(
        slow["ttft_ms"], rel=0.02, abs=0.5
    )
    kinds = [s["kind"] for s in slow["spans"]]
    assert kinds[:2] == ["CLIENT", "SERVER"]


def test_analyze_rebuilds_the_same_report(main_run: tuple[Path, Path], tmp_path: Path) -> None:
    report_path, run_dir = main_run
    out = tmp_path / "again.json"
    proc = subprocess.run(
        [*CLI, "analyze", str(run_dir), "--output", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    first, again = json.loads(report_path.read_text()), json.loads(out.read_text())
    # DuckDB sums in parallel: the last bits of a float may differ between two runs
    for stage, stats in first["stages"]["stages_ms"].items():
        for key, value in stats.items():
            rebuilt = again["stages"]["stages_ms"][stage][key]
            if value is None:
                assert rebuilt is None, (stage, key)
            else:
                assert rebuilt == pytest.approx(value, rel=1e-9), (stage, key)
    assert again["load"] == first["load"]
    assert out.with_suffix(".html").stat().st_size > 10_000


@pytest.mark.browser
def test_html_report_renders_offline_with_its_charts(main_run: tuple[Path, Path]) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    html = main_run[0].with_suffix(".html")
    assert html.stat().st_size < 6 * 2**20
    if not Path("/usr/bin/chromium").exists():
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian chromium at /usr/bin/chromium")
        pytest.skip("Debian chromium is not installed")
    errors: list[str] = []
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: requests.append(r.url))
        page.goto(html.as_uri())
        charts = page.locator("svg.chart").count()
        headline = page.locator(".kpi").first.inner_text()
        browser.close()
    assert errors == []
    assert all(url.startswith("file://") for url in requests)
    assert charts >= 7  # throughput, 3 CDFs, 2 stage bars, waterfalls
    assert "requests ok" in headline


def test_bad_command_lines_fail_in_one_line(tmp_path: Path) -> None:
    cases = [
        (["benchmark", "--concurrency", "4"], "--url"),
        (["benchmark", "--backend", "sim", "--url", "http://127.0.0.1:9"], "exclude"),
        (["benchmark", "--backend", "nope", "--requests", "1", "--run-dir", str(tmp_path / "r")],
         "unknown backend"),
        (["analyze", str(tmp_path / "missing")], "not a run directory"),
    ]  # fmt: skip
    for args, needle in cases:
        proc = subprocess.run(
            [*CLI, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
        )
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
