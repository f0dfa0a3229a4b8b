"""The HTML report: one self-contained file, readable offline (no script, font or image
fetched from anywhere), every text from prompts, models or errors escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from open_autoglm.analysis._load_models import PointSummary
from open_autoglm.analysis._report import DistributionMetric, Report
from open_autoglm.analysis._stages import STAGE_COLUMNS, TTFT_PARTS
from open_autoglm.analysis._svg import bar_chart, cdf_chart, fit_chart, stacked_bars, waterfall
from open_autoglm.loadgen import LevelResult

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:3px 8px;
text-align:right} th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.badge{background:#c0392b;color:#fff;padding:2px 8px;border-radius:4px;font-size:.85em}
.note{background:#fff8e1;border-left:4px solid #f2b600;padding:.4em .8em;margin:.4em 0}
.headline{display:flex;gap:1.2em;flex-wrap:wrap} .kpi{border:1px solid #ddd;padding:.6em 1em;
border-radius:6px;min-width:120px} .kpi b{display:block;font-size:1.5em}
svg.chart{width:100%;max-width:760px;height:auto;font-size:11px;display:block;margin:.5em 0}
code{background:#f4f4f4;padding:1px 4px}
"""


def _fmt(value: Any, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return escape(f"{value}{unit}")


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _runtime_labels(runtime: dict[str, str]) -> list[str]:
    """Where the engine ran, for the title: the execution provider, else the device."""
    label = runtime.get("execution_provider") or runtime.get("device")
    return [label] if label else []


def render_html(report: Report) -> str:
    run, load = report.run, report.load
    levels = load.levels
    model = (run.model if run else None) or load.endpoint.model or "?"
    backend = (run.backend if run else None) or "external server"
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Open-AutoGLM report: {escape(backend)} / {escape(model)}</title>",
        f"<style>{_CSS}</style></head><body>",
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
    out += [f"<div class='note'>{escape(note)}</div>" for note in report.notes]
    out.append(_headline(levels, report))
    out.append(_diagnosis_section(report))
    out.append("<h2>Results per level</h2>")
    out.append(_levels_table(levels))
    out.append(
        bar_chart(
            [lv.label for lv in levels],
            [float(lv.output_token_throughput) for lv in levels],
            "output tokens/s",
            "Output throughput per level",
        )
    )
    out.append("<h2>Latency distributions</h2>")
    labels = {lv.index: lv.label for lv in levels}
    metrics: tuple[tuple[DistributionMetric, str], ...] = (
        ("ttft_ms", "TTFT"), ("e2e_ms", "E2E latency"), ("tpot_ms", "TPOT"))  # fmt: skip
    for key, name in metrics:
        series = {
            labels.get(d.level, str(d.level)): values
            for d in report.distributions
            if (values := d.metric(key))
        }
        out.append(f"<h3>{name} (CDF)</h3>" + cdf_chart(series, f"{name}, ms", f"{name} CDF"))
    out.append(_stages_section(report))
    out.append("</body></html>")
    return "".join(out)


def _headline(levels: Sequence[LevelResult], report: Report) -> str:
    if not levels:
        return "<p>No level finished.</p>"
    best = max(levels, key=lambda lv: lv.output_token_throughput)
    rss = report.resources.server_rss_peak_bytes
    gpu = report.resources.gpu_memory_peak_bytes
    load = report.resources.server_rss_load_peak_bytes
    kpis = [
        ("requests ok", _fmt(sum(lv.succeeded for lv in levels))),
        ("failed", _fmt(sum(lv.failed for lv in levels))),
        ("best output tok/s", _fmt(best.output_token_throughput)),
        ("TTFT p99 (best level)", _fmt(best.ttft_ms.p99, unit=" ms")),
        ("server RSS peak, serving", _fmt(rss / 2**20 if rss else None, unit=" MiB")),
        ("GPU memory peak, serving", _fmt(gpu / 2**20 if gpu else None, unit=" MiB")),
    ]
    if load:  # the model's preparation and load, apart from serving
        kpis.append(("server RSS peak, model load", _fmt(load / 2**20, unit=" MiB")))
    cells = "".join(f"<div class='kpi'>{escape(k)}<b>{v}</b></div>" for k, v in kpis)
    return f"<div class='headline'>{cells}</div>"


def _levels_table(levels: Sequence[LevelResult]) -> str:
    header = ["level", "ok", "failed", "error rate", "req/s", "out tok/s", "TTFT p50",
              "TTFT p99", "TPOT p50", "ITL p99", "E2E p50", "E2E p99", "goodput"]  # fmt: skip
    rows = []
    for lv in levels:
        ttft, tpot, itl, e2e = lv.ttft_ms, lv.tpot_ms, lv.itl_ms, lv.e2e_ms
        rows.append([
            _fmt(lv.label), _fmt(lv.succeeded), _fmt(lv.failed),
            _fmt(100 * lv.error_rate, 2, "%"),
            _fmt(lv.request_throughput, 2), _fmt(lv.output_token_throughput),
            _fmt(ttft.median, 1, " ms"), _fmt(ttft.p99, 1, " ms"),
            _fmt(tpot.median, 2, " ms"), _fmt(itl.p99, 2, " ms"),
            _fmt(e2e.median, 1, " ms"), _fmt(e2e.p99, 1, " ms"),
            _fmt(lv.goodput, 2),
        ])  # fmt: skip
    return _table(header, rows)


def _stages_section(report: Report) -> str:
    stages = report.stages
    if stages is None:
        return "<h2>Server stages</h2><p>No span store: no stage breakdown.</p>"
    out = [
        "<h2>Server stages</h2>",
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
            escape(s), _fmt(st.median, 2), _fmt(st.p95, 2), _fmt(st.p99, 2), _fmt(st.max, 2),
            _fmt(100 * (stages.at_p50.share_of_e2e[s] or 0), 1, "%"),
            _fmt(100 * (stages.at_p99.share_of_e2e[s] or 0), 1, "%"),
        ])  # fmt: skip
    out.append(_table(header, rows))
    out.append("<h3>Where the time went: typical vs slow requests (mean ms)</h3>")
    out.append(
        stacked_bars(
            {
                f"{c.label} ({c.requests})": {s: c.stage_ms[s] for s in STAGE_COLUMNS}
                for c in (stages.at_p50, stages.at_p99)
            },
            "ms",
            "Stage time, typical vs slow",
        )
    )
    out.append("<h3>Client TTFT, decomposed (mean ms)</h3>")
    parts = {p: stages.ttft_parts_ms[p].mean for p in TTFT_PARTS}
    out.append(stacked_bars({"all requests": parts}, "ms", "TTFT decomposition"))
    out.append("<h2>Slowest requests</h2>")
    for slow in stages.slowest:
        out.append(
            f"<h3 id='trace-{escape(slow.trace_id)}'>trace <code>{escape(slow.trace_id)}</code>"
            f" · E2E {slow.e2e_ms:.1f} ms · "
            f"TTFT {_fmt(slow.ttft_ms, 1, ' ms')}</h3>"
        )
        out.append(
            waterfall(
                [(sp.name, sp.kind, sp.start_ms, sp.duration_ms, sp.depth) for sp in slow.spans],
                f"Trace {slow.trace_id}",
            )
        )
    return "".join(out)


