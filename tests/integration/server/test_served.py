"""The real server process, driven by the official ``openai`` client, exporting real OTLP."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import httpx
import openai
import pytest

from open_autoglm.telemetry import names as n
from open_autoglm.testing import OtlpSink, ServerProcess

STAGES = {n.SPAN_TOKENIZE, n.SPAN_QUEUE, n.SPAN_PREFILL, n.SPAN_DECODE}
EXEMPLAR = re.compile(r'# \{trace_id="([0-9a-f]{32})"\}')


@pytest.fixture(scope="module")
def traced() -> Iterator[tuple[ServerProcess, OtlpSink]]:
    with OtlpSink() as sink:
        env = {**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        args = ("--backend", "sim", "--backend-option", "cost=zero", "--backend-option",
                "decode_base_ms=1", "--otlp-endpoint", sink.endpoint)  # fmt: skip
        with ServerProcess(args, env=env) as server:
            yield server, sink


def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_openai_client_streams_chat(sim_server: ServerProcess) -> None:
    stream = client(sim_server).chat.completions.create(
        model="sim-llm",
        messages=[{"role": "user", "content": "Tell me a story"}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 8
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["length"]


def test_openai_client_completions(sim_server: ServerProcess) -> None:
    c = client(sim_server)
    result = c.completions.create(model="sim-llm", prompt="Once upon a time", max_tokens=5)
    assert result.usage is not None
    assert result.usage.prompt_tokens == 4
    assert 1 <= result.usage.completion_tokens <= 5
    streamed = list(
        c.completions.create(
            model="sim-llm", prompt="Hi", max_tokens=3, stream=True, extra_body={"ignore_eos": True}
        )
    )
    assert "".join(s.choices[0].text for s in streamed).count(" ") == 3


def test_openai_client_non_streaming_chat_and_errors(sim_server: ServerProcess) -> None:
    c = client(sim_server)
    result = c.chat.completions.create(
        model="sim-llm", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert result.choices[0].message.role == "assistant"
    with pytest.raises(openai.NotFoundError) as err:
        c.chat.completions.create(model="other", messages=[{"role": "user", "content": "x"}])
    assert err.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        c.chat.completions.create(
            model="sim-llm", messages=[{"role": "user", "content": "x"}], max_tokens=0
        )
    assert bad.value.param == "max_tokens"
    assert [m.id for m in c.models.list()] == ["sim-llm"]


def test_exported_spans_follow_the_callers_trace(traced: tuple[ServerProcess, OtlpSink]) -> None:
    server, sink = traced
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    r = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "sim-llm", "messages": [{"role": "user", "content": "hi"}],
              "max_tokens": 3, "stream": True},
        headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"},
    )  # fmt: skip
    assert r.status_code == 200
    # stage spans end before their SERVER span: they may reach the sink in an earlier batch
    wanted = STAGES | {"POST /v1/chat/completions"}
    spans = sink.wait_for(lambda ss: {s.name for s in ss if s.trace_id == trace_id} >= wanted)
    mine = {s.name: s for s in spans if s.trace_id == trace_id}
    root = mine["POST /v1/chat/completions"]
    assert root.parent_span_id == "b7ad6b7169203331"
    assert root.service_name == n.SERVER_SERVICE_NAME
    assert root.attributes[n.GEN_AI_REQUEST_MODEL] == "sim-llm"
    for stage in STAGES:
        assert mine[stage].parent_span_id == root.span_id
        assert root.start_ns <= mine[stage].start_ns <= mine[stage].end_ns <= root.end_ns
    # per-message send/receive spans are off
    assert not [s for s in spans if s.trace_id == trace_id and s.name not in STAGES | {root.name}]


def test_scraped_exemplars_point_at_exported_traces(traced: tuple[ServerProcess, OtlpSink]) -> None:
    server, sink = traced
    c = client(server)
    for _ in range(3):
        c.chat.completions.create(
            model="sim-llm", messages=[{"role": "user", "content": "x"}], max_tokens=2
        )
    text = httpx.get(
        f"{server.url}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    ).text
    exemplar_traces = set(EXEMPLAR.findall(text))
    assert exemplar_traces
    spans = sink.wait_for(
        lambda ss: (
            {s.trace_id for s in ss if s.name == "POST /v1/chat/completions"} >= exemplar_traces
        )
    )
    roots = {s.trace_id for s in spans if s.name == "POST /v1/chat/completions"}
    assert exemplar_traces <= roots


def test_client_disconnect_cancels_the_generation(traced: tuple[ServerProcess, OtlpSink]) -> None:
    server, sink = traced
    trace_id = "1af7651916cd43dd8448eb211c80319d"
    body = {"model": "sim-llm", "messages": [{"role": "user", "content": "long"}],
            "max_tokens": 3000, "ignore_eos": True, "stream": True}  # fmt: skip
    headers = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, headers=headers) as r:
        lines = r.iter_lines()
        got = [next(lines) for _ in range(6)]
    assert any("content" in line for line in got)
    wanted = {n.SPAN_DECODE, "POST /v1/chat/completions"}
    spans = sink.wait_for(lambda ss: {s.name for s in ss if s.trace_id == trace_id} >= wanted)
    root = next(s for s in spans if s.trace_id == trace_id and s.kind == 2)  # SERVER
    assert root.attributes[n.ATTR_CANCELLED] is True
    assert root.attributes[n.GEN_AI_USAGE_OUTPUT_TOKENS] < 3000
    metrics = httpx.get(f"{server.url}/metrics").text
    assert re.search(n.METRIC_BATCH_SIZE + r"\{[^}]*\} 0\.0", metrics)


def test_sigterm_flushes_every_span() -> None:
    """The last requests' spans leave the process on SIGTERM: only the shutdown flush can
    send them here (the batch processor's own schedule is an hour)."""
    with OtlpSink() as sink:
        env = {**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "3600000"}
        args = ("--backend", "sim", "--backend-option", "cost=zero", "--otlp-endpoint",
                sink.endpoint, "--otlp-protocol", "http/json")  # fmt: skip
        with ServerProcess(args, env=env) as server:
            c = client(server)
            for _ in range(5):
                c.chat.completions.create(
                    model="sim-llm", messages=[{"role": "user", "content": "x"}], max_tokens=2
                )
            assert sink.spans == []  # nothing exported yet
            assert server.stop() is not None
        spans = sink.wait_for(lambda ss: len(ss) >= 25, timeout_s=5)
    assert sum(s.name == "POST /v1/chat/completions" for s in spans) == 5
    assert sum(s.name in STAGES for s in spans) == 20
