"""Tracer-provider set-up that honours the standard ``OTEL_*`` variables and exports OTLP.

Read here (signal-specific ``OTEL_EXPORTER_OTLP_TRACES_*`` forms win over the generic ones):
``OTEL_EXPORTER_OTLP_{ENDPOINT,PROTOCOL,HEADERS,COMPRESSION,TIMEOUT,CERTIFICATE}``,
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES`` (its ``service.name`` wins over our
default), ``OTEL_SDK_DISABLED``, ``OTEL_TRACES_EXPORTER=none``; the batch processor reads
``OTEL_BSP_*`` (:mod:`open_autoglm.telemetry._batch`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from open_autoglm.errors import OpenAutoGLMError
from open_autoglm.telemetry._batch import BufferedSpanProcessor
from open_autoglm.telemetry._request_spans import SpanOutlet
from open_autoglm.telemetry._sampling import SamplingConfig, TailSampler

logger = logging.getLogger(__name__)

Protocol = Literal["http/protobuf", "http/json", "grpc"]
_PROTOCOLS: tuple[Protocol, ...] = ("http/protobuf", "http/json", "grpc")
Compression = Literal["none", "gzip"]
DEFAULT_EXPORT_TIMEOUT_S = 10.0


def _pairs(raw: str, what: str) -> dict[str, str]:
    """``key1=value1,key2=value2`` (values URL-encoded), as the OTLP exporter spec says."""
    out: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TelemetryConfigError(f"{what}: expected key=value pairs, got {item.strip()!r}")
        out[unquote(key.strip())] = unquote(value.strip())
    return out


def _setting(env: Mapping[str, str], suffix: str) -> str | None:
    return env.get(f"OTEL_EXPORTER_OTLP_TRACES_{suffix}") or env.get(f"OTEL_EXPORTER_OTLP_{suffix}")


class TelemetryError(OpenAutoGLMError):
    """Base of every error the telemetry set-up raises."""


class TelemetryConfigError(TelemetryError, ValueError):
    """A telemetry setting that cannot work (an unknown OTLP protocol, say)."""


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """Where and how spans go. Build it once, with :meth:`from_env`, in the CLI.

    ``endpoint`` is the collector's base address (``http://127.0.0.1:4318`` for HTTP,
    ``http://127.0.0.1:4317`` for gRPC). ``None`` means no export: spans are still made (their
    trace ids feed exemplars and ``traceparent``) but go nowhere.
    """

    service_name: str
    endpoint: str | None = None
    protocol: Protocol = "http/protobuf"
    traces_endpoint: str | None = None  # full URL from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
    #: Sent with every export (e.g. an ``authorization`` header), never logged.
    headers: tuple[tuple[str, str], ...] = ()
    compression: Compression = "none"
    timeout_s: float = DEFAULT_EXPORT_TIMEOUT_S
    #: PEM file of the CA to trust for an ``https`` endpoint (default: the system's).
    certificate: str | None = None

    @classmethod
    def from_env(
        cls,
        default_service_name: str,
        endpoint: str | None = None,
        protocol: str | None = None,
        environ: dict[str, str] | None = None,
    ) -> TracingConfig:
        """Explicit arguments win over ``OTEL_*`` variables, which win over defaults."""
        env = os.environ if environ is None else environ
        proto: str = (
            protocol
            or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        )
        if proto not in _PROTOCOLS:
            raise TelemetryConfigError(
                f"unsupported OTLP protocol {proto!r}; use one of {', '.join(_PROTOCOLS)}"
            )
        disabled = env.get("OTEL_SDK_DISABLED", "").lower() == "true" or (
            env.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "none"
        )
        traces_endpoint = None
        if endpoint is None and not disabled:
            traces_endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or None
            endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
        if disabled:
            endpoint = None
        resource = _pairs(env.get("OTEL_RESOURCE_ATTRIBUTES", ""), "OTEL_RESOURCE_ATTRIBUTES")
        service = env.get("OTEL_SERVICE_NAME") or resource.get(SERVICE_NAME) or default_service_name
        compression = (_setting(env, "COMPRESSION") or "none").strip().lower()
        if compression not in ("none", "gzip"):
            raise TelemetryConfigError(
                f"unsupported OTLP compression {compression!r}; use gzip or none"
            )
        raw_timeout = _setting(env, "TIMEOUT")
        timeout_s = DEFAULT_EXPORT_TIMEOUT_S
        if raw_timeout:
            try:
                timeout_s = float(raw_timeout) / 1000  # the variable is in milliseconds
            except ValueError as exc:
                raise TelemetryConfigError(
                    f"OTEL_EXPORTER_OTLP_TIMEOUT must be milliseconds, got {raw_timeout!r}"
                ) from exc
            if timeout_s <= 0:
                raise TelemetryConfigError("OTEL_EXPORTER_OTLP_TIMEOUT must be positive")
        headers = _pairs(env.get("OTEL_EXPORTER_OTLP_HEADERS", ""), "OTEL_EXPORTER_OTLP_HEADERS")
        headers |= _pairs(
            env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS", ""), "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
        )
        return cls(
            service_name=service,
            endpoint=endpoint,
            protocol=proto,
            traces_endpoint=traces_endpoint,
            headers=tuple(headers.items()),
            compression="gzip" if compression == "gzip" else "none",
            timeout_s=timeout_s,
            certificate=_setting(env, "CERTIFICATE") or None,
        )

    @property
    def exports(self) -> bool:
        return self.endpoint is not None or self.traces_endpoint is not None


def make_exporter(config: TracingConfig) -> SpanExporter | None:
    """The OTLP span exporter for ``config``, or ``None`` when nothing is to be exported."""
    if not config.exports:
        return None
    if config.protocol == "grpc":
        from grpc import Compression as GrpcCompression
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        target = config.traces_endpoint or config.endpoint
        insecure = target is not None and target.startswith("http://")
        return GrpcExporter(
            endpoint=target,
            insecure=insecure,
            headers=dict(config.headers) or None,
            compression=GrpcCompression.Gzip
            if config.compression == "gzip"
            else GrpcCompression.NoCompression,
            timeout=config.timeout_s,
        )
    if config.traces_endpoint is not None:
        url = config.traces_endpoint
    else:
        assert config.endpoint is not None
        url = config.endpoint.rstrip("/")
        if not url.endswith("/v1/traces"):
            url += "/v1/traces"
    if config.protocol == "http/json":
        from open_autoglm.telemetry._otlp_json import OtlpJsonSpanExporter

        return OtlpJsonSpanExporter(
            url,
            timeout_s=config.timeout_s,
            headers=dict(config.headers),
            compression=config.compression,
            certificate=config.certificate,
        )
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(
        endpoint=url,
        headers=dict(config.headers) or None,
        compression=HttpCompression.Gzip
        if config.compression == "gzip"
        else HttpCompression.NoCompression,
        timeout=config.timeout_s,
        certificate_file=config.certificate,
    )


class TrackingTracerProvider(TracerProvider):
    """A :class:`TracerProvider` that also lists the span processors added to it.

    Spans known only after the fact (the server's stage spans, whose start and end come from
    the engine's stamps) can then be handed, finished, straight to those processors, at about
    a quarter of the cost of ``tracer.start_span(...).end()``, without reaching into the
    SDK's private state. Everything else is the SDK's provider unchanged.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._added: list[SpanProcessor] = []

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self._added.append(span_processor)

    @property
    def span_processors(self) -> tuple[SpanProcessor, ...]:
        """The processors added so far, in the order they were added."""
        return tuple(self._added)


def make_tracer_provider(
    config: TracingConfig,
    extra_processors: tuple[SpanProcessor, ...] = (),
    resource_attributes: Mapping[str, str] | None = None,
) -> TrackingTracerProvider:
    """A tracer provider with the resource and sampler from ``OTEL_*`` and an OTLP exporter.

    The sampler comes from ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG`` (the SDK reads
    them); resource attributes from ``OTEL_RESOURCE_ATTRIBUTES``, then ``resource_attributes``
    (what the process knows of itself, e.g. the device its engine runs on). A collector that
    is down never fails the caller: the batch processor buffers, retries, and counts what it
    must drop (:class:`~open_autoglm.telemetry._batch.BufferedSpanProcessor`).
    """
    return make_tracing(config, extra_processors, resource_attributes).provider


@dataclass(frozen=True, slots=True)
class Tracing:
    """A process's tracing: the SDK provider, the export processor (``None`` when nothing is
    exported; its ``exported``/``dropped`` counters feed ``/metrics``), and the outlet of the
    lean request spans (same processors, plus the tail sampler)."""

    provider: TrackingTracerProvider
    exporter: BufferedSpanProcessor | None
    outlet: SpanOutlet

    def shutdown(self) -> None:
        """Flush and stop export (the provider shuts its processors down): a few seconds at
        most when the collector is down or hung (:data:`~open_autoglm.telemetry._batch.
        SHUTDOWN_STALL_S`), what could not be sent counted as dropped."""
        self.provider.shutdown()

    def abandon(self) -> None:
        """Stop waiting for the collector (a second stop signal; safe in a signal handler):
        a :meth:`shutdown` running or to come counts what is queued as dropped at once."""
        if self.exporter is not None:
            self.exporter.abandon()

    def stats(self) -> dict[str, int]:
        """Spans exported and dropped, spans still queued, requests the sampler left out."""
        exporter, sampler = self.exporter, self.outlet.sampler
        return {
            "spans_exported": exporter.exported if exporter else 0,
            "spans_dropped": exporter.dropped if exporter else 0,
            "spans_queued": exporter.queued if exporter else 0,
            "traces_sampled_out": sampler.sampled_out if sampler else 0,
        }

    def write_stats(self, path: Path) -> None:
        """:meth:`stats` as JSON in ``path`` (after :meth:`shutdown`: the final counts), so a
        run's report can say whether any span was lost."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.stats()) + "\n", encoding="utf-8")
        tmp.replace(path)


class _FanOut(SpanProcessor):
    """The processors of one process, for spans the outlet hands over finished."""

    def __init__(self, processors: tuple[SpanProcessor, ...]) -> None:
        self._processors = processors

    def on_end(self, span: Any) -> None:
        for processor in self._processors:
            processor.on_end(span)


def make_tracing(
    config: TracingConfig,
    extra_processors: tuple[SpanProcessor, ...] = (),
    resource_attributes: Mapping[str, str] | None = None,
    sampling: SamplingConfig | None = None,
) -> Tracing:
    """Provider, export processor and request-span outlet for ``config`` (see
    :func:`make_tracer_provider`); ``sampling`` with a budget turns on tail sampling of
    request spans (default: keep every request)."""
    resource = Resource.create({**(resource_attributes or {}), SERVICE_NAME: config.service_name})
    provider = TrackingTracerProvider(resource=resource)
    exporter = make_exporter(config)
    batch = None if exporter is None else BufferedSpanProcessor(exporter)
    processors = ((batch,) if batch is not None else ()) + extra_processors
    for processor in processors:
        provider.add_span_processor(processor)
    if batch is not None:
        logger.info("exporting spans over OTLP %s", config.protocol)
    sampler = (
        TailSampler(sampling)
        if sampling is not None and sampling.budget_spans_per_s is not None
        else None
    )
    return Tracing(provider, batch, _outlet(provider, processors, sampler))


def _outlet(
    provider: TracerProvider, processors: tuple[SpanProcessor, ...], sampler: TailSampler | None
) -> SpanOutlet:
    target: SpanProcessor = processors[0] if len(processors) == 1 else _FanOut(processors)
    # OTEL_TRACES_SAMPLER (read by the SDK into provider.sampler) applies at the start of each
    # request; unset, the SDK's default (parent-based, roots on) is what the outlet does anyway
    head = provider.sampler if os.environ.get("OTEL_TRACES_SAMPLER") else None
    return SpanOutlet(target, provider.resource, sampler, provider.id_generator, head_sampler=head)


def outlet_for(provider: TracerProvider, sampler: TailSampler | None = None) -> SpanOutlet | None:
    """A request-span outlet onto ``provider``'s processors, when it lists them (a
    :class:`TrackingTracerProvider`); ``None`` for any other provider (then use the SDK)."""
    if not isinstance(provider, TrackingTracerProvider):
        return None
    return _outlet(provider, provider.span_processors, sampler)
