"""Collector ingest: spans/s stored from OTLP protobuf batches of 512, against the bare decode.

The ceiling is ``ExportTraceServiceRequest.FromString`` alone on the same payloads: the
fastest any Python receiver can turn bytes into messages. The rows after it add one step of
the real path at a time, so the table shows where the time goes:

1. decode + id checks: the least a receiver that answers OTLP partial success must do;
2. decode + flatten: the rows the store needs (ids to hex, attributes and events to JSON);
3. decode + flatten + DuckDB: the span writer on its own (no HTTP), until the file is closed;
4. HTTP end to end: ``open-autoglm collector`` as a child process (as a managed run starts
   it), two keep-alive client threads posting the batches, timed from the first post until
   the child has stored every span and exited after SIGTERM.

Payloads are spans shaped like the telemetry contract (client, server, tokenize, queue,
prefill and decode spans with their attributes, a ``first_token`` event), encoded by the
OpenTelemetry SDK's own OTLP encoder.

    python benchmarks/bench_collector.py [--batches 40] [--rounds 5]
"""

from __future__ import annotations

import argparse
import http.client
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from open_autoglm.collector import CollectorConfig, CollectorProcess, SpanStore
from open_autoglm.collector._decode import decode_protobuf, flatten
from open_autoglm.collector._writer import SpanWriter

BATCH = 512
SPANS_PER_REQUEST = 6  # client, server, tokenize, queue, prefill, decode


def make_payloads(batches: int) -> tuple[list[bytes], float]:
    """``batches`` serialized requests of 512 contract-shaped spans each, and the producer's
    spans/s: what the OpenTelemetry SDK itself takes to make, end and OTLP-encode them."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "open-autoglm-server", "autoglm.backend": "sim"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("open_autoglm", "0.1.0")
    needed = batches * BATCH
    started = time.perf_counter()
    for _ in range(-(-needed // SPANS_PER_REQUEST)):
        with (
            tracer.start_as_current_span(
                "chat smollm2-135m",
                kind=SpanKind.CLIENT,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "smollm2-135m",
                    "gen_ai.request.max_tokens": 128,
                    "gen_ai.usage.input_tokens": 54,
                    "gen_ai.usage.output_tokens": 128,
                    "gen_ai.response.time_to_first_chunk": 0.0123,
                },
            ),
            tracer.start_as_current_span(
                "POST /v1/chat/completions",
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": "POST",
                    "url.path": "/v1/chat/completions",
                    "http.response.status_code": 200,
                    "server.address": "127.0.0.1",
                    "server.port": 8000,
                    "network.protocol.version": "1.1",
                },
            ),
        ):
            with tracer.start_as_current_span(
                "tokenize", attributes={"gen_ai.usage.input_tokens": 54}
            ):
                pass
            with tracer.start_as_current_span("queue", attributes={"autoglm.queue.depth": 3}):
                pass
            with tracer.start_as_current_span(
                "prefill", attributes={"autoglm.batch.size": 4, "gen_ai.usage.input_tokens": 54}
            ):
                pass
            with tracer.start_as_current_span(
                "decode",
                attributes={
                    "gen_ai.usage.output_tokens": 128,
                    "autoglm.decode.steps": 128,
                    "autoglm.batch.mean_size": 3.5,
                },
            ) as decode:
                decode.add_event("first_token", {"autoglm.token.index": 0})
    spans = exporter.get_finished_spans()[:needed]
    payloads = [
        encode_spans(spans[i * BATCH : (i + 1) * BATCH]).SerializeToString() for i in range(batches)
    ]
    produced = needed / (time.perf_counter() - started)
    provider.shutdown()
    return payloads, produced


def best_rate(step: Callable[[bytes], object], payloads: Sequence[bytes], repeats: int) -> float:
    """Spans/s of ``step`` over every payload, best of ``repeats``."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for payload in payloads:
            step(payload)
        best = min(best, time.perf_counter() - started)
    return len(payloads) * BATCH / best


def decode_and_check_ids(payload: bytes) -> int:
    bad = 0
    for resource_spans in decode_protobuf(payload).resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    bad += 1
    return bad


