"""A real collector on 127.0.0.1, ports picked by the OS, and SDK tracers that export to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from open_autoglm.collector import Collector, CollectorConfig


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    config = CollectorConfig(db_path=tmp_path / "spans.duckdb", max_body_bytes=1_000_000)
    with Collector(config) as running:
        yield running


@pytest.fixture
def traced_request() -> Callable[[SpanExporter, int], Sequence[ReadableSpan]]:
    """Export ``requests`` contract-shaped traces through ``exporter``; return the SDK spans."""

    def run(exporter: SpanExporter, requests: int) -> Sequence[ReadableSpan]:
        memory = InMemorySpanExporter()
        provider = TracerProvider(
            resource=Resource.create({"service.name": "it-server", "autoglm.backend": "sim"})
        )
        provider.add_span_processor(SimpleSpanProcessor(memory))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("open_autoglm.it", "0.1")
        for i in range(requests):
            with tracer.start_as_current_span(
                "POST /v1/chat/completions",
                kind=SpanKind.SERVER,
                attributes={"http.response.status_code": 200, "url.path": "/v1/chat"},
            ) as server:
                with tracer.start_as_current_span("tokenize", attributes={"n": i}):
                    pass
                with tracer.start_as_current_span(
                    "decode",
                    attributes={"gen_ai.usage.output_tokens": 16, "ratio": 0.5, "tags": ("a",)},
                    links=[Link(server.get_span_context())],
                ) as decode:
                    decode.add_event("first_token", {"autoglm.token.index": 0})
                    decode.set_status(Status(StatusCode.OK))
        provider.shutdown()
        return memory.get_finished_spans()

    return run
