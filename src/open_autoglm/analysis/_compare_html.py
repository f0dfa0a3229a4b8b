"""The comparison page (``compare --format html``): the seed's backend table, then TTFT, TPOT,
ITL and E2E percentiles and output throughput against load, one colour per run and one dash
per percentile, self-contained like the report."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

from open_autoglm.analysis._html_parts import CSS
from open_autoglm.analysis._report_view import LevelView, ReportView, StatName
from open_autoglm.analysis._svg import PALETTE
from open_autoglm.analysis._svg_line import DASHES, Line, line_chart

#: The percentiles drawn against load, with the statistic of a level that holds each.
PERCENTILES: tuple[tuple[str, StatName], ...] = (("p50", "median"), ("p90", "p90"),
                                                 ("p99", "p99"))  # fmt: skip
_METRICS = (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2e", "E2E"))


def _x(views: Sequence[ReportView]) -> tuple[str, dict[tuple[int, int], float]]:
    """The load axis: each level's concurrency when every level of every run set one, else
    its achieved request rate; levels with neither are left out."""
    levels = [(r, lv) for r, view in enumerate(views) for lv in view.levels]
    if levels and all(lv.mode == "concurrency" and lv.target is not None for _, lv in levels):
        return "concurrency (requests in flight)", {
            (r, lv.index): float(lv.target or 0) for r, lv in levels
        }
    return "achieved requests/s", {
        (r, lv.index): lv.request_throughput
        for r, lv in levels
        if lv.request_throughput is not None
    }


def _points(
    run: int,
    levels: Sequence[LevelView],
    xs: dict[tuple[int, int], float],
    value: Callable[[LevelView], float | None],
) -> list[tuple[float, float]]:
    out = []
    for lv in levels:
        y = value(lv)
        if (run, lv.index) in xs and y is not None:
            out.append((xs[(run, lv.index)], float(y)))
    return sorted(out)


def _stat(metric: str, stat: StatName) -> Callable[[LevelView], float | None]:
    def value(level: LevelView) -> float | None:
        return level.stats(metric).stat(stat)

    return value


def comparison_charts(views: Sequence[ReportView], names: Sequence[str]) -> str:
    """Percentiles and throughput against load, one chart per metric (empty when no run has
    two levels)."""
    if not any(len(v.levels) > 1 for v in views):
        return ""
    x_label, xs = _x(views)
    figures = []
    for metric, title in _METRICS:
        lines = [
            Line(
                f"{name} {label}",
                _points(r, view.levels, xs, _stat(metric, stat)),
                PALETTE[r % len(PALETTE)],
                DASHES[k % len(DASHES)],
                markers=True,
            )
            for r, (view, name) in enumerate(zip(views, names, strict=True))
            for k, (label, stat) in enumerate(PERCENTILES)
        ]
        lines = [line for line in lines if line.points]
        if lines:
            chart = line_chart(lines, x_label, f"{title}, ms", f"{title} against load")
            figures.append(f"<div><h3>{title} against load</h3>{chart}</div>")
    tokens = [
        Line(name, _points(r, view.levels, xs, lambda lv: lv.output_token_throughput),
             PALETTE[r % len(PALETTE)], markers=True)
        for r, (view, name) in enumerate(zip(views, names, strict=True))
    ]  # fmt: skip
    tokens = [line for line in tokens if line.points]
    if tokens:
        chart = line_chart(tokens, x_label, "output tokens/s", "Throughput against load")
        figures.append(f"<div><h3>Output throughput against load</h3>{chart}</div>")
    return "<h2>Against load</h2><div class='grid'>" + "".join(figures) + "</div>"


def comparison_page(header: Sequence[str], cells: Sequence[Sequence[str]], charts: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in cells
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>open-autoglm compare</title><style>{CSS}"
        "td:nth-child(2),th:nth-child(2){text-align:left}</style></head><body>"
        "<h1>Backend comparison</h1>"
        f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
        f"</table></div>{charts}</body></html>\n"
    )
