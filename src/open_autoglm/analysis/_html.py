"""The HTML report: one self-contained file, readable offline (no script, font or image
fetched from anywhere), every text from prompts, models or errors escaped.

In the order a reader looks for things: the results (headline figures, a summary per level,
latency and throughput against load), then the diagnosis (hotspots of the slow requests, load
models), then the details (the run over time, distributions, server stages, the slowest
requests' waterfalls). Every waterfall of the page shares one time scale.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from html import escape
from pathlib import Path

from open_autoglm.analysis._html_details import details_sections
from open_autoglm.analysis._html_diagnosis import diagnosis_section, drawn_examples
from open_autoglm.analysis._html_parts import CSS, TraceLinks, fmt, fmt_ms, table
from open_autoglm.analysis._level_summary import (
    METRIC_NAMES,
    METRICS,
    LevelSummary,
    percentile_key,
    summarize_levels,
)
from open_autoglm.analysis._report import Report, write_atomically
from open_autoglm.analysis._svg import WaterfallScale
from open_autoglm.analysis._svg_line import DASHES, Line, line_chart
from open_autoglm.loadgen import LevelResult

#: The colour of each percentile's line against load, by rank (p50, p90, p99, ...).
_RANK_COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#9c755f")


def _runtime_labels(runtime: dict[str, str]) -> list[str]:
    """Where the engine ran, for the title: the execution provider, else the device."""
    label = runtime.get("execution_provider") or runtime.get("device")
    return [label] if label else []


def render_html(report: Report) -> str:
    run, load = report.run, report.load
    model = (run.model if run else None) or load.endpoint.model or "?"
    backend = (run.backend if run else None) or "external server"
    stages = report.stages
    examples = drawn_examples(report)
    # the slowest requests not drawn already as a hotspot's example (one waterfall a trace)
    slowest = [r for r in (stages.slowest if stages else []) if r.trace_id not in examples]
    slowest = slowest[: report.waterfalls]
    scale = WaterfallScale.of(
        [[(s.name, s.kind, s.start_ms, s.duration_ms, s.depth) for s in spans]
         for spans in [*(r.spans for r in slowest), *examples.values()]]
    )  # fmt: skip
    links = TraceLinks(frozenset([*(r.trace_id for r in slowest), *examples]), report.trace_url)
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>Open-AutoGLM report: {escape(backend)} / {escape(model)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{escape(backend)} · {escape(model)}",
        "".join(f" · {escape(v)}" for v in _runtime_labels(run.runtime if run else {})),
        " <span class='badge'>simulated backend</span>" if run and run.simulated else "",
        "</h1>",
        f"<p>Open-AutoGLM {escape(report.tool_version)} · report "
        f"<code>{escape(report.version)}</code> · target "
        f"<code>{escape(load.endpoint.url)}</code></p>",
    ]
    hw = run.hardware if run else None
    if hw is not None:
        gpus = escape(", ".join(hw.gpus) or str(hw.gpu_note or "no GPU"))
        out.append(
            f"<p>Hardware: {escape(str(hw.cpu_model))}, {escape(str(hw.cpu_cores))}"
            f" cores; GPU: {gpus}</p>"
        )
    out.append(
        "<nav><a href='#results'>Results</a><a href='#diagnosis'>Diagnosis</a>"
        "<a href='#over-time'>Over time</a><a href='#distributions'>Distributions</a>"
        "<a href='#resources'>Resources</a><a href='#stages'>Server stages</a>"
        "<a href='#slowest'>Slowest requests</a></nav>"
    )
    if not report.summary and report.load.levels:  # a report written before the summary
        summary = summarize_levels(report.load.levels, None, report.percentiles)
        report = dataclasses.replace(report, summary=summary)
    out.append(_results_section(report))
    out.append(diagnosis_section(report, links, scale, examples))
    out.append(details_sections(report, links, scale, slowest))
    out.append("</body></html>")
    return "".join(out)


def _results_section(report: Report) -> str:
    levels = report.load.levels
    out = ["<h2 id='results'>Results</h2>", _headline(levels, report)]
    out += [f"<div class='note'>{escape(note)}</div>" for note in report.notes]
    if not report.summary:
        return "".join(out)
    out.append("<h3>Per level</h3>")
    out.append(_levels_table(report.summary, levels))
    out.append("<h3>Latency per level, ms</h3>")
    out.append(
        "<p class='small'>Successful measured requests. TTFT: time to the first output; "
        "TPOT: (E2E − TTFT) ÷ (output tokens − 1); ITL: every gap between output chunks; "
        "E2E: send to last output. Percentiles interpolate linearly; choose them with "
        "<code>--metric-percentiles</code>.</p>"
    )
    grid = []
    for metric in METRICS:
        header = [METRIC_NAMES[metric], "mean", *map(percentile_key, report.percentiles)]
        rows = [
            [fmt(s.label), fmt_ms(m.mean), *(fmt_ms(m.at(q)) for q in report.percentiles)]
            for s in report.summary
            if (m := s.metric(metric))
        ]
        grid.append(f"<div>{table(header, rows)}</div>")
    out.append(f"<div class='grid'>{''.join(grid)}</div>")
    if len(report.summary) > 1:
        out.append(_against_load(report))
    return "".join(out)


def _headline(levels: Sequence[LevelResult], report: Report) -> str:
    if not levels:
        return "<p>No level finished.</p>"
    best = max(levels, key=lambda lv: lv.output_token_throughput)
    rss = report.resources.server_rss_peak_bytes
    gpu = report.resources.gpu_memory_peak_bytes
    load = report.resources.server_rss_load_peak_bytes
    who = report.run.measured_process if report.run else "server"
    kpis = [
        ("requests ok", fmt(sum(lv.succeeded for lv in levels))),
        ("failed", fmt(sum(lv.failed for lv in levels))),
        # the TTFT p99 a user gets at the throughput on the card beside it, named by level
        ("best output tok/s", fmt(best.output_token_throughput), best.label),
        ("TTFT p99 at that level", fmt(best.ttft_ms.p99, unit=" ms"), best.label),
        (f"{who} RSS peak, serving", fmt(rss / 2**20 if rss else None, unit=" MiB")),
        ("GPU memory peak, serving", fmt(gpu / 2**20 if gpu else None, unit=" MiB")),
    ]
    if load:  # the model's preparation and load, apart from serving
        kpis.append((f"{who} RSS peak, model load", fmt(load / 2**20, unit=" MiB")))
    cells = "".join(
        f"<div class='kpi'>{escape(k)}<b>{v}</b>"
        + (f"<small>{escape(sub[0])}</small>" if sub else "")
        + "</div>"
        for k, v, *sub in kpis
    )
    return f"<div class='headline'>{cells}</div>"


def _levels_table(summary: Sequence[LevelSummary], levels: Sequence[LevelResult]) -> str:
    goodput = {lv.index: lv.goodput for lv in levels}
    with_goodput = any(v is not None for v in goodput.values())  # an SLO was given
    header = ["level", "requests", "errors", "error rate", "req/s", "output tok/s"]
    header += ["goodput"] * with_goodput
    rows = [
        [
            fmt(s.label),
            fmt(s.requests),
            fmt(s.errors),
            fmt(100 * s.errors / s.requests if s.requests else None, 2, "%"),
            fmt(s.request_throughput, 2),
            fmt(s.output_token_throughput, 1),
            *[fmt(goodput.get(s.level), 2, " req/s")] * with_goodput,
        ]
        for s in summary
    ]
    return table(header, rows)


def load_axis(summary: Sequence[LevelSummary]) -> tuple[str, list[float]]:
    """The x of each level against load: its concurrency when every level set one, else the
    achieved request rate (a sweep or rate run)."""
    if all(s.load_kind == "concurrency" for s in summary):
        return "concurrency (requests in flight)", [s.load for s in summary]
    return "achieved requests/s", [s.request_throughput for s in summary]


def _against_load(report: Report) -> str:
    x_label, xs = load_axis(report.summary)
    distinct = sorted(set(xs))
    ticks = distinct if x_label.startswith("concurrency") and len(distinct) <= 8 else None
    charts = []
    for metric in METRICS:
        lines = [
            Line(
                percentile_key(q),
                [(x, v) for x, s in zip(xs, report.summary, strict=True)
                 if (v := s.metric(metric).at(q)) is not None],
                _RANK_COLORS[rank % len(_RANK_COLORS)],
                DASHES[rank % len(DASHES)],
                markers=True,
            )
            for rank, q in enumerate(report.percentiles)
        ]  # fmt: skip
        name = METRIC_NAMES[metric]
        charts.append(
            f"<div><h4>{name} against load</h4>"
            + line_chart(
                lines, x_label, f"{name}, ms", f"{name} percentiles against load", x_ticks=ticks
            )
            + "</div>"
        )
    tokens = [s.output_token_throughput for s in report.summary]
    throughput = [Line("output tok/s", list(zip(xs, tokens, strict=True)), markers=True)]
    chart = line_chart(
        throughput, x_label, "output tokens/s", "Output throughput against load", x_ticks=ticks
    )
    charts.append(f"<div><h4>Throughput against load</h4>{chart}</div>")
    return "<h3>Against load</h3><div class='grid'>" + "".join(charts) + "</div>"


def write_html(report: Report, path: Path) -> None:
    write_atomically(path, render_html(report))