def _trace_link(trace_id: str) -> str:
    return f"<a href='#trace-{escape(trace_id)}'><code>{escape(trace_id[:12])}…</code></a>"


def _diagnosis_section(report: Report) -> str:
    d = report.diagnosis
    if d is None:
        return ""
    out = ["<h2>Diagnosis</h2>"]
    if d.summary:
        out.append("<ul>" + "".join(f"<li>{escape(s)}</li>" for s in d.summary) + "</ul>")
    header = ["operation", "slow share", "baseline share", "lift", "excess ms", "p",
              "seed rule", "examples"]  # fmt: skip
    for metric, found in d.hotspots.items():
        title = "E2E" if metric == "e2e" else "TTFT"
        threshold = found.threshold_ms
        out.append(
            f"<h3>Hotspots of {title}: slow cohort above p{100 * found.quantile:.0f}"
            f"{f' ({threshold:.1f} ms)' if threshold is not None else ''}, "
            f"{found.slow_requests} slow vs {found.baseline_requests} baseline</h3>"
        )
        if found.note:
            out.append(f"<p>{escape(found.note)}</p>")
        rows = [
            [
                escape(h.operation) + (" <b>●</b>" if h.significant else ""),
                _fmt(100 * h.slow_share, 1, "%"),
                _fmt(100 * h.baseline_share, 1, "%"),
                _fmt(h.lift, 2),
                _fmt(h.excess_ms, 2),
                "–" if h.p_value is None else f"{h.p_value:.2g}",
                "yes" if h.seed_rule else "",
                " ".join(_trace_link(t) for t in h.example_trace_ids[:3]),
            ]
            for h in found.hotspots[:8]
        ]
        if rows:
            out.append(_table(header, rows))
    models = d.load_models
    if models is not None:
        out.append("<h3>Load models</h3>")
        for key, fit, y_label in (("usl", models.usl, "throughput"),
                                  ("decay", models.decay, "mean E2E, ms")):  # fmt: skip
            out.append(f"<p><code>{escape(fit.formula)}</code>: {escape(fit.sentence)}</p>")
            points = [(p.load, _y(p, key)) for p in fit.points]
            curve = list(zip(fit.curve.load, fit.curve.value, strict=True))
            out.append(
                fit_chart(
                    points,
                    curve if fit.supported else [],
                    "load (in flight)",
                    y_label,
                    f"{key} fit",
                )
            )
    if d.examples:
        out.append("<h3>Example traces of the top hotspots</h3>")
        for trace_id, spans in d.examples.items():
            out.append(
                f"<h4 id='trace-{escape(trace_id)}'>trace <code>{escape(trace_id)}</code></h4>"
            )
            out.append(
                waterfall(
                    [(sp.name, sp.kind, sp.start_ms, sp.duration_ms, sp.depth) for sp in spans],
                    f"Trace {trace_id}",
                )
            )
    return "".join(out)


def _y(point: PointSummary, model: str) -> float:
    """What a load model plots against load: throughput (USL), mean latency (decay)."""
    return point.throughput if model == "usl" else point.latency_ms


def write_html(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(report), encoding="utf-8")
    tmp.replace(path)
