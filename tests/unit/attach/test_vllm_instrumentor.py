"""The vLLM instrumentor without vLLM: a stand-in ``AsyncLLM`` module shaped like vLLM 0.32's
(``generate`` an async generator of ``RequestOutput`` with ``RequestStateStats``), the real
OTel SDK with an in-memory exporter, and a fresh Prometheus registry per test."""

from __future__ import annotations

import enum
import logging
import re
import subprocess
import sys
import time
import types
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest

from open_autoglm.attach import VllmInstrumentor
from open_autoglm.telemetry import names as n

MODULE = "vllm.v1.engine.async_llm"
EXEMPLAR = re.compile(r'# \{trace_id="([0-9a-f]{32})"\}')


class OutputKind(enum.Enum):  # vllm.sampling_params.RequestOutputKind
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@dataclass
class Params:
    max_tokens: int = 4
    output_kind: OutputKind = OutputKind.DELTA


@dataclass
class Stats:  # vllm.v1.metrics.stats.RequestStateStats
    arrival_time: float = 0.0
    queued_ts: float = 0.0
    scheduled_ts: float = 0.0
    first_token_ts: float = 0.0
    last_token_ts: float = 0.0
    num_generation_tokens: int = 0
    num_preemptions: int = 0


@dataclass
class Completion:
    token_ids: list[int]
    finish_reason: str | None = None
    text: str = ""


@dataclass
class Output:  # vllm.outputs.RequestOutput
    outputs: list[Completion]
    finished: bool
    metrics: Any
    prompt_token_ids: list[int] = field(default_factory=lambda: [1] * 12)
    num_cached_tokens: int = 0


@dataclass
class ModelConfig:
    served_model_name: str = "smollm2-135m"


class FakeAsyncLLM:
    """Streams ``tokens`` outputs, stamping the stats as vLLM's front end does."""

    def __init__(self, tokens: int = 4, metrics: Any = None) -> None:
        self.model_config = ModelConfig()
        self.tokens = tokens
        self.metrics = metrics
        self.closed = False
        self.stats = Stats()

    async def generate(
        self, prompt: Any, sampling_params: Params, request_id: str, **kwargs: Any
    ) -> AsyncGenerator[Output, None]:
        now = time.monotonic()
        stats = self.stats
        stats.arrival_time = time.time() - 0.004  # the renderer started 4 ms ago
        stats.queued_ts, stats.scheduled_ts = now - 0.001, now + 0.010
        stats.first_token_ts = now + 0.030
        try:
            for i in range(self.tokens):
                last = i == self.tokens - 1
                stats.last_token_ts = now + 0.030 + 0.005 * i
                stats.num_generation_tokens = i + 1
                yield Output(
                    [Completion([100 + i], "length" if last else None)],
                    finished=last,
                    metrics=self.metrics if self.metrics is not None else stats,
                )
        finally:
            self.closed = True


class BrokenStats:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("internals moved")


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType(MODULE)
    module.AsyncLLM = FakeAsyncLLM  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, MODULE, module)
    return module


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def instrumented(
    fake_vllm: types.ModuleType, provider: TracerProvider, registry: CollectorRegistry
) -> Iterator[VllmInstrumentor]:
    original = FakeAsyncLLM.__dict__["generate"]
    instrumentor = VllmInstrumentor()
    instrumentor.instrument(tracer_provider=provider, registry=registry, instrument_fastapi=False)
    yield instrumentor
    instrumentor.uninstrument()
    assert FakeAsyncLLM.__dict__["generate"] is original


async def serve_one(
    provider: TracerProvider, engine: FakeAsyncLLM, params: Params, stop_after: int | None = None
) -> tuple[int, int]:
    """One request under a SERVER span, as vLLM's handler runs it; (trace id, span id)."""
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /v1/chat/completions", kind=SpanKind.SERVER) as span:
        outputs = engine.generate({"prompt_token_ids": [1] * 12}, params, "req-1")
        seen = 0
        async for _ in outputs:
            seen += 1
            if stop_after is not None and seen >= stop_after:
                break
        await outputs.aclose()  # the client went away: vLLM's handler closes the stream
        context = span.get_span_context()
    return context.trace_id, context.span_id


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


