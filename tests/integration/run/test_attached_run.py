"""``benchmark --url --collect-spans`` against a server we did not start (the ``sim`` server in
its own process, pointed at the collector's fixed port the way a user points vLLM): the run
directory gets the server's spans joined to the client's by trace id, and samples of the
server's /metrics in the report's resources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from open_autoglm.collector import SpanStore
from open_autoglm.testing import ServerProcess, free_port

pytestmark = [pytest.mark.slow]


def _benchmark(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "open_autoglm", "benchmark", *args],
        cwd=cwd, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def test_collect_spans_joins_a_running_servers_spans_and_samples_its_metrics(
    tmp_path: Path,
) -> None:
    http_port = free_port()
    env = {**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    args = ("--backend", "sim", "--max-batch-size", "2", "--otlp-endpoint",
            f"http://127.0.0.1:{http_port}", "--otlp-protocol", "http/protobuf")  # fmt: skip
    with ServerProcess(args, env=env) as server:
        run_dir = tmp_path / "run"
        done = _benchmark(
            "--url", server.url, "--collect-spans", "--collector-http-port", str(http_port),
            "--collector-grpc-port", "0", "--spans-wait", "1", "--concurrency", "4",
            "--requests", "24", "--output-len", "8", "--run-dir", str(run_dir), "--quiet",
            cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "collecting spans for this run" in done.stderr
    assert f"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:{http_port}/v1/traces" in (
        done.stderr
    )
    assert "24/24 requests joined to server spans" in done.stdout
    report = json.loads((run_dir / "report.json").read_text())
    assert report["stages"]["with_server_spans"] == report["stages"]["requests"] == 24
    assert report["stages"]["stages_ms"]["queue"]["count"] == 24
    assert report["resources"]["samples"] >= 1  # the server's /metrics, found by itself
    assert report["resources"]["queue_depth_max"] is not None
    run = json.loads((run_dir / "run.json").read_text())
    assert run["mode"] == "attached"
    assert run["url"] == server.url
    assert run["server_metrics_url"] == f"{server.url}/metrics"
    assert (run_dir / "report.html").is_file()
    with SpanStore(run_dir / "spans.duckdb") as store:
        names = store.name_counts()
    assert names["POST /v1/chat/completions"] == 24  # the server's, sent on its own
    assert sum(v for k, v in names.items() if k.startswith("chat ")) == 24  # the client's


def test_server_metrics_alone_samples_without_a_collector(tmp_path: Path) -> None:
    with ServerProcess(("--backend", "sim")) as server:
        run_dir = tmp_path / "run"
        done = _benchmark(
            "--url", server.url, "--server-metrics", f"{server.url}/metrics",
            "--concurrency", "2", "--requests", "8", "--output-len", "4",
            "--metric-percentiles", "50,99.9", "--waterfalls", "1",
            "--trace-url", "http://127.0.0.1:3000/explore?trace={trace_id}",
            "--run-dir", str(run_dir), "--quiet", cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "collecting spans" not in done.stderr
    report = json.loads((run_dir / "report.json").read_text())
    # the report options reach an attached run's report as a managed run's
    assert report["percentiles"] == [50.0, 99.9]
    assert report["waterfalls"] == 1
    assert report["trace_url"] == "http://127.0.0.1:3000/explore?trace={trace_id}"
    assert report["resources"]["samples"] >= 1
    assert report["stages"] is None
    assert not (run_dir / "spans.duckdb").exists()


def test_collect_spans_without_url_is_one_clear_line(tmp_path: Path) -> None:
    done = _benchmark("--backend", "sim", "--collect-spans", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "open-autoglm: error: --collect-spans and --server-metrics go with --url (a managed "
        "run collects spans and samples its server by itself)"
    )
