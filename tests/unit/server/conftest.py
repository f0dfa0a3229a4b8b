"""An in-process app with in-memory span exporter and a fresh metrics registry; no sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from open_autoglm.instrumented_servers import BackendOptions, ServerConfig, create_app
from open_autoglm.instrumented_servers.backends.sim._backend import SimBackend, SimConfig
from open_autoglm.telemetry import TrackingTracerProvider


@dataclass
class AppHarness:
    client: httpx.AsyncClient
    spans: InMemorySpanExporter
    registry: CollectorRegistry
    backend: SimBackend


@pytest.fixture
async def make_app() -> AsyncIterator[Callable[..., object]]:
    started: list[tuple[SimBackend, httpx.AsyncClient, TrackingTracerProvider]] = []

    async def factory(config: ServerConfig | None = None, **sim: str) -> AppHarness:
        exporter = InMemorySpanExporter()
        provider = TrackingTracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        registry = CollectorRegistry()
        opts = {"cost": "zero", **sim}
        backend = SimBackend("sim-llm", SimConfig.from_options(BackendOptions("sim", extra=opts)))
        app = create_app(backend, tracer_provider=provider, registry=registry, config=config)
        await backend.start()  # httpx's ASGI transport does not run the lifespan
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        started.append((backend, client, provider))
        return AppHarness(client, exporter, registry, backend)

    yield factory
    for backend, client, provider in started:
        await client.aclose()
        await backend.stop()
        provider.shutdown()
