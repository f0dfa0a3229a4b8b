"""A managed run as a user starts it (``benchmark --backend sim``), read back from its files.

Peak memory measures serving: the sim server simulates a model preparation of 400 MiB at
start (``prepare_mb``, a labelled stand-in for the GGUF-to-ONNX conversion of the onnxruntime
server); the report's serving peak must exclude it and report it apart as the load peak.
The same run's span store shows the GenAI conventions on real CLIENT and SERVER spans.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from open_autoglm.collector import SpanStore
from open_autoglm.telemetry import names as n

pytestmark = pytest.mark.slow

PREPARE_MIB = 400


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("managed") / "run"
    cmd = [sys.executable, "-m", "open_autoglm", "benchmark", "--backend", "sim",
           "--backend-option", f"prepare_mb={PREPARE_MIB}", "--backend-option", "cost=zero",
           "--concurrency", "4", "--requests", "40", "--output-len", "8",
           "--run-dir", str(run), "--quiet"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return run


def _report(run_dir: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((run_dir / "report.json").read_text())
    return report


def test_serving_peak_excludes_the_model_preparation(run_dir: Path) -> None:
    resources = _report(run_dir)["resources"]
    load_peak = resources["server_rss_load_peak_bytes"]
    serving_peak = resources["server_rss_peak_bytes"]
    assert load_peak >= PREPARE_MIB * 2**20  # the preparation, reported apart
    assert 20 * 2**20 < serving_peak < load_peak - (PREPARE_MIB - 100) * 2**20
    if sys.platform == "linux":
        assert resources["memory_peak_source"].startswith("kernel high-water mark")
    rows = [json.loads(line) for line in (run_dir / "server_memory.jsonl").read_text().splitlines()]
    assert rows[0]["phase"] == "load"
    assert {r["phase"] for r in rows[1:]} == {"serve"}
    assert max(r["rss_peak_bytes"] for r in rows[1:]) < load_peak


def test_spans_follow_the_genai_conventions(run_dir: Path) -> None:
    with SpanStore(run_dir / "spans.duckdb") as store:
        clients = store.spans_named(n.client_span_name(n.OPERATION_CHAT, "sim-llm"))
        servers = {s.trace_id: s for s in store.spans_named("POST /v1/chat/completions")}
    assert len(clients) == 40
    for client in clients:
        attrs = client.attributes
        assert client.kind == "CLIENT"
        assert attrs[n.GEN_AI_PROVIDER_NAME] == "sim"  # a managed run knows its backend
        assert attrs[n.GEN_AI_REQUEST_STREAM] is True
        assert attrs[n.SERVER_ADDRESS] == "127.0.0.1"
        assert isinstance(attrs[n.SERVER_PORT], int)
        assert attrs[n.GEN_AI_RESPONSE_MODEL] == "sim-llm"
        server = servers[client.trace_id]
        assert attrs[n.GEN_AI_RESPONSE_ID] == server.attributes[n.GEN_AI_RESPONSE_ID]
        assert server.attributes[n.GEN_AI_PROVIDER_NAME] == "sim"
