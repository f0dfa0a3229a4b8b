"""Line, scatter and histogram charts for the HTML report, inline SVG with an HTML legend
(which wraps on a narrow screen). Every point carries a ``<title>``: the browser shows its
values on hover, no script needed."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from open_autoglm.analysis._svg import PALETTE, _nice_max, _num

_W, _H = 560, 300
_L, _R, _T, _B = 62, 14, 12, 40  # margins: left, right, top, bottom

#: A histogram with values in at most this many bins is shown as a table of counts.
SPARSE_BINS = 6
#: The dash of a line by its rank (p50 solid, p90 dashed, p99 dotted, ...).
DASHES = ("", "7 4", "2 3", "10 3 2 3")


@dataclass(frozen=True, slots=True)
class Line:
    """One series: ``points`` (x, y), drawn as a line (``markers`` adds dots) or as dots
    only (``scatter``)."""

    name: str
    points: Sequence[tuple[float, float]]
    color: str = PALETTE[0]
    dash: str = ""
    markers: bool = False
    scatter: bool = False


def legend(lines: Sequence[Line]) -> str:
    """The legend of a chart as HTML (a swatch of each line's colour and dash)."""
    items = []
    for line in lines:
        style = "dotted" if line.dash == DASHES[2] else "dashed" if line.dash else "solid"
        swatch = (
            f"<i style='border-top:3px {style} {line.color}'></i>"
            if not line.scatter
            else f"<i class='dot' style='background:{line.color}'></i>"
        )
        items.append(f"<span>{swatch}{escape(line.name)}</span>")
    return f"<div class='legend'>{''.join(items)}</div>"


def nice_step(span: float, count: int = 4) -> float:
    """A round tick step (1, 2, 2.5 or 5 × 10^k) giving about ``count`` ticks over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= step * magnitude:
            return step * magnitude
    return 10.0 * magnitude


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round values from ``low`` up to ``high`` (both included when round)."""
    step = nice_step(high - low, count)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-6:
        ticks.append(round(value, 10))
        value += step
    return ticks


def line_chart(
    lines: Sequence[Line],
    x_label: str,
    y_label: str,
    title: str,
    *,
    marks: Sequence[tuple[float, str]] = (),
    x_from_zero: bool = True,
    x_max: float | None = None,
    x_ticks: Sequence[float] | None = None,
    y_max: float | None = None,
) -> str:
    """Lines on linear axes (y from zero); ``marks`` are labelled vertical lines at x (the
    start of each level on a time axis). The x axis ends at ``x_max`` (else a round value
    above the data) with ticks at ``x_ticks`` (else round values). The legend follows."""
    points = [p for line in lines for p in line.points]
    if not points:
        return "<p>No data.</p>"
    xs = [x for x, _ in points]
    x_low = 0.0 if x_from_zero else min(xs)
    x_high = x_max if x_max is not None else max(xs)
    if x_high <= x_low:
        x_high = x_low + 1.0
    if x_max is None and x_ticks is None:
        x_high = x_low + _nice_max(x_high - x_low) if x_from_zero else x_high
    y_high = y_max or _nice_max(max(y for _, y in points))
    pw, ph = _W - _L - _R, _H - _T - _B
    x_tick_values = list(x_ticks) if x_ticks is not None else _ticks(x_low, x_high)

    def px(x: float) -> float:
        return _L + (x - x_low) / (x_high - x_low) * pw

    def py(y: float) -> float:
        return _T + ph - y / y_high * ph

    parts = [
        f'<line x1="{_L}" y1="{_T + ph}" x2="{_W - _R}" y2="{_T + ph}" stroke="#444"/>',
        f'<line x1="{_L}" y1="{_T}" x2="{_L}" y2="{_T + ph}" stroke="#444"/>',
        f'<text x="{_L + pw / 2}" y="{_H - 6}" text-anchor="middle">{escape(x_label)}</text>',
        f'<text x="14" y="{_T + ph / 2}" transform="rotate(-90 14 {_T + ph / 2})" '
        f'text-anchor="middle">{escape(y_label)}</text>',
    ]
    for i, y in enumerate(_ticks(0.0, y_high)):
        parts.append(
            f'<line x1="{_L}" y1="{py(y):.1f}" x2="{_W - _R}" y2="{py(y):.1f}" '
            f'stroke="#eee"/>'
            * (i > 0)
            + f'<text x="{_L - 5}" y="{py(y) + 4:.1f}" text-anchor="end">{_num(y)}</text>'
        )
    for x in x_tick_values:
        anchor = "end" if px(x) > _W - _R - 12 else "middle"
        parts.append(
            f'<line x1="{px(x):.1f}" y1="{_T + ph}" x2="{px(x):.1f}" y2="{_T + ph + 4}" '
            f'stroke="#444"/><text x="{px(x):.1f}" y="{_T + ph + 16}" '
            f'text-anchor="{anchor}">{_num(x)}</text>'
        )
    for x, label in marks:
        parts.append(
            f'<line x1="{px(x):.1f}" y1="{_T}" x2="{px(x):.1f}" y2="{_T + ph}" stroke="#999" '
            f'stroke-dasharray="3 3"><title>{escape(label)}</title></line>'
        )
    for line in lines:
        if not line.points:
            continue
        name = escape(line.name)
        if not line.scatter:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in line.points)
            dash = f' stroke-dasharray="{line.dash}"' if line.dash else ""
            parts.append(
                f'<polyline fill="none" stroke="{line.color}" stroke-width="2"{dash} '
                f'points="{path}"><title>{name}</title></polyline>'
            )
        if line.markers or line.scatter:
            radius = 3.5 if not line.scatter or len(line.points) < 30 else 2.5
            opacity = ' fill-opacity=".6"' if line.scatter else ""
            parts += [
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{radius}" fill="{line.color}"'
                f"{opacity}>"
                f"<title>{name}: {_num(x)}, {_num(y)}</title></circle>"
                for x, y in line.points
            ]
    svg = (
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )
    return svg + legend(lines)


