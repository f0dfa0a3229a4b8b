"""The report's diagnosis section: hotspot tables a person can read (each column defined, only
operations that the slow requests spend more of their time on, no near-duplicate rows), the
load models, and the waterfalls of the top hotspots' example traces."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Final

from open_autoglm.analysis._hotspots import Hotspot, HotspotReport
from open_autoglm.analysis._html_parts import TraceLinks, fmt, legend_table, table
from open_autoglm.analysis._load_models import PointSummary
from open_autoglm.analysis._report import Report
from open_autoglm.analysis._stages import WaterfallSpan
from open_autoglm.analysis._svg import PALETTE, WaterfallScale, waterfall
from open_autoglm.analysis._svg_line import Line, line_chart

#: Rows of a hotspot table at most.
MAX_ROWS: Final = 8
_HEADER: Final = ("operation", "slow share", "others' share", "lift", "extra ms", "p",
                  "call rule", "examples")  # fmt: skip
_LEGEND: Final = (
    ("operation", "a server stage on the requests' critical path, alone or for the requests "
     "in one bucket of an attribute (queue depth, batch size, prompt tokens, in flight)"),
    ("slow share", "share of the slow requests' critical-path time spent in it"),
    ("others' share", "the same share for the other requests (the baseline)"),
    ("lift", "slow share ÷ others' share: how much more of their time the slow requests "
     "spend here (only rows above 1 are listed)"),
    ("extra ms", "its mean ms per slow request minus its mean per other request"),
    ("p", "one-sided Mann-Whitney U test that its time is longer in the slow requests; "
     "● marks a significant hotspot"),
    ("call rule", "the seed's rule: more than N calls with a mean above M ms"),
    ("examples", "slow requests that spent the most time in it"),
)  # fmt: skip


def shown_hotspots(found: HotspotReport, limit: int = MAX_ROWS) -> list[Hotspot]:
    """The rows worth reading: lift above 1 (or no baseline time at all), and not a near
    duplicate (same stage with the same shares and extra time, as two attributes that split
    the requests the same way give) of a row already listed."""
    rows: list[Hotspot] = []
    seen: set[tuple[str, float, float, float]] = set()
    for h in found.hotspots:
        if h.slow_share <= 0 or (h.lift is not None and h.lift <= 1):
            continue
        key = (h.stage, round(h.slow_share, 3), round(h.baseline_share, 3), round(h.excess_ms))
        if key in seen:
            continue
        seen.add(key)
        rows.append(h)
        if len(rows) == limit:
            break
    return rows


def drawn_examples(report: Report) -> dict[str, list[WaterfallSpan]]:
    """The hotspot examples whose waterfalls the page draws: the first ``report.waterfalls``
    (at least one when there are any)."""
    d = report.diagnosis
    if d is None:
        return {}
    count = max(1, report.waterfalls)
    return dict(list(d.examples.items())[:count])


def diagnosis_section(
    report: Report,
    links: TraceLinks,
    scale: WaterfallScale,
    examples: dict[str, list[WaterfallSpan]],
) -> str:
    d = report.diagnosis
    if d is None:
        return (
            "<h2 id='diagnosis'>Diagnosis</h2><p>No span store: no diagnosis of where the "
            "slow requests' time went.</p>"
        )
    out = ["<h2 id='diagnosis'>Diagnosis</h2>"]
    if d.summary:
        out.append("<ul>" + "".join(f"<li>{escape(s)}</li>" for s in d.summary) + "</ul>")
    notes = {found.note for found in d.hotspots.values()}
    if d.hotspots and notes != {None} and len(notes) == 1:
        (note,) = notes
        which = " or ".join(_title(m) for m in d.hotspots)
        out.append(f"<p>No hotspot analysis of {which}: {escape(str(note))}.</p>")
    else:
        out.append(_hotspot_tables(d.hotspots, links))
    models = d.load_models
    if models is not None:
        out.append("<h3>Load models</h3><div class='grid'>")
        for key, fit, y_label in (("usl", models.usl, "throughput"),
                                  ("decay", models.decay, "mean E2E, ms")):  # fmt: skip
            points = [(p.load, _y(p, key)) for p in fit.points]
            curve = list(zip(fit.curve.load, fit.curve.value, strict=True))
            lines = [Line("measured", points, PALETTE[0], scatter=True)]
            if fit.supported:
                lines.append(Line("fit", curve, PALETTE[1]))
            out.append(
                f"<div><p><code>{escape(fit.formula)}</code>: {escape(fit.sentence)}</p>"
                + line_chart(lines, "load (in flight)", y_label, f"{key} fit")
                + "</div>"
            )
        out.append("</div>")
    if examples:
        out.append("<h3>Example traces of the top hotspots</h3>")
        for trace_id, spans in examples.items():
            out.append(
                f"<h4 id='trace-{escape(trace_id)}'>trace <code>{escape(trace_id)}</code>"
                f"{links.external(trace_id)}</h4>"
            )
            rows = [(sp.name, sp.kind, sp.start_ms, sp.duration_ms, sp.depth) for sp in spans]
            out.append(f"<div class='scroll'>{waterfall(rows, f'Trace {trace_id}', scale)}</div>")
        more = [t for t in d.examples if t not in examples]
        if more:
            out.append(
                "<p class='small'>More examples: " + " ".join(links.link(t) for t in more) + "</p>"
            )
    return "".join(out)


def _title(metric: str) -> str:
    return "E2E" if metric == "e2e" else "TTFT"


def _hotspot_tables(hotspots: dict[str, HotspotReport], links: TraceLinks) -> str:
    out: list[str] = []
    legend_shown = False
    for metric, found in hotspots.items():
        threshold = found.threshold_ms
        out.append(
            f"<h3>Hotspots of {_title(metric)}: slow requests above "
            f"p{100 * found.quantile:g}"
            f"{f' ({threshold:,.1f} ms)' if threshold is not None else ''}"
        )
        if found.note:
            out.append(f"</h3><p>No hotspot analysis: {escape(found.note)}.</p>")
            continue
        out.append(f", {found.slow_requests} slow against {found.baseline_requests} others</h3>")
        rows = shown_hotspots(found)
        if not rows:
            out.append("<p>No operation takes a larger share of the slow requests' time.</p>")
            continue
        out.append(table(_HEADER, [_row(h, links) for h in rows]))
        if not legend_shown:
            out.append(legend_table(_LEGEND))
            legend_shown = True
    return "".join(out)


def _row(h: Hotspot, links: TraceLinks) -> Sequence[str]:
    return [
        escape(h.operation) + (" <b title='significant'>●</b>" if h.significant else ""),
        fmt(100 * h.slow_share, 1, "%"),
        fmt(100 * h.baseline_share, 1, "%"),
        "∞" if h.lift is None else fmt(h.lift, 2),
        fmt(h.excess_ms, 1),
        "–" if h.p_value is None else f"{h.p_value:.2g}",
        "yes" if h.seed_rule else "",
        " ".join(links.link(t, chars=8) for t in h.example_trace_ids[:1]),
    ]


def _y(point: PointSummary, model: str) -> float:
    """What a load model plots against load: throughput (USL), mean latency (decay)."""
    return point.throughput if model == "usl" else point.latency_ms
