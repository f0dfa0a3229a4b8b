"""The report's details, after the results and the diagnosis: the run over time, the
distributions (latency CDFs, ITL, ITL by output position, TTFT by input length, lengths), the
server stages, and the slowest requests (a few waterfalls, the rest listed)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from open_autoglm.analysis._chart_data import ChartData, Histogram, Series
from open_autoglm.analysis._html_parts import TraceLinks, fmt, table
from open_autoglm.analysis._report import DistributionMetric, Report
from open_autoglm.analysis._stages import STAGE_COLUMNS, TTFT_PARTS, SlowRequest
from open_autoglm.analysis._svg import PALETTE, WaterfallScale, stacked_bars, waterfall
from open_autoglm.analysis._svg_line import Line, histogram_chart, line_chart

#: Which server gauges share a chart: (title, y label, series names).
_SERVER_CHARTS = (
    ("Server queue and batch", "requests",
     ("queue depth", "running batch size", "batch cap")),
    ("Server memory", "MiB", ("server RSS, MiB", "GPU memory, MiB")),
    ("KV cache", "% used", ("KV cache usage, %",)),
)  # fmt: skip


def details_sections(
    report: Report, links: TraceLinks, scale: WaterfallScale, slowest: Sequence[SlowRequest]
) -> str:
    return "".join(
        [
            _over_time(report.charts),
            _distributions(report),
            _resources_section(report),
            _stages_section(report),
            _slowest_section(report, links, scale, slowest),
        ]
    )


def _lines(series: Sequence[Series], *, scatter: bool = False) -> list[Line]:
    return [
        Line(s.name, list(zip(s.x, s.y, strict=True)), PALETTE[i % len(PALETTE)],
             scatter=scatter)
        for i, s in enumerate(series)
    ]  # fmt: skip


def _figure(title: str, chart: str) -> str:
    if 'class="chart bars"' in chart:  # fixed-size bars: scroll on a narrow screen
        chart = f"<div class='scroll'>{chart}</div>"
    return f"<div><h4>{escape(title)}</h4>{chart}</div>"


def _over_time(charts: ChartData | None) -> str:
    out = ["<h2 id='over-time'>The run over time</h2>"]
    if charts is None:
        return "".join(out) + "<p>No request records: no time series.</p>"
    out.append(
        "<p class='small'>Seconds from the first request sent; dashed lines mark where each "
        "level began (hover for its name). Server gauges are the sampler's reads of "
        "<code>/metrics</code>.</p>"
    )
    marks = [(m.t_s, m.label) for m in charts.levels]
    by_name = {s.name: s for s in [*charts.client, *charts.server]}
    figures = []
    for title, y_label, names in (
        ("Completed requests per second", "requests/s", ("completed requests/s",)),
        ("Output tokens per second", "tokens/s", ("output tokens/s",)),
        ("Requests in flight (client)", "requests", ("requests in flight",)),
        *_SERVER_CHARTS,
    ):
        series = [by_name[n] for n in names if n in by_name]
        if series:
            chart = line_chart(
                _lines(series), "time, s", y_label, title, marks=marks, x_max=charts.duration_s
            )
            figures.append(_figure(title, chart))
    return "".join(out) + "<div class='grid'>" + "".join(figures) + "</div>"


def _histogram(title: str, hist: Histogram | None, x_label: str) -> str:
    if hist is None:
        return ""
    return _figure(title, histogram_chart(hist.edges, hist.counts, x_label, title,
                                          above=hist.above))  # fmt: skip


def _distributions(report: Report) -> str:
    out = ["<h2 id='distributions'>Distributions</h2><div class='grid'>"]
    labels = {lv.index: lv.label for lv in report.load.levels}
    metrics: tuple[tuple[DistributionMetric, str], ...] = (
        ("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("e2e_ms", "E2E latency"))  # fmt: skip
    for key, name in metrics:
        series = {
            labels.get(d.level, str(d.level)): values
            for d in report.distributions
            if (values := d.metric(key))
        }
        lines = [
            Line(label, [(v, k / (len(qs) - 1)) for k, v in enumerate(qs)],
                 PALETTE[i % len(PALETTE)])
            for i, (label, qs) in enumerate(series.items())
        ]  # fmt: skip
        chart = line_chart(lines, f"{name}, ms", "fraction of requests", f"{name} CDF",
                           y_max=1.0)  # fmt: skip
        out.append(_figure(f"{name} (CDF)", chart))
    charts = report.charts
    if charts is not None:
        out.append(_histogram("ITL distribution", charts.itl_ms, "ITL, ms"))
        if charts.itl_by_position_ms:
            out.append(
                _figure(
                    "Median ITL by output position",
                    line_chart(
                        _lines(charts.itl_by_position_ms),
                        "output position (gap after chunk k)",
                        "median ITL, ms",
                        "ITL against output position",
                        x_max=max(x for s in charts.itl_by_position_ms for x in s.x),
                    ),
                )
            )
        if charts.ttft_by_input:
            out.append(
                _figure(
                    "TTFT against input length",
                    line_chart(
                        _lines(charts.ttft_by_input, scatter=True),
                        "input tokens",
                        "TTFT, ms",
                        "TTFT against input length",
                    ),
                )
            )
        out.append(_histogram("Input length", charts.input_tokens, "input tokens"))
        out.append(_histogram("Output length", charts.output_tokens, "output tokens"))
    out.append("</div>")
    return "".join(out)


def _resources_section(report: Report) -> str:
    """What the server's /metrics said during the run (ours, or vLLM's, SGLang's, TGI's when
    the run only attached to the server): memory, queue, batch, KV cache, GPU."""
    res = report.resources
    proxy = report.run is not None and report.run.measured_process == "proxy"
    title = (
        "<h2 id='resources'>Proxy resources</h2><p class='note'>The only metrics page was the "
        "<code>open-autoglm proxy</code>'s: memory and requests in flight below are the "
        "proxy's, not the server's. Give the server's page with <code>--server-metrics</code>."
        "</p>"
        if proxy
        else "<h2 id='resources'>Server resources</h2>"
    )
    if not res.samples:
        return title + "<p>No samples of the server's metrics.</p>"
    source = (report.run.server_metrics_url if report.run else None) or "the server's /metrics"

    def mib(value: float | None) -> str:
        return fmt(value / 2**20 if value else None, unit=" MiB")

    def pct(value: float | None) -> str:
        return fmt(100 * value if value is not None else None, unit=" %")

    rows = [
        [
            "resident memory (serving)",
            mib(res.server_rss_peak_bytes),
            mib(res.server_rss_mean_bytes),
        ],
        ["resident memory (model load)", mib(res.server_rss_load_peak_bytes), "–"],
        ["waiting requests (queue depth)", fmt(res.queue_depth_max), fmt(res.queue_depth_mean)],
        [
            "requests in flight at the proxy" if proxy else "running requests (batch size)",
            fmt(res.batch_size_max),
            fmt(res.batch_size_mean),
        ],
        ["KV-cache usage", pct(res.kv_cache_usage_max), pct(res.kv_cache_usage_mean)],
        ["GPU memory", mib(res.gpu_memory_peak_bytes), "–"],
        ["GPU utilisation", "–", pct(res.gpu_utilization_mean)],
    ]
    preempted = (
        f" {res.preemptions} preemptions during the run." if res.preemptions is not None else ""
    )
    behind = (
        " The benchmarked URL is an <code>open-autoglm proxy</code>: these are the metrics of "
        "the server behind it, which the proxy names."
        if report.run is not None and report.run.via_proxy and not proxy
        else ""
    )
    return (
        f"{title}<p>{res.samples} samples of <code>{escape(str(source))}</code>."
        f"{escape(preempted)}{behind}</p>" + table(["", "peak", "mean"], rows)
    )


def _stages_section(report: Report) -> str:
    stages = report.stages
    if stages is None:
        return "<h2 id='stages'>Server stages</h2><p>No span store: no stage breakdown.</p>"
    out = [
        "<h2 id='stages'>Server stages</h2>",
        f"<p>{stages.with_server_spans} of {stages.requests} successful requests joined to "
        "their server spans by trace id.</p>",
    ]
    header = ["stage", "p50 ms", "p95 ms", "p99 ms", "max ms", "share of E2E at p50",
              "share at ≥p99"]  # fmt: skip
    rows = []
    for s in STAGE_COLUMNS:
        st = stages.stages_ms[s]
        if not st.count:
            continue
        rows.append([
            escape(s), fmt(st.median, 2), fmt(st.p95, 2), fmt(st.p99, 2), fmt(st.max, 2),
            fmt(100 * (stages.at_p50.share_of_e2e[s] or 0), 1, "%"),
            fmt(100 * (stages.at_p99.share_of_e2e[s] or 0), 1, "%"),
        ])  # fmt: skip
    if not rows:  # no stage to show: say why, not an empty table and "No data"
        if stages.with_server_spans:
            why = (
                "None of the joined traces has a stage span (tokenize, queue, prefill, decode, "
                "or vLLM's <code>llm_request</code>): the spans came from a process in front "
                "of the engine (a proxy's SERVER span) or from a server that does not trace "
                "its stages. Send the engine's own spans to the same collector (vLLM: "
                "<code>--otlp-traces-endpoint</code>) to see them."
            )
        else:
            why = (
                "No server span arrived for these requests: the server (and any proxy in "
                "front of it) did not export its spans to the run's collector. Point its OTLP "
                "export at the address the run printed (vLLM: "
                "<code>--otlp-traces-endpoint</code>; others: "
                "<code>OTEL_EXPORTER_OTLP_TRACES_ENDPOINT</code>)."
            )
        out.append(f"<p class='note'>{why}</p>")
        return "".join(out)
    out.append(table(header, rows))
    out.append("<div class='grid'>")
    out.append(
        _figure(
            "Where the time went: typical against slow requests (mean ms)",
            stacked_bars(
                {
                    f"{c.label} ({c.requests})": {s: c.stage_ms[s] for s in STAGE_COLUMNS}
                    for c in (stages.at_p50, stages.at_p99)
                },
                "ms",
                "Stage time, typical vs slow",
            ),
        )
    )
    parts = {p: stages.ttft_parts_ms[p].mean for p in TTFT_PARTS}
    out.append(
        _figure(
            "Client TTFT, decomposed (mean ms)",
            stacked_bars({"all requests": parts}, "ms", "TTFT decomposition"),
        )
    )
    out.append("</div>")
    return "".join(out)


def _slowest_section(
    report: Report, links: TraceLinks, scale: WaterfallScale, drawn: Sequence[SlowRequest]
) -> str:
    stages = report.stages
    if stages is None or not stages.slowest:
        return "<h2 id='slowest'>Slowest requests</h2><p>No traces of the slowest requests.</p>"
    labels = {lv.index: lv.label for lv in report.load.levels}
    out = [
        "<h2 id='slowest'>Slowest requests</h2>",
        f"<p class='small'>Every waterfall on this page shares one time scale "
        f"(0–{scale.x_max:,.0f} ms), so a longer trace draws longer.</p>",
    ]
    rows = [
        [
            links.link(slow.trace_id),
            fmt(labels.get(slow.level, str(slow.level))),
            fmt(slow.e2e_ms, 1),
            fmt(slow.ttft_ms, 1),
            *(fmt(slow.stage_ms.get(s), 1) for s in ("queue", "prefill", "decode")),
        ]
        for slow in stages.slowest
    ]
    out.append(
        table(["trace", "level", "E2E ms", "TTFT ms", "queue ms", "prefill ms", "decode ms"],
              rows)
    )  # fmt: skip
    for slow in drawn:
        out.append(
            f"<h4 id='trace-{escape(slow.trace_id)}'>trace <code>{escape(slow.trace_id)}"
            f"</code>{links.external(slow.trace_id)} · E2E {slow.e2e_ms:,.1f} ms · "
            f"TTFT {fmt(slow.ttft_ms, 1, ' ms')}</h4>"
        )
        spans = [(sp.name, sp.kind, sp.start_ms, sp.duration_ms, sp.depth) for sp in slow.spans]
        out.append(f"<div class='scroll'>{waterfall(spans, f'Trace {slow.trace_id}', scale)}</div>")
    return "".join(out)
