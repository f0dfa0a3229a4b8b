"""Inline-SVG stage bars and trace waterfalls for the self-contained HTML report (no scripts,
no fonts); lines, scatters and histograms are in :mod:`._svg_line`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip
_W = 640  # the stage bars' width
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
            w = (values.get(key) or 0.0) / x_max * (_W - 150 - 90)  # room for the total
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
        f'<svg class="chart bars" viewBox="0 0 {_W} {height:.0f}" role="img" '
        f'aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )


@dataclass(frozen=True, slots=True)
class WaterfallScale:
    """One time axis for every waterfall of a page: ``x_max`` ms across, and room for
    ``label_chars`` characters of span names on the left."""

    x_max: float
    label_chars: int = 24

    @classmethod
    def of(cls, traces: Iterable[Sequence[tuple[str, str, float, float, int]]]) -> WaterfallScale:
        rows = [row for spans in traces for row in spans]
        end = max((start + duration for _, _, start, duration, _ in rows), default=1.0)
        chars = max((len(name) + 2 * depth for name, _, _, _, depth in rows), default=10)
        return cls(_nice_max(end), min(max(chars, 10), 40))


_WF_W = 760
_WF_CHAR = 6.6  # px per character at the chart's 11 px


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.3g} ms"


def waterfall(
    spans: Sequence[tuple[str, str, float, float, int]],
    title: str,
    scale: WaterfallScale | None = None,
) -> str:
    """Rows of (name, kind, start ms, duration ms, depth) on the time axis of ``scale`` (one
    for every waterfall of a page, so that a longer trace draws longer), each bar with its
    duration written beside it."""
    if not spans:
        return "<p>No spans in the store for this trace.</p>"
    scale = scale or WaterfallScale.of([spans])
    x_max = scale.x_max
    left = 8 + scale.label_chars * _WF_CHAR
    right = 16.0
    span_w = _WF_W - left - right
    row_h = 18
    top = 6
    axis_y = top + row_h * len(spans) + 4
    height = axis_y + 22
    parts: list[str] = []
    for i in range(5):
        x = left + i / 4 * span_w
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}" stroke="#e4e4e4"/>'
            f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="{anchor}">'
            f"{_num(x_max * i / 4)} ms</text>"
        )
    for i, (name, kind, start, duration, depth) in enumerate(spans):
        y = top + i * row_h
        x = left + start / x_max * span_w
        w = max(duration / x_max * span_w, 1.0)
        label = "  " * depth + name
        if len(label) > scale.label_chars:
            label = label[: scale.label_chars - 1] + "…"
        parts.append(f'<text x="4" y="{y + 13}" xml:space="preserve">{escape(label)}</text>')
        fill = color(kind if kind in ("CLIENT", "SERVER") else name, i)
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 4}" '
            f'fill="{fill}"><title>{escape(name)}: '
            f"{duration:.3f} ms at +{start:.3f} ms</title></rect>"
        )
        text = _ms(duration)
        room = len(text) * _WF_CHAR + 6
        if x + w + room <= _WF_W - 2:
            parts.append(f'<text x="{x + w + 4:.1f}" y="{y + 13}">{text}</text>')
        elif w >= room:
            parts.append(
                f'<text x="{x + w - 4:.1f}" y="{y + 13}" text-anchor="end" '
                f'fill="#fff">{text}</text>'
            )
        else:
            parts.append(f'<text x="{x - 4:.1f}" y="{y + 13}" text-anchor="end">{text}</text>')
    return (
        f'<svg class="chart waterfall" viewBox="0 0 {_WF_W} {height:.0f}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>{"".join(parts)}</svg>'
    )