def writer_rate(payloads: Sequence[bytes], rounds: int, folder: Path) -> float:
    """Spans/s through decode, flatten and the span writer, until the file is closed."""
    writer = SpanWriter(folder / "writer.duckdb")
    writer.open()
    started = time.perf_counter()
    for _ in range(rounds):
        for payload in payloads:
            writer.submit(flatten(decode_protobuf(payload)))
    stats = writer.close()
    elapsed = time.perf_counter() - started
    assert stats.stored_spans == rounds * len(payloads) * BATCH, stats
    return stats.stored_spans / elapsed


def http_rate(payloads: Sequence[bytes], rounds: int, folder: Path) -> tuple[float, float]:
    """(accepted spans/s, stored spans/s) through a collector child process over HTTP."""
    db = folder / "http.duckdb"
    config = CollectorConfig(db_path=db, grpc_port=None)
    child = CollectorProcess(config, log_level="WARNING").start()
    port = child.http_port
    assert port is not None
    work = [payload for _ in range(rounds) for payload in payloads]
    failures: list[str] = []

    def post(share: Sequence[bytes]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/x-protobuf"}
        for body in share:
            connection.request("POST", "/v1/traces", body=body, headers=headers)
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                failures.append(str(answer.status))
        connection.close()

    threads = [threading.Thread(target=post, args=(work[i::2],)) for i in range(2)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted_at = time.perf_counter()
    status = child.stop()
    stored_at = time.perf_counter()
    assert not failures, failures
    assert status == 0, status
    with SpanStore(db) as store:
        stored = store.span_count()
    assert stored == len(work) * BATCH, stored
    return stored / (accepted_at - started), stored / (stored_at - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="distinct 512-span payloads")
    parser.add_argument("--rounds", type=int, default=5, help="times each payload is sent")
    parser.add_argument("--repeats", type=int, default=5, help="best of N for in-memory rows")
    args = parser.parse_args()
    payloads, produced = make_payloads(args.batches)
    size = sum(map(len, payloads)) / len(payloads)
    print(
        f"payloads: {args.batches} x {BATCH} spans, {size / 1024:.0f} KiB each "
        f"({size / BATCH:.0f} B/span); the writer and HTTP rows send each {args.rounds} times"
    )
    ceiling = best_rate(ExportTraceServiceRequest.FromString, payloads, args.repeats)
    rows = [("decode: ExportTraceServiceRequest.FromString (ceiling)", ceiling)]
    rows.append(("decode + id checks", best_rate(decode_and_check_ids, payloads, args.repeats)))
    rows.append(
        (
            "decode + flatten to rows",
            best_rate(lambda p: flatten(decode_protobuf(p)), payloads, args.repeats),
        )
    )
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
        rows.append(
            (
                "decode + flatten + DuckDB (writer, no HTTP)",
                writer_rate(payloads, args.rounds, Path(tmp)),
            )
        )
        accepted, stored = http_rate(payloads, args.rounds, Path(tmp))
    rows.append(("HTTP end to end: accepted (200 answered)", accepted))
    rows.append(("HTTP end to end: stored (child flushed and exited)", stored))
    width = max(len(name) for name, _ in rows)
    print(f"\n{'stage':<{width}}  {'spans/s':>10}  {'of ceiling':>10}  {'us/span':>8}")
    for name, rate in rows:
        print(f"{name:<{width}}  {rate:>10,.0f}  {rate / ceiling:>10.1%}  {1e6 / rate:>8.2f}")
    print(
        f"\nproducer side, for scale: the OpenTelemetry SDK makes, ends and OTLP-encodes "
        f"{produced:,.0f} spans/s ({1e6 / produced:.2f} us/span) on one core; the collector "
        f"stores {stored / produced:.2f} spans per span produced in the same CPU time."
    )
    per_request = SPANS_PER_REQUEST
    print(f"stored end to end: {stored / per_request:,.0f} requests/s of {per_request} spans each.")


if __name__ == "__main__":
    main()
