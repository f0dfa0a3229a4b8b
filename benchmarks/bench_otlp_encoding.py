"""Encoding cost per span: the SDK's OTLP protobuf encoder against our OTLP JSON encoder.

The spans are shaped like one request of the instrumented server (SERVER span with HTTP and
GenAI attributes, four stage spans, a ``first_token`` event), made by the real SDK. Both
encoders run on the same batches of 512 spans, side by side, best of ``--rounds``.

    python benchmarks/bench_otlp_encoding.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import time

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from open_autoglm.telemetry import names as n
from open_autoglm.telemetry._otlp_json import encode_json


def request_spans(requests: int) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "server"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer(n.TRACER_NAME)
    for _ in range(requests):
        with tracer.start_as_current_span(
            "POST /v1/chat/completions",
            kind=SpanKind.SERVER,
            attributes={"http.request.method": "POST", "url.path": "/v1/chat/completions",
                        "http.response.status_code": 200, n.GEN_AI_REQUEST_MODEL: "sim-llm",
                        n.GEN_AI_USAGE_INPUT_TOKENS: 128, n.GEN_AI_USAGE_OUTPUT_TOKENS: 64,
                        n.GEN_AI_RESPONSE_FINISH_REASONS: ("length",), n.ATTR_BACKEND: "sim"},
        ):  # fmt: skip
            for stage, attrs in (
                (n.SPAN_TOKENIZE, {n.GEN_AI_USAGE_INPUT_TOKENS: 128}),
                (n.SPAN_QUEUE, {n.ATTR_QUEUE_DEPTH: 3}),
                (n.SPAN_PREFILL, {n.ATTR_BATCH_SIZE: 4, n.ATTR_PROMPT_TOKENS: 128,
                                  n.ATTR_CACHED_TOKENS: 0}),
                (n.SPAN_DECODE, {n.ATTR_OUTPUT_TOKENS: 64, n.ATTR_DECODE_STEPS: 63,
                                 n.ATTR_MEAN_BATCH_SIZE: 3.5, n.ATTR_PREEMPTIONS: 0}),
            ):  # fmt: skip
                with tracer.start_as_current_span(stage, attributes=attrs) as span:
                    if stage == n.SPAN_DECODE:
                        span.add_event(n.EVENT_FIRST_TOKEN)
    provider.shutdown()
    return list(memory.get_finished_spans())


def best_us_per_span(encode, batches: list[list[ReadableSpan]], rounds: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    spans = sum(len(b) for b in batches)
    for _ in range(rounds):
        start = time.perf_counter()
        for batch in batches:
            encode(batch)
        best = min(best, time.perf_counter() - start)
    return best / spans * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2048)
    args = parser.parse_args()
    spans = request_spans(args.requests)
    batches = [spans[i : i + 512] for i in range(0, len(spans), 512)]
    proto = best_us_per_span(lambda b: encode_spans(b).SerializeToString(), batches, args.rounds)
    json_ = best_us_per_span(encode_json, batches, args.rounds)
    print(f"{len(spans)} spans in batches of 512, best of {args.rounds}")
    print()
    print("| encoder | µs per span | µs per request (5 spans) |")
    print("|---|---|---|")
    print(f"| SDK OTLP protobuf | {proto:.1f} | {5 * proto:.0f} |")
    print(f"| ours, OTLP JSON (orjson) | {json_:.1f} | {5 * json_:.0f} |")
    print(f"| ratio | {proto / json_:.1f}× | |")


if __name__ == "__main__":
    main()
