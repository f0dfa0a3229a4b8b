"""``analyze --prometheus`` against a real Prometheus that scraped a real sim server under load.

Our own collector, ``open-autoglm serve --backend sim`` exporting to it, and Prometheus scraping
the server every second; the load generator runs as a user runs it (``open-autoglm benchmark
--url``) into a run directory. Then the server and the collector stop (the span store is
complete) while Prometheus keeps what it scraped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from open_autoglm.cli import main
from open_autoglm.collector import CollectorConfig, CollectorProcess, SpanStore
from open_autoglm.telemetry import STAGE_BUCKETS
from open_autoglm.telemetry import names as n
from open_autoglm.testing import PrometheusProcess, ServerProcess, wait_for

pytestmark = pytest.mark.prometheus

_REQUESTS = 40
_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
_REPORT_KEYS = {"p50": "median", "p90": "p90", "p95": "p95", "p99": "p99"}


@dataclass(frozen=True)
class ObservedRun:
    run_dir: Path
    prometheus: str


@pytest.fixture(scope="module")
def observed_run(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ObservedRun]:
    # the prometheus_binary fixture skips (fails under CI=1) before anything starts
    run_dir = tmp_path_factory.mktemp("run")
    config = CollectorConfig(db_path=run_dir / "spans.duckdb")
    with CollectorProcess(config, log_path=run_dir / "collector.log") as collector:
        endpoint = collector.http_endpoint
        assert endpoint is not None
        with ServerProcess(
            ("--backend", "sim", "--otlp-endpoint", endpoint),
            env={**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "200"},
            log_path=run_dir / "server.log",
        ) as server:
            prometheus_dir = tmp_path_factory.mktemp("prometheus")
            with PrometheusProcess(
                [f"127.0.0.1:{server.port}"], prometheus_dir, binary=prometheus_binary
            ) as prom:
                wait_for("the first scrape", lambda: prom.query("up == 1"), logs=server.stderr)
                health = httpx.get(f"{server.url}/health", timeout=5.0).json()
                run = {"backend": health["backend"], "model": health["model"], "simulated": True}
                (run_dir / "run.json").write_text(json.dumps(run), encoding="utf-8")
                _load(server.url, endpoint, run_dir)
                total = f"sum({n.METRIC_REQUEST_DURATION}_count)"
                wait_for(
                    f"Prometheus to scrape all {_REQUESTS} requests",
                    lambda: [r for r in prom.query(total) if r["value"][1] == str(_REQUESTS)],
                    logs=server.stderr,
                )
                # stop (idempotent; the context managers clean up): the server flushes its
                # spans, then the collector completes the store; Prometheus keeps its data
                server.stop()
                collector.stop()
                yield ObservedRun(run_dir, prom.url)


def _load(url: str, endpoint: str, run_dir: Path) -> None:
    log = run_dir / "loadgen.log"
    with log.open("wb") as out:
        code = subprocess.call(
            [sys.executable, "-m", "open_autoglm", "benchmark", "--url", url,
             "--requests", str(_REQUESTS), "--concurrency", "4", "--output-len", "16",
             "--output", str(run_dir / "results.json"),
             "--records", str(run_dir / "requests.jsonl"),
             "--otlp-endpoint", endpoint, "--quiet"],
            stdout=out, stderr=subprocess.STDOUT, timeout=240,
        )  # fmt: skip
    assert code == 0, log.read_text(errors="replace")


@pytest.fixture(scope="module")
def report(observed_run: ObservedRun) -> dict[str, Any]:
    output = observed_run.run_dir / "prometheus-report.json"
    code = main(
        ["analyze", str(observed_run.run_dir), "--prometheus", observed_run.prometheus,
         "--output", str(output)]
    )  # fmt: skip
    assert code == 0
    result: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    return result


def _stage_durations_s(run_dir: Path, stage: str) -> np.ndarray:
    with SpanStore(run_dir / "spans.duckdb") as store:
        rows = store.connection.execute(
            "SELECT duration_ns FROM spans WHERE name = ? AND kind = 'INTERNAL'", [stage]
        ).fetchall()
    return np.sort(np.asarray([r[0] for r in rows], dtype=np.float64) / 1e9)


def _bucket(value: float) -> tuple[float, float]:
    """The histogram bucket (lower, upper] holding ``value`` (upper: +inf past the last)."""
    lower = 0.0
    for bound in STAGE_BUCKETS:
        if value <= bound:
            return lower, bound
        lower = bound
    return lower, float("inf")


def _resolution(values: np.ndarray, q: float) -> tuple[float, float]:
    """Buckets spanned by the observations around the quantile's rank: where both an exact
    percentile (numpy, rank q·(N-1)) and histogram_quantile (rank q·N) must land."""
    size = values.size
    first = max(0, int(np.floor(q * (size - 1))) - 1)
    last = min(size - 1, int(np.ceil(q * size)))
    return _bucket(values[first])[0], _bucket(values[last])[1]


def test_prometheus_reproduces_the_reports_stage_percentiles(
    report: dict[str, Any], observed_run: ObservedRun
) -> None:
    prom = report["prometheus"]
    assert prom is not None
    stages = report["stages"]
    assert stages["requests"] == _REQUESTS
    assert stages["with_server_spans"] == _REQUESTS
    checked = 0
    for stage in ("tokenize", "queue", "prefill", "decode"):
        durations = _stage_durations_s(observed_run.run_dir, stage)
        assert durations.size == _REQUESTS
        from_spans = stages["stages_ms"][stage]
        from_prometheus = prom["stages"][stage]
        # the window's counter growth is exact: every request, no extrapolation
        assert from_prometheus["count"] == pytest.approx(_REQUESTS)
        for key, q in _QUANTILES.items():
            estimate_ms = from_prometheus["quantiles_ms"][key]
            exact_ms = from_spans[_REPORT_KEYS[key]]
            lower, upper = _resolution(durations, q)
            assert lower * 1e3 <= exact_ms <= upper * 1e3
            assert lower * 1e3 <= estimate_ms <= upper * 1e3, (stage, key, estimate_ms, exact_ms)
            if np.isfinite(upper):
                assert abs(estimate_ms - exact_ms) <= (upper - lower) * 1e3
            checked += 1
    assert checked == 16


def test_prometheus_counts_every_request_and_reads_resources(report: dict[str, Any]) -> None:
    prom = report["prometheus"]
    assert prom["selector"] == '{gen_ai_provider_name="sim",gen_ai_request_model="sim-llm"}'
    for key in ("ttft", "e2e", "tpot"):
        assert prom[key]["count"] == pytest.approx(_REQUESTS), key
        assert all(v is not None and v > 0 for v in prom[key]["quantiles_ms"].values()), key
    p = prom["e2e"]["quantiles_ms"]
    assert p["p50"] <= p["p90"] <= p["p95"] <= p["p99"]
    # the server's E2E is at most the client's (same requests, minus the network), bucket-wise
    client = report["load"]["levels"][0]["e2e_ms"]
    assert p["p50"] <= client["max"] * 2
    assert prom["peak_rss_bytes"] > 10 * 2**20
    assert prom["load_peak_rss_bytes"] > 10 * 2**20  # the server's own, set once loaded
    assert prom["rss_bytes"]["max"] > 10 * 2**20
    assert prom["batch_size"]["max"] >= 1
    assert prom["queue_depth"]["max"] is not None


def test_exemplar_trace_ids_exist_in_the_span_store(
    report: dict[str, Any], observed_run: ObservedRun
) -> None:
    exemplars = report["prometheus"]["exemplar_trace_ids"]
    assert exemplars
    with SpanStore(observed_run.run_dir / "spans.duckdb") as store:
        stored = set(store.trace_ids())
    assert set(exemplars) <= stored
    records = observed_run.run_dir / "requests.jsonl"
    client_ids = {json.loads(line)["trace_id"] for line in records.read_text().splitlines()}
    assert set(exemplars) <= client_ids


def test_unreachable_prometheus_is_a_one_line_error(
    observed_run: ObservedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    from open_autoglm.testing import free_port

    url = f"http://127.0.0.1:{free_port()}"
    code = main(["analyze", str(observed_run.run_dir), "--prometheus", url, "--output",
                 str(observed_run.run_dir / "unused.json")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"open-autoglm: error: cannot reach Prometheus at {url}: ConnectError"
    assert not (observed_run.run_dir / "unused.json").exists()