def histogram_chart(
    edges: Sequence[float],
    counts: Mapping[str, Sequence[int]],
    x_label: str,
    title: str,
    *,
    above: dict[str, int] | None = None,
) -> str:
    """Counts per bin as a step outline per series (bars when there is one series), shared
    bins; a note says how many values lie past the last edge."""
    if not counts or len(edges) < 2:
        return "<p>No data.</p>"
    if edges[0] == edges[-1]:
        return f"<p>Every value is {_num(edges[0])} {escape(x_label)}.</p>"
    used = [k for k in range(len(edges) - 1) if any(v[k] for v in counts.values())]
    if len(used) <= SPARSE_BINS:  # a few values: a table reads better than spikes
        return _count_table(edges, counts, used, x_label)
    lines = []
    for i, (name, values) in enumerate(counts.items()):
        total = sum(values) or 1
        points: list[tuple[float, float]] = []
        for k, count in enumerate(values):
            share = 100 * count / total
            points += [(edges[k], share), (edges[k + 1], share)]
        lines.append(Line(name, points, PALETTE[i % len(PALETTE)]))
    chart = line_chart(lines, x_label, "% of values", title, x_from_zero=False, x_max=edges[-1])
    past = {k: v for k, v in (above or {}).items() if v}
    if past:
        listed = ", ".join(f"{escape(k)}: {v}" for k, v in past.items())
        chart += f"<p class='small'>Past {_num(edges[-1])} (not drawn): {listed}.</p>"
    return chart


def _count_table(
    edges: Sequence[float], counts: Mapping[str, Sequence[int]], used: Sequence[int], x_label: str
) -> str:
    head = "".join(f"<th>{escape(name)}</th>" for name in counts)
    rows = []
    for k in used:
        low, high = edges[k], edges[k + 1]
        if edges[0] % 1 == 0.5:  # bins of whole numbers: name the numbers
            low, high = math.ceil(low), math.floor(high)
        span = _num(low) if low == high else f"{_num(low)}–{_num(high)}"
        cells = "".join(f"<td>{values[k]}</td>" for values in counts.values())
        rows.append(f"<tr><td>{span}</td>{cells}</tr>")
    return (
        f"<div class='scroll'><table><tr><th>{escape(x_label)}</th>{head}</tr>"
        f"{''.join(rows)}</table></div><p class='small'>Values per bin.</p>"
    )
