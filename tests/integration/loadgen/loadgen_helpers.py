"""Building and running load-generator configs in tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from open_autoglm.loadgen import (
    BenchmarkConfig,
    BenchmarkResults,
    EndpointConfig,
    LengthDistribution,
    ProfileConfig,
    RequestRecord,
    WorkloadConfig,
    read_records,
    run_benchmark_async,
)


def make_config(
    url: str,
    tmp_path: Path,
    *,
    api: Any = "chat",
    timeout_s: float = 10.0,
    model: str | None = None,
    input_len: int = 16,
    output_len: int = 8,
    images: int = 0,
    ignore_eos: bool = True,
    **profile: Any,
) -> BenchmarkConfig:
    profile.setdefault("requests", 1)
    return BenchmarkConfig(
        endpoint=EndpointConfig(
            url=url, api=api, model=model, timeout_s=timeout_s, ignore_eos=ignore_eos
        ),
        profile=ProfileConfig(**profile),
        workload=WorkloadConfig(
            input_len=LengthDistribution(input_len),
            output_len=LengthDistribution(output_len),
            images=images,
            image_size=(64, 64),
            pool_size=64,
        ),
        output_path=tmp_path / "results.json",
    )


async def run(
    config: BenchmarkConfig,
) -> tuple[BenchmarkResults, list[RequestRecord], InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    results = await run_benchmark_async(config, tracer_provider=provider)
    path = config.resolved_records_path
    assert path is not None
    return results, read_records(path), exporter


def chat_chunk(content: str | None = None, *, role: bool = False, finish: str | None = None) -> str:
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    body = {"id": "x", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n"


def delta_chunk(finish: str | None = None, **delta: Any) -> str:
    """A chat chunk with any delta fields (``reasoning``, ``tool_calls``, ...)."""
    body = {"id": "x", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n"


def usage_chunk(prompt: int, completion: int) -> str:
    body = {"id": "x", "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n"


@dataclass
class Crafted:
    """The crafted server: ``url(route)`` is a base URL whose chat endpoint runs ``route``."""

    base: str
    seen: list[dict[str, Any]] = field(default_factory=list)  # headers and body per request

    def url(self, route: str) -> str:
        return f"{self.base}/{route}"


@dataclass
class OtlpReceiver:
    endpoint: str
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)

    def spans(self) -> list[tuple[str, Any]]:
        """(service name, span) for every span received."""
        out = []
        for req in self.requests:
            for rs in req.resource_spans:
                service = next(
                    (a.value.string_value for a in rs.resource.attributes
                     if a.key == "service.name"), "")  # fmt: skip
                for ss in rs.scope_spans:
                    out.extend((service, span) for span in ss.spans)
        return out