async def test_a_streamed_request_gets_stage_spans_under_its_server_span(
    instrumented: VllmInstrumentor,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    registry: CollectorRegistry,
) -> None:
    assert instrumented.patched
    engine = FakeAsyncLLM(tokens=4)
    trace_id, server_id = await serve_one(provider, engine, Params())
    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {"POST /v1/chat/completions", *(n.SPAN_TOKENIZE, n.SPAN_QUEUE,
                          n.SPAN_PREFILL, n.SPAN_DECODE)}  # fmt: skip
    for stage in (n.SPAN_TOKENIZE, n.SPAN_QUEUE, n.SPAN_PREFILL, n.SPAN_DECODE):
        span = spans[stage]
        assert span.parent is not None
        assert span.parent.span_id == server_id, stage
        assert span.context is not None
        assert span.context.trace_id == trace_id
        assert span.kind == SpanKind.INTERNAL

    def ms(name: str) -> float:
        span = spans[name]
        assert span.start_time is not None
        assert span.end_time is not None
        return (span.end_time - span.start_time) / 1e6

    # vLLM's own formulas on its stamps: queue 11 ms, prefill 20 ms, decode 3 x 5 ms
    assert ms(n.SPAN_QUEUE) == pytest.approx(11.0, abs=0.01)
    assert ms(n.SPAN_PREFILL) == pytest.approx(20.0, abs=0.01)
    assert ms(n.SPAN_DECODE) == pytest.approx(15.0, abs=0.01)
    assert ms(n.SPAN_TOKENIZE) == pytest.approx(4.0, abs=2.0)  # arrival → generate()
    server = spans["POST /v1/chat/completions"].attributes or {}
    assert server[n.GEN_AI_USAGE_INPUT_TOKENS] == 12
    assert server[n.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert server[n.GEN_AI_RESPONSE_FINISH_REASONS] == ("length",)
    assert server[n.ATTR_BACKEND] == "vllm"
    assert server[n.GEN_AI_OPERATION_NAME] == n.OPERATION_CHAT
    assert (spans[n.SPAN_DECODE].attributes or {})[n.ATTR_DECODE_STEPS] == 3
    text = generate_latest(registry).decode()
    exemplars = set(EXEMPLAR.findall(text))
    assert exemplars == {format(trace_id, "032x")}
    labels = {n.LABEL_MODEL: "smollm2-135m", n.LABEL_PROVIDER: "vllm", n.LABEL_OPERATION: "chat"}
    assert registry.get_sample_value(f"{n.METRIC_TTFT}_count", labels) == 1
    assert f'stage="{n.SPAN_QUEUE}"' in text


async def test_a_request_without_streaming_takes_vllms_first_token_stamp(
    instrumented: VllmInstrumentor, provider: TracerProvider, registry: CollectorRegistry
) -> None:
    engine = FakeAsyncLLM(tokens=1)
    await serve_one(provider, engine, Params(output_kind=OutputKind.FINAL_ONLY))
    sample = registry.get_sample_value(
        f"{n.METRIC_TTFT}_sum",
        {n.LABEL_MODEL: "smollm2-135m", n.LABEL_PROVIDER: "vllm", n.LABEL_OPERATION: "chat"},
    )
    # arrival (4 ms before generate) to the engine's first token (31 ms after queueing)
    assert sample == pytest.approx(0.035, abs=0.003)


async def test_a_client_that_goes_away_closes_vllms_stream_and_counts_no_latency(
    instrumented: VllmInstrumentor,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    registry: CollectorRegistry,
) -> None:
    engine = FakeAsyncLLM(tokens=10)
    await serve_one(provider, engine, Params(max_tokens=10), stop_after=2)
    assert engine.closed  # vLLM aborts the request when its generator is closed
    server = by_name(exporter.get_finished_spans())["POST /v1/chat/completions"]
    assert (server.attributes or {})[n.ATTR_CANCELLED] is True
    labels = {n.LABEL_MODEL: "smollm2-135m", n.LABEL_PROVIDER: "vllm", n.LABEL_OPERATION: "chat"}
    assert registry.get_sample_value(f"{n.METRIC_TTFT}_count", labels) is None


async def test_instrumentation_failures_never_fail_the_request(
    instrumented: VllmInstrumentor,
    provider: TracerProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = FakeAsyncLLM(tokens=3, metrics=BrokenStats())
    with caplog.at_level(logging.WARNING, logger="open_autoglm.attach._vllm_instrumentor"):
        for _ in range(3):
            await serve_one(provider, engine, Params())
    failures = [r for r in caplog.records if "instrumentation failed" in r.getMessage()]
    assert len(failures) == 1  # logged once, not per request


def test_instrument_is_idempotent_and_uninstrument_restores(
    fake_vllm: types.ModuleType, provider: TracerProvider, registry: CollectorRegistry
) -> None:
    original = FakeAsyncLLM.__dict__["generate"]
    instrumentor = VllmInstrumentor()
    instrumentor.instrument(tracer_provider=provider, registry=registry, instrument_fastapi=False)
    wrapped = FakeAsyncLLM.__dict__["generate"]
    assert wrapped is not original
    instrumentor.instrument(tracer_provider=provider, registry=registry, instrument_fastapi=False)
    assert FakeAsyncLLM.__dict__["generate"] is wrapped  # not wrapped twice
    instrumentor.uninstrument()
    assert FakeAsyncLLM.__dict__["generate"] is original
    assert not instrumentor.patched
    instrumentor.uninstrument()  # a second undo is harmless


def test_missing_vllm_internals_are_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    moved = types.ModuleType(MODULE)  # a vLLM whose AsyncLLM went elsewhere
    monkeypatch.setitem(sys.modules, MODULE, moved)
    instrumentor = VllmInstrumentor()
    with caplog.at_level(logging.WARNING, logger="open_autoglm.attach._vllm_instrumentor"):
        instrumentor.instrument(registry=CollectorRegistry(), instrument_fastapi=False)
        session = instrumentor._session
        assert session is not None
        session.on_async_llm(moved)  # imported again (a reload): still one line
        session.on_api_server(moved)
        instrumentor.uninstrument()
    lines = [r.getMessage() for r in caplog.records if "internals moved" in r.getMessage()]
    assert len(lines) == 1


def test_without_vllm_it_imports_cleanly_and_does_nothing() -> None:
    script = (
        "import sys\n"
        "from open_autoglm.attach import VllmInstrumentor\n"
        "i = VllmInstrumentor()\n"
        "i.instrument()\n"
        "assert not i.patched\n"
        "assert not any(m == 'vllm' or m.startswith('vllm.') for m in sys.modules), 'vllm'\n"
        "i.uninstrument()\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_fastapi_gets_the_contracts_settings_even_when_instrumented_first(
    fake_vllm: types.ModuleType,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    registry: CollectorRegistry,
) -> None:
    import fastapi
    from fastapi.testclient import TestClient
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    plain = fastapi.FastAPI
    # what ``opentelemetry-instrument`` does when its FastAPI entry point loads first
    FastAPIInstrumentor().instrument()
    instrumentor = VllmInstrumentor()
    instrumentor.instrument(tracer_provider=provider, registry=registry)
    try:
        app = fastapi.FastAPI()  # vLLM builds its app after AsyncLLM is imported

        @app.post("/v1/chat/completions")
        async def chat() -> dict[str, str]:
            return {"ok": "yes"}

        @app.get("/metrics")
        async def metrics() -> dict[str, str]:
            return {}

        with TestClient(app) as client:
            assert client.post("/v1/chat/completions").status_code == 200
            assert client.get("/metrics").status_code == 200
        names = [s.name for s in exporter.get_finished_spans()]
        assert names == ["POST /v1/chat/completions"]  # no send/receive, no /metrics span
    finally:
        instrumentor.uninstrument()
    assert fastapi.FastAPI is plain
    assert not FastAPIInstrumentor().is_instrumented_by_opentelemetry


async def test_metrics_route_negotiates_openmetrics_so_exemplars_reach_the_scraper(
    fake_vllm: types.ModuleType, provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fastapi
    from fastapi.testclient import TestClient
    from prometheus_client import REGISTRY, generate_latest

    router = types.ModuleType("vllm.entrypoints.serve.instrumentator.metrics")

    def attach_router(app: fastapi.FastAPI) -> None:  # vLLM's: the text format only
        @app.get("/metrics")
        async def text_only() -> fastapi.Response:
            return fastapi.Response(generate_latest(REGISTRY), media_type="text/plain")

    router.attach_router = attach_router  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, router.__name__, router)
    instrumentor = VllmInstrumentor()
    instrumentor.instrument(tracer_provider=provider, instrument_fastapi=False)
    try:
        trace_id, _ = await serve_one(provider, FakeAsyncLLM(tokens=2), Params())
        app = fastapi.FastAPI()
        router.attach_router(app)  # type: ignore[attr-defined]
        with TestClient(app) as client:
            open_metrics = client.get(
                "/metrics", headers={"Accept": "application/openmetrics-text"}
            )
            text = client.get("/metrics")
        assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
        assert format(trace_id, "032x") in set(EXEMPLAR.findall(open_metrics.text))
        assert text.headers["content-type"].startswith("text/plain")
        assert f"{n.METRIC_TTFT}_count" in text.text
        assert not EXEMPLAR.search(text.text)
    finally:
        instrumentor.uninstrument()
    assert router.attach_router is attach_router  # type: ignore[attr-defined]
    assert (
        REGISTRY.get_sample_value(
            f"{n.METRIC_TTFT}_count",
            {n.LABEL_MODEL: "smollm2-135m", n.LABEL_PROVIDER: "vllm", n.LABEL_OPERATION: "chat"},
        )
        is None
    )  # our metrics left vLLM's registry with uninstrument()
