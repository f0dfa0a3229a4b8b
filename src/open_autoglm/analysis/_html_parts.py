"""Pieces every section of the HTML report uses: the style sheet, number cells, tables that
scroll on their own on a narrow screen, and links to a trace (its in-page waterfall, and the
user's Tempo/Grafana when the report has a trace URL template)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, Final
from urllib.parse import quote

CSS: Final = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1160px;color:#222;
padding:0 1em;overflow-wrap:anywhere}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #ddd}
h3{margin:1.2em 0 .4em} h4{margin:1em 0 .3em}
nav{font-size:.95em} nav a{margin-right:1em}
.scroll{overflow-x:auto;max-width:100%;margin:.5em 0}
table{border-collapse:collapse;overflow-wrap:normal}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap;
font-variant-numeric:tabular-nums} th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left;white-space:normal;min-width:8em}
td.text{text-align:left;white-space:normal;min-width:14em}
.badge{background:#c0392b;color:#fff;padding:2px 8px;border-radius:4px;font-size:.85em}
.note{background:#fff8e1;border-left:4px solid #f2b600;padding:.4em .8em;margin:.4em 0}
.headline{display:flex;gap:.8em;flex-wrap:wrap;margin:.8em 0} .kpi{border:1px solid #ddd;
padding:.5em .9em;border-radius:6px;min-width:130px;flex:1 1 130px}
.kpi b{display:block;font-size:1.4em} .kpi small{display:block;color:#666}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,460px),1fr));
gap:.4em 1.4em}
.grid>div{min-width:0}
svg.chart{width:100%;height:auto;font-size:12px;display:block;margin:.3em 0}
svg.waterfall{max-width:980px;min-width:600px;font-size:11px} svg.bars{min-width:480px}
svg circle:hover{stroke:#000;stroke-width:2}
.legend{display:flex;flex-wrap:wrap;gap:.2em 1em;font-size:.85em;margin:0 0 .6em 3.5em}
.legend i{display:inline-block;width:22px;margin-right:4px;vertical-align:middle}
.legend i.dot{width:8px;height:8px;border-radius:50%}
.small,dl.legend-table{font-size:.85em;color:#555}
dl.legend-table{display:grid;grid-template-columns:max-content 1fr;gap:.1em .8em;margin:.3em 0}
dl.legend-table dt{font-weight:600} dl.legend-table dd{margin:0}
code{background:#f4f4f4;padding:1px 4px}
a.ext{font-size:.85em;margin-left:.3em}
"""


def fmt(value: Any, digits: int = 1, unit: str = "") -> str:
    """A cell: numbers with thousands separators, None as an en dash, text escaped."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return escape(f"{value}{unit}")


def fmt_ms(value: float | None) -> str:
    """A latency in ms: two decimals under 10 ms, one above."""
    return fmt(value, 2 if value is not None and abs(value) < 10 else 1)


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table of ready cells (already escaped), in a box that scrolls sideways on its own
    when the screen is narrower than the table."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


def legend_table(entries: Sequence[tuple[str, str]]) -> str:
    """What each column of a table means."""
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in entries)
    return f"<dl class='legend-table'>{items}</dl>"


@dataclass(frozen=True, slots=True)
class TraceLinks:
    """Links of a trace id: to its waterfall when the page draws one (``drawn``), and to
    ``url_template`` (``{trace_id}`` replaced) when the user gave one."""

    drawn: frozenset[str]
    url_template: str | None = None

    def external(self, trace_id: str) -> str:
        if self.url_template is None:
            return ""
        url = self.url_template.replace("{trace_id}", quote(trace_id, safe=""))
        return (
            f"<a class='ext' href='{escape(url, quote=True)}' target='_blank' "
            f"rel='noopener noreferrer' title='open in your trace viewer'>trace ↗</a>"
        )

    def link(self, trace_id: str, *, chars: int = 12) -> str:
        """The id (its first ``chars`` characters) linked to its waterfall when drawn, and
        the external link when there is a template."""
        text = trace_id if len(trace_id) <= chars else trace_id[:chars] + "…"
        shown = f"<code title='{escape(trace_id)}'>{escape(text)}</code>"
        if trace_id in self.drawn:
            shown = f"<a href='#trace-{escape(trace_id)}'>{shown}</a>"
        return shown + self.external(trace_id)
