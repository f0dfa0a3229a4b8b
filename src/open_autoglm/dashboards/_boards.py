"""The four dashboards: Latency overview, Stage breakdown, Resources, Slow traces."""

from __future__ import annotations

from typing import Final

from open_autoglm.dashboards._queries import (
    RATE_WINDOW,
    SPANMETRICS_DURATION,
    SPANMETRICS_SERVICE_NAME,
    SPANMETRICS_SPAN_NAME,
    VAR_INSTANCE,
    VAR_MIN_DURATION,
    VLLM_KV_CACHE_USAGE,
    PromQuery,
    TraceQuery,
    joined_to_server,
    quantile,
    quantile_queries,
    rate,
    selector,
    server_traces,
)
from open_autoglm.dashboards._spec import Board, Panel, Row
from open_autoglm.telemetry import names as n


def _total(metric: str) -> str:
    return f"{metric}_total"


def _error_ratio() -> str:
    # `or vector(0)`: no error series exist until the first failure.
    errors = f"({rate(_total(n.METRIC_REQUEST_ERRORS))} or vector(0))"
    finished = rate(_total(n.METRIC_REQUESTS))
    return f"{errors} / ({finished} + {errors})"


def _latency_overview() -> Board:
    latency = Row(
        "Latency (server side, P50 / P95 / P99; dots are exemplars: click one to open its trace)",
        (
            Panel(
                "Time to first token",
                quantile_queries(n.METRIC_TTFT),
                "Request arrival to the first generated token.",
                unit="s",
            ),
            Panel(
                "Time per output token",
                quantile_queries(n.METRIC_TPOT),
                "Mean gap between output tokens after the first, per request.",
                unit="s",
            ),
            Panel(
                "End-to-end latency",
                quantile_queries(n.METRIC_REQUEST_DURATION),
                "Request arrival to the last token.",
                unit="s",
            ),
        ),
    )
    throughput = Row(
        "Throughput and errors",
        (
            Panel(
                "Tokens per second",
                (
                    PromQuery(rate(_total(n.METRIC_GENERATION_TOKENS)), legend="output tokens/s"),
                    PromQuery(rate(_total(n.METRIC_PROMPT_TOKENS)), legend="prompt tokens/s"),
                ),
                unit="short",
            ),
            Panel(
                "Requests per second",
                (
                    PromQuery(
                        rate(_total(n.METRIC_REQUESTS), by=(n.LABEL_FINISH_REASON,)),
                        legend=f"{{{{{n.LABEL_FINISH_REASON}}}}}",
                    ),
                ),
                "Finished requests by finish reason.",
                unit="reqps",
            ),
            Panel(
                "Error rate",
                (PromQuery(_error_ratio(), legend="failed / (finished + failed)"),),
                "Failed requests over all requests that ended.",
                unit="percentunit",
            ),
        ),
    )
    load = Row(
        "Load",
        (
            Panel(
                "Queue depth",
                (
                    PromQuery(
                        f"sum by (instance) ({n.METRIC_QUEUE_DEPTH}{selector()})",
                        legend="{{instance}}",
                    ),
                ),
                "Requests waiting to be scheduled.",
            ),
            Panel(
                "Running batch size",
                (
                    PromQuery(
                        f"sum by (instance) ({n.METRIC_BATCH_SIZE}{selector()})",
                        legend="{{instance}}",
                    ),
                    PromQuery(
                        f"max by (instance) ({n.METRIC_BATCH_CAP}{selector()})",
                        legend="cap {{instance}}",
                    ),
                ),
                "Sequences in the running batch, and the adaptive cap on it where the server "
                "runs with --target-tpot.",
            ),
            Panel(
                "Errors by type",
                (
                    PromQuery(
                        rate(_total(n.METRIC_REQUEST_ERRORS), by=(n.LABEL_ERROR_TYPE,)),
                        legend=f"{{{{{n.LABEL_ERROR_TYPE}}}}}",
                        source="server_errors",
                    ),
                ),
                unit="reqps",
            ),
        ),
    )
    return Board(
        uid="open-autoglm-latency",
        title="Open-AutoGLM / Latency overview",
        file_name="latency-overview.json",
        description="TTFT, TPOT and end-to-end latency with exemplars, throughput, errors, load.",
        rows=(latency, throughput, load),
    )


