"""Typed descriptions of the dashboards' queries, built from the telemetry contract.

Every metric name, label and span name comes from :mod:`open_autoglm.telemetry`; nothing here
retypes them. A :class:`PromQuery` says which part of the stack must run for it to return data
(``source``), so a test can prove each query against a real Prometheus scraping a real server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from open_autoglm.telemetry import names as n

#: What has to be running for a query to return data:
#: ``server`` — the instrumented server's ``/metrics`` under load (any backend);
#: ``server_errors`` — the same, once some request has failed;
#: ``gpu`` — a server that found a GPU through NVML;
#: ``vllm`` — vLLM's own metrics scraped from the same instance;
#: ``collector`` — the OpenTelemetry Collector's span metrics (the docker compose stack);
#: ``proxy`` — an ``open-autoglm proxy`` scraped beside the server.
Source = Literal["server", "server_errors", "gpu", "vllm", "collector", "proxy"]

# Grafana template variables (names of the dashboard variables, see ``_render.py``).
VAR_BACKEND: Final = "backend"
VAR_MODEL: Final = "model"
VAR_INSTANCE: Final = "instance"
VAR_MIN_DURATION: Final = "min_duration"
RATE_WINDOW: Final = "$__rate_interval"

#: vLLM's own gauge of KV-cache use, 0..1 (``vllm:kv_cache_usage_perc`` from vLLM 0.10,
#: ``vllm:gpu_cache_usage_perc`` before); not part of our contract, so named here.
VLLM_KV_CACHE_USAGE: Final = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")

#: Span metrics of the collector's ``spanmetrics`` connector as its Prometheus exporter names
#: them (namespace ``traces.span.metrics``, unit seconds; see ``deploy/otelcol-config.yaml``).
SPANMETRICS_DURATION: Final = "traces_span_metrics_duration_seconds"
SPANMETRICS_CALLS: Final = "traces_span_metrics_calls_total"
SPANMETRICS_SPAN_NAME: Final = "span_name"
SPANMETRICS_SERVICE_NAME: Final = "service_name"

QUANTILES: Final = (0.5, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class PromQuery:
    """One PromQL target of a panel."""

    expr: str
    legend: str = ""
    source: Source = "server"
    exemplar: bool = False
    instant: bool = False


@dataclass(frozen=True, slots=True)
class TraceQuery:
    """One TraceQL search of a table panel."""

    traceql: str
    table: Literal["traces", "spans"] = "traces"
    limit: int = 20


def selector(*, instance: bool = True) -> str:
    """The label matchers every server metric is filtered by (the dashboard variables)."""
    matchers = [f'{n.LABEL_PROVIDER}=~"${VAR_BACKEND}"', f'{n.LABEL_MODEL}=~"${VAR_MODEL}"']
    if instance:
        matchers.append(f'instance=~"${VAR_INSTANCE}"')
    return "{" + ", ".join(matchers) + "}"


def rate(metric: str, *, by: tuple[str, ...] = ()) -> str:
    """``sum [by (...)] (rate(metric{selector}[$__rate_interval]))``."""
    grouping = f" by ({', '.join(by)})" if by else ""
    return f"sum{grouping} (rate({metric}{selector()}[{RATE_WINDOW}]))"


def quantile(histogram: str, q: float, *, by: tuple[str, ...] = ()) -> str:
    """The ``q`` quantile of a Prometheus histogram over the selected series."""
    return f"histogram_quantile({q}, {rate(histogram + '_bucket', by=('le', *by))})"


def quantile_queries(histogram: str, *, by: tuple[str, ...] = ()) -> tuple[PromQuery, ...]:
    """P50, P95 and P99 of a histogram, with exemplars (the trace ids of the requests)."""
    label = "".join(f"{{{{{key}}}}} " for key in by)
    return tuple(
        PromQuery(quantile(histogram, q, by=by), legend=f"{label}p{round(q * 100)}", exemplar=True)
        for q in QUANTILES
    )


def joined_to_server(metric: str, *, by: tuple[str, ...] = (), rate: bool = False) -> str:
    """A per-process gauge (no backend/model labels) filtered by the server's labels.

    RSS and GPU gauges carry only ``instance`` (and ``gpu``); joining them on ``instance``
    with a server gauge that carries the provider (backend) and model labels lets the
    dashboard variables select them too.
    """
    keys = ", ".join(("instance", *by))
    series = f'{metric}{{instance=~"${VAR_INSTANCE}"}}'
    if rate:  # a counter: its per-second rate
        series = f"rate({series}[{RATE_WINDOW}])"
    server = (
        f"group by (instance, {n.LABEL_PROVIDER}, {n.LABEL_MODEL}) "
        f"({n.METRIC_QUEUE_DEPTH}{selector()})"
    )
    return (
        f"max by ({keys}) ({series}) "
        f"* on (instance) group_left ({n.LABEL_PROVIDER}, {n.LABEL_MODEL}) {server}"
    )


def server_traces(condition: str = "") -> str:
    """TraceQL for the server spans of the selected backend and model."""
    parts = [
        f'resource.service.name = "{n.SERVER_SERVICE_NAME}"',
        "kind = server",
        f'span.{n.GEN_AI_PROVIDER_NAME} =~ "${VAR_BACKEND}"',
        f'span.{n.GEN_AI_REQUEST_MODEL} =~ "${VAR_MODEL}"',
    ]
    if condition:
        parts.append(condition)
    return "{ " + " && ".join(parts) + " }"
