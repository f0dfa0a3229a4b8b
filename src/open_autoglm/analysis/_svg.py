"""Small inline-SVG charts for the self-contained HTML report (no scripts, no fonts)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip
_W, _H, _L, _B = 640, 260, 56, 36  # width, height, left and bottom margins
#: One colour per stage and TTFT part, the same in every chart and waterfall.
COLORS = {
    "tokenize": "#76b7b2", "preprocess": "#9c755f", "queue": "#edc948", "prefill": "#b07aa1",
    "decode": "#59a14f", "detokenize": "#bab0ac", "client_queue": "#ff9da7",
    "network_in": "#e15759", "server_pre": "#76b7b2", "first_flush": "#f28e2b",
    "CLIENT": "#4e79a7", "SERVER": "#f28e2b",
}  # fmt: skip


def _num(value: float) -> str:
    """An axis label: 0.25, 12.5, 32,500 (no exponents)."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def color(key: str, index: int) -> str:
    return COLORS.get(key, PALETTE[index % len(PALETTE)])


def _nice_max(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above ``value``."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * magnitude:
            return step * magnitude
    return 10.0 * magnitude


def _axes(x_label: str, y_label: str, y_max: float, x_max: float | None = None) -> list[str]:
    parts = [
        f'<line x1="{_L}" y1="{_H - _B}" x2="{_W - 10}" y2="{_H - _B}" stroke="#444"/>',
        f'<line x1="{_L}" y1="10" x2="{_L}" y2="{_H - _B}" stroke="#444"/>',
        f'<text x="{(_W + _L) / 2}" y="{_H - 4}" text-anchor="middle">{escape(x_label)}</text>',
        f'<text x="12" y="{_H / 2}" transform="rotate(-90 12 {_H / 2})" '
        f'text-anchor="middle">{escape(y_label)}</text>',
    ]
    for i in range(5):
        frac = i / 4
        y = _H - _B - frac * (_H - _B - 10)
        parts.append(
            f'<text x="{_L - 4}" y="{y + 4:.1f}" text-anchor="end">{_num(y_max * frac)}</text>'
        )
        if x_max is not None:
            x = _L + frac * (_W - _L - 10)
            parts.append(
                f'<text x="{x:.1f}" y="{_H - _B + 14}" text-anchor="middle">'
                f"{_num(x_max * frac)}</text>"
            )
    return parts


def _svg(parts: Sequence[str], title: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )


def cdf_chart(series: Mapping[str, Sequence[float]], x_label: str, title: str) -> str:
    """Lines of quantiles 0..100 (x: value, y: fraction of requests)."""
    values = [v for qs in series.values() for v in qs]
    if not values:
        return "<p>No data.</p>"
    x_max = _nice_max(max(values))
    parts = _axes(x_label, "fraction of requests", 1.0, x_max)
    legend = []
    for i, (name, quantiles) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        n = len(quantiles) - 1
        points = " ".join(
            f"{_L + q / x_max * (_W - _L - 10):.1f},{_H - _B - k / n * (_H - _B - 10):.1f}"
            for k, q in enumerate(quantiles)
        )
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        legend.append(f'<text x="{_L + 10}" y="{24 + 14 * i}" fill="{color}">{escape(name)}</text>')
    return _svg(parts + legend, title)


def bar_chart(labels: Sequence[str], values: Sequence[float], y_label: str, title: str) -> str:
    if not values:
        return "<p>No data.</p>"
    y_max = _nice_max(max(values))
    parts = _axes("", y_label, y_max)
    width = (_W - _L - 20) / max(len(values), 1)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = value / y_max * (_H - _B - 10)
        x = _L + 5 + i * width
        parts.append(
            f'<rect x="{x:.1f}" y="{_H - _B - h:.1f}" width="{width * 0.8:.1f}" height="{h:.1f}" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: {value:.4g}</title></rect>'
        )
        parts.append(
            f'<text x="{x + width * 0.4:.1f}" y="{_H - _B + 14}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    return _svg(parts, title)


def stacked_bars(rows: dict[str, dict[str, float | None]], unit: str, title: str) -> str:
    """One horizontal bar per row, split into parts (same keys in every row)."""
    totals = [sum(v or 0.0 for v in parts.values()) for parts in rows.values()]
    if not rows or not max(totals, default=0):
        return "<p>No data.</p>"
    x_max = _nice_max(max(totals))
    bar_h = 28
    height = 40 + bar_h * 1.6 * len(rows) + 30
    parts: list[str] = []
    keys = list(next(iter(rows.values())))
    for r, (label, values) in enumerate(rows.items()):
        y = 20 + r * bar_h * 1.6
        parts.append(f'<text x="4" y="{y + bar_h / 2 + 4}">{escape(label)}</text>')
        x = 150.0
        for k, key in enumerate(keys):
            w = (values.get(key) or 0.0) / x_max * (_W - 170)
            if w > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                    f'fill="{color(key, k)}"><title>{escape(key)}: '
                    f"{values.get(key) or 0:.4g} {escape(unit)}</title></rect>"
                )
            x += w
        parts.append(
            f'<text x="{x + 4:.1f}" y="{y + bar_h / 2 + 4}">{totals[r]:.4g} {escape(unit)}</text>'
        )
    legend_y = height - 12
    lx = 10.0
    for k, key in enumerate(keys):
        parts.append(
            f'<rect x="{lx:.0f}" y="{legend_y - 9}" width="10" height="10" '
            f'fill="{color(key, k)}"/><text x="{lx + 14:.0f}" y="{legend_y}">'
            f"{escape(key)}</text>"
        )
        lx += 24 + 6.5 * len(key)  # room for the label at 11 px
    return (
        f'<svg class="chart" viewBox="0 0 {_W} {height:.0f}" role="img" '
        f'aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )


def waterfall(spans: Sequence[tuple[str, str, float, float, int]], title: str) -> str:
    """Rows of (name, kind, start ms, duration ms, depth) on one time axis."""
    if not spans:
        return "<p>No spans in the store for this trace.</p>"
    end = max(start + duration for _, _, start, duration, _ in spans)
    x_max = _nice_max(end)
    row_h = 18
    height = 20 + row_h * len(spans) + 24
    parts: list[str] = []
    for i, (name, kind, start, duration, depth) in enumerate(spans):
        y = 10 + i * row_h
        x = 200 + start / x_max * (_W - 210)
        w = max(duration / x_max * (_W - 210), 1.0)
        label = "  " * depth + name
        parts.append(f'<text x="4" y="{y + 12}" xml:space="preserve">{escape(label)}</text>')
        fill = color(kind if kind in ("CLIENT", "SERVER") else name, i)
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 4}" '
            f'fill="{fill}"><title>{escape(name)}: '
            f"{duration:.3f} ms at +{start:.3f} ms</title></rect>"
        )
    parts.append(
        f'<text x="200" y="{height - 6}">0 ms</text>'
        f'<text x="{_W - 10}" y="{height - 6}" text-anchor="end">{_num(x_max)} ms</text>'
    )
    return (
        f'<svg class="chart" viewBox="0 0 {_W} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )


def fit_chart(
    points: Sequence[tuple[float, float]],
    curve: Sequence[tuple[float, float]],
    x_label: str,
    y_label: str,
    title: str,
) -> str:
    """Measured points (dots) and a fitted curve (line) on linear axes from zero."""
    if not points:
        return "<p>No data.</p>"
    x_max = _nice_max(max(x for x, _ in [*points, *curve]))
    y_max = _nice_max(max(y for _, y in [*points, *curve]))
    parts = _axes(x_label, y_label, y_max, x_max)

    def xy(x: float, y: float) -> str:
        return f"{_L + x / x_max * (_W - _L - 10):.1f},{_H - _B - y / y_max * (_H - _B - 10):.1f}"

    if curve:
        line = " ".join(xy(x, y) for x, y in curve)
        parts.append(
            f'<polyline fill="none" stroke="{PALETTE[1]}" stroke-width="2" points="{line}"/>'
        )
    for x, y in points:
        cx, cy = xy(x, y).split(",")
        parts.append(
            f'<circle cx="{cx}" cy="{cy}" r="4" fill="{PALETTE[0]}"><title>{x:.4g}: {y:.4g}'
            "</title></circle>"
        )
    return _svg(parts, title)