def _stage_breakdown() -> Board:
    by_stage = (n.LABEL_STAGE,)
    stage_sum = f"{n.METRIC_STAGE_DURATION}_sum"
    stage_count = f"{n.METRIC_STAGE_DURATION}_count"
    percentiles = Row(
        "Per-stage latency (dots are exemplars)",
        tuple(
            Panel(
                f"Stage latency P{round(q * 100)}",
                (
                    PromQuery(
                        quantile(n.METRIC_STAGE_DURATION, q, by=by_stage),
                        legend=f"{{{{{n.LABEL_STAGE}}}}}",
                        exemplar=True,
                    ),
                ),
                unit="s",
            )
            for q in (0.5, 0.95, 0.99)
        ),
    )
    share = Row(
        "Where the time goes",
        (
            Panel(
                "Share of server time by stage",
                (
                    PromQuery(
                        f"{rate(stage_sum, by=by_stage)} / ignoring ({n.LABEL_STAGE}) "
                        f"group_left {rate(stage_sum)}",
                        legend=f"{{{{{n.LABEL_STAGE}}}}}",
                    ),
                ),
                "Time spent in each stage over the time spent in all stages.",
                unit="percentunit",
                stacked_percent=True,
            ),
            Panel(
                "Mean time per request by stage",
                (
                    PromQuery(
                        f"{rate(stage_sum, by=by_stage)} / {rate(stage_count, by=by_stage)}",
                        legend=f"{{{{{n.LABEL_STAGE}}}}}",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Stage share over the range",
                (
                    PromQuery(
                        f"sum by ({n.LABEL_STAGE}) (increase({stage_sum}{selector()}[$__range]))",
                        legend=f"{{{{{n.LABEL_STAGE}}}}}",
                        instant=True,
                    ),
                ),
                kind="piechart",
                unit="s",
            ),
        ),
    )
    spans = Row(
        "Span durations from traces (collector span metrics, before tail sampling)",
        (
            Panel(
                "Span duration P95 by span name",
                (
                    PromQuery(
                        f"histogram_quantile(0.95, sum by (le, {SPANMETRICS_SERVICE_NAME}, "
                        f"{SPANMETRICS_SPAN_NAME}) "
                        f"(rate({SPANMETRICS_DURATION}_bucket[{RATE_WINDOW}])))",
                        legend=(
                            f"{{{{{SPANMETRICS_SERVICE_NAME}}}}} {{{{{SPANMETRICS_SPAN_NAME}}}}}"
                        ),
                        source="collector",
                        exemplar=True,
                    ),
                ),
                "Computed by the collector from every span, sampled or not; "
                "needs the docker compose stack.",
                unit="s",
                width=24,
            ),
        ),
    )
    return Board(
        uid="open-autoglm-stages",
        title="Open-AutoGLM / Stage breakdown",
        file_name="stage-breakdown.json",
        description="Per-stage latency percentiles (tokenize, queue, prefill, decode) and share.",
        rows=(percentiles, share, spans),
    )


def _resources() -> Board:
    kv_cache = " or ".join(
        f'max by (instance) ({metric}{{instance=~"$instance"}})' for metric in VLLM_KV_CACHE_USAGE
    )
    memory = Row(
        "Memory",
        (
            Panel(
                "Process resident memory",
                (
                    PromQuery(joined_to_server(n.METRIC_PROCESS_RSS), legend="{{instance}} RSS"),
                    PromQuery(
                        joined_to_server(n.METRIC_PROCESS_PEAK_RSS),
                        legend="{{instance}} serving peak",
                    ),
                    PromQuery(
                        joined_to_server(n.METRIC_PROCESS_LOAD_PEAK_RSS),
                        legend="{{instance}} model-load peak",
                    ),
                ),
                "RSS (process_resident_memory_bytes); the serving peak is the kernel's "
                "high-water mark since the model had loaded; the model-load peak covers "
                "preparing and loading it.",
                unit="bytes",
                width=12,
            ),
            Panel(
                "Process CPU",
                (
                    PromQuery(
                        joined_to_server(f"{n.METRIC_PROCESS_CPU}_total", rate=True),
                        legend="{{instance}} cores",
                    ),
                ),
                "CPU seconds per second of the server process (process_cpu_seconds_total).",
                width=12,
            ),
            Panel(
                "vLLM KV-cache use",
                (PromQuery(kv_cache, legend="{{instance}}", source="vllm"),),
                "vLLM's own gauge, where a vLLM engine's metrics are scraped.",
                unit="percentunit",
                width=12,
            ),
        ),
    )
    gpu = Row(
        "GPU (where NVML finds one)",
        (
            Panel(
                "GPU memory",
                (
                    PromQuery(
                        joined_to_server(n.METRIC_GPU_MEMORY_USED, by=(n.LABEL_GPU,)),
                        legend=f"{{{{instance}}}} gpu {{{{{n.LABEL_GPU}}}}} used",
                        source="gpu",
                    ),
                    PromQuery(
                        joined_to_server(n.METRIC_GPU_MEMORY_TOTAL, by=(n.LABEL_GPU,)),
                        legend=f"{{{{instance}}}} gpu {{{{{n.LABEL_GPU}}}}} total",
                        source="gpu",
                    ),
                ),
                unit="bytes",
                width=12,
            ),
            Panel(
                "GPU utilisation",
                (
                    PromQuery(
                        joined_to_server(n.METRIC_GPU_UTILIZATION, by=(n.LABEL_GPU,)),
                        legend=f"{{{{instance}}}} gpu {{{{{n.LABEL_GPU}}}}}",
                        source="gpu",
                    ),
                ),
                unit="percentunit",
                width=12,
            ),
        ),
    )
    tracing = Row(
        "Tracing",
        (
            Panel(
                "Span export",
                (
                    PromQuery(
                        joined_to_server(_total(n.METRIC_SPANS_EXPORTED), rate=True),
                        legend="{{instance}} exported/s",
                    ),
                    PromQuery(
                        joined_to_server(_total(n.METRIC_SPANS_DROPPED), rate=True),
                        legend="{{instance}} dropped/s",
                    ),
                    PromQuery(
                        joined_to_server(_total(n.METRIC_TRACES_SAMPLED_OUT), rate=True),
                        legend="{{instance}} requests sampled out/s",
                    ),
                    PromQuery(
                        joined_to_server(n.METRIC_SPANS_QUEUED), legend="{{instance}} queued"
                    ),
                ),
                "Spans the server exported and lost per second (dropped: export queue full, or "
                "a collector that never took them), requests the tail sampler left out "
                "(--trace-budget), and spans waiting for export.",
                width=24,
            ),
            Panel(
                "Proxy upstream",
                (
                    PromQuery(
                        f'{n.METRIC_PROXY_UPSTREAM}{{instance=~"${VAR_INSTANCE}"}}',
                        legend=f"{{{{instance}}}} → {{{{{n.LABEL_UPSTREAM}}}}}",
                        source="proxy",
                    ),
                ),
                "The server behind each open-autoglm proxy (value 1 while the proxy runs): "
                "its own /metrics page is the server's memory, queue and batch.",
                width=24,
            ),
        ),
    )
    return Board(
        uid="open-autoglm-resources",
        title="Open-AutoGLM / Resources",
        file_name="resources.json",
        description="Server memory, GPU memory and utilisation, vLLM KV-cache use, span export.",
        rows=(memory, gpu, tracing),
    )


def _slow_traces() -> Board:
    slow = f"duration > ${VAR_MIN_DURATION}"
    stages = "|".join((n.SPAN_QUEUE, n.SPAN_PREFILL, n.SPAN_DECODE))
    tables = Row(
        "Traces (Tempo; only traces kept by the collector's tail sampling)",
        (
            Panel(
                "Slowest requests",
                (TraceQuery(server_traces(slow)),),
                "Server requests above the duration threshold; sort by duration, "
                "click a trace id to open the trace.",
                kind="table",
                width=24,
                height=10,
            ),
            Panel(
                "Failed requests",
                (TraceQuery(server_traces("status = error")),),
                kind="table",
                width=12,
                height=10,
            ),
            Panel(
                "Slow stages",
                (
                    TraceQuery(
                        f'{server_traces()} >> {{ name =~ "{stages}" && {slow} }}', table="spans"
                    ),
                ),
                "Queue, prefill and decode spans above the threshold.",
                kind="table",
                width=12,
                height=10,
            ),
            Panel(
                "Slowest requests as the client saw them",
                (
                    TraceQuery(
                        f'{{ resource.service.name = "{n.LOADGEN_SERVICE_NAME}" '
                        f"&& kind = client && {slow} }}"
                    ),
                ),
                "Load-generator spans: client TTFT and end-to-end, including the network.",
                kind="table",
                width=24,
                height=10,
            ),
        ),
    )
    return Board(
        uid="open-autoglm-slow-traces",
        title="Open-AutoGLM / Slow traces",
        file_name="slow-traces.json",
        description="TraceQL tables: slowest requests, failed requests, slow stages.",
        rows=(tables,),
        instance_variable=False,
        duration_variable=True,
    )


#: Every dashboard, in the order the files are written.
BOARDS: Final = (_latency_overview(), _stage_breakdown(), _resources(), _slow_traces())
