"""Lean request spans through the ASGI middleware: the SERVER span, its children, the W3C
sampled flag honoured parent-based, the tail sampler's ratio on the span."""

from __future__ import annotations

from typing import Any

import httpx
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from open_autoglm.telemetry import (
    SamplingConfig,
    ServerSpanMiddleware,
    SpanOutlet,
    TailSampler,
    current_request_span,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    span = current_request_span()
    assert span is not None
    span.add_child("stage", 1_000, 2_000, {"k": 1})
    carrier: dict[str, str] = {}
    propagate.inject(carrier)  # what an upstream call would carry
    status = 500 if scope["path"] == "/fail" else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"x-traceparent", carrier["traceparent"].encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"ok"})


def _client(outlet: SpanOutlet) -> httpx.AsyncClient:
    app = ServerSpanMiddleware(_app, outlet, routes=("/v1/chat/completions",))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def _outlet(sampler: TailSampler | None = None) -> tuple[SpanOutlet, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    return SpanOutlet(SimpleSpanProcessor(memory), Resource.create({}), sampler), memory


async def test_continues_the_callers_trace_and_sends_its_own_context_on() -> None:
    outlet, memory = _outlet()
    async with _client(outlet) as client:
        r = await client.post(
            "/v1/chat/completions", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"}
        )
    spans: list[ReadableSpan] = list(memory.get_finished_spans())
    server = next(s for s in spans if s.kind is SpanKind.SERVER)
    child = next(s for s in spans if s.name == "stage")
    assert server.name == "POST /v1/chat/completions"
    assert server.context is not None
    assert format(server.context.trace_id, "032x") == TRACE
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == PARENT
    assert child.parent == server.context
    assert r.headers["x-traceparent"] == f"00-{TRACE}-{server.context.span_id:016x}-01"
    attrs = server.attributes or {}
    assert attrs["http.request.method"] == "POST"
    assert attrs["http.route"] == "/v1/chat/completions"
    assert attrs["url.path"] == "/v1/chat/completions"
    assert attrs["http.response.status_code"] == 200
    assert attrs["autoglm.sampling.ratio"] == 1.0
    assert attrs["autoglm.sampling.reason"] == "parent"


async def test_an_unsampled_caller_gets_no_spans_but_its_flag_propagates() -> None:
    outlet, memory = _outlet()
    async with _client(outlet) as client:
        r = await client.post("/x", headers={"traceparent": f"00-{TRACE}-{PARENT}-00"})
    assert memory.get_finished_spans() == ()
    assert r.headers["x-traceparent"].startswith(f"00-{TRACE}-")
    assert r.headers["x-traceparent"].endswith("-00")


async def test_server_errors_are_marked_and_unknown_paths_get_no_route() -> None:
    outlet, memory = _outlet()
    async with _client(outlet) as client:
        await client.get("/fail")
    (server,) = [s for s in memory.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.name == "GET"
    attrs = server.attributes or {}
    assert "http.route" not in attrs
    assert attrs["error.type"] == "500"
    assert server.status.status_code is StatusCode.ERROR


async def test_tail_sampling_drops_whole_requests_and_keeps_errors() -> None:
    sampler = TailSampler(SamplingConfig(budget_spans_per_s=1.0, slow_s=60.0))
    outlet, memory = _outlet(sampler)
    async with _client(outlet) as client:
        for _ in range(200):
            await client.get("/ok")
        await client.get("/fail")
    spans = list(memory.get_finished_spans())
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    stages = [s for s in spans if s.name == "stage"]
    assert len(servers) == len(stages)  # a request is kept or dropped whole
    assert 1 <= len(servers) < 50
    assert sampler.sampled_out == 200 - (len(servers) - 1)
    error = next(s for s in servers if (s.attributes or {}).get("error.type") == "500")
    assert (error.attributes or {})["autoglm.sampling.reason"] == "error"
    assert all("autoglm.sampling.ratio" in (s.attributes or {}) for s in servers)
    assert sampler.ratio() < 0.5  # load far over the budget: few ordinary requests kept


def test_no_current_request_span_outside_the_middleware() -> None:
    assert current_request_span() is None
    assert not trace.get_current_span().is_recording()


def test_a_bundle_encodes_exactly_as_its_sdk_spans() -> None:
    import orjson
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from open_autoglm.telemetry import BufferedSpanProcessor
    from open_autoglm.telemetry._otlp_json import encode_json

    class Null(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    processor = BufferedSpanProcessor(Null(), environ={})
    outlet = SpanOutlet(processor, Resource.create({"service.name": "svc"}))
    parent = trace.SpanContext(int(TRACE, 16), int(PARENT, 16), is_remote=True,
                               trace_flags=trace.TraceFlags(1))  # fmt: skip
    span = outlet.start("POST /v1/chat/completions", parent, {"http.request.method": "POST"})
    stage = span.add_child("decode", 1_000, 3_000, {"autoglm.decode.steps": 7},
                           [("first_token", 1_500)])  # fmt: skip
    span.add_child("detokenize", 2_000, 3_000, {"ratio": 0.5, "reasons": ("stop",)}, parent=stage)
    span.set_status(StatusCode.ERROR)
    span.add_event("retry", {"n": 1})
    span.end()
    lean = orjson.loads(encode_json([span]))
    sdk = orjson.loads(encode_json(span.readable_spans()))
    assert lean == sdk
    spans = lean["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert [s["name"] for s in spans] == ["decode", "detokenize", "POST /v1/chat/completions"]
    assert spans[1]["parentSpanId"] == spans[0]["spanId"]
    assert spans[2]["parentSpanId"] == PARENT
    processor.shutdown()


async def test_a_head_sampler_from_otel_traces_sampler_applies_to_roots() -> None:
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    memory = InMemorySpanExporter()
    outlet = SpanOutlet(
        SimpleSpanProcessor(memory), Resource.create({}),
        head_sampler=ParentBased(TraceIdRatioBased(0.25)),
    )  # fmt: skip
    async with _client(outlet) as client:
        for _ in range(400):
            await client.get("/ok")
        await client.get("/ok", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
    servers = [s for s in memory.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert 50 < len(servers) < 160  # about a quarter of the roots
    assert any(format(s.context.trace_id, "032x") == TRACE for s in servers if s.context)
