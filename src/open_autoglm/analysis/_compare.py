"""The seed's backend comparison table from several reports: one row per run and level with
mean latency, P95 latency, P95 TTFT, tokens/s, requests/s, peak memory and error rate; as
aligned text, Markdown, CSV or a self-contained HTML page."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

from open_autoglm.analysis._compare_html import comparison_charts, comparison_page
from open_autoglm.analysis._report_view import ReportReadError, ReportView

Format = Literal["text", "markdown", "csv", "html", "json"]
FORMATS: Final = ("text", "markdown", "csv", "html", "json")
_HEADER: Final = (
    "run",
    "level",
    "requests",
    "mean latency (ms)",
    "P95 latency (ms)",
    "P95 TTFT (ms)",
    "tokens/s",
    "requests/s",
    "peak memory (GB)",
    "error rate",
)


@dataclass(frozen=True, slots=True)
class CompareRow:
    run: str
    level: str
    requests: int | None
    mean_latency_ms: float | None
    p95_latency_ms: float | None
    p95_ttft_ms: float | None
    tokens_per_s: float | None
    requests_per_s: float | None
    peak_memory_gb: float | None  # GPU memory peak where measured, else server RSS peak
    peak_memory_source: str | None  # "gpu" or "rss"
    error_rate: float | None

    def cells(self) -> tuple[str, ...]:
        mem = _f(self.peak_memory_gb, ".2f")
        if self.peak_memory_source == "gpu":
            mem += " (GPU)"
        return (
            self.run,
            self.level,
            "n/a" if self.requests is None else str(self.requests),
            _f(self.mean_latency_ms, ".1f"),
            _f(self.p95_latency_ms, ".1f"),
            _f(self.p95_ttft_ms, ".1f"),
            _f(self.tokens_per_s, ".1f"),
            _f(self.requests_per_s, ".2f"),
            mem,
            "n/a" if self.error_rate is None else f"{self.error_rate:.2%}",
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _f(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else f"{value:{fmt}}"


def _names(views: Sequence[ReportView]) -> list[str]:
    """Each run's label, with its file name where two runs share one."""
    labels = [v.label for v in views]
    return [v.label if labels.count(v.label) == 1 else f"{v.label} ({v.path.name})" for v in views]


def compare_rows(paths: Sequence[Path], *, level: int | None = None) -> list[CompareRow]:
    """One row per level of each report (or only level ``level``).

    Raises :class:`ReportReadError` when ``level`` is given and a report has no level of that
    index, naming the reports without it and the levels each has."""
    rows = []
    views = [ReportView.open(p) for p in paths]
    if level is not None:
        _require_level(views, level)
    for view, run in zip(views, _names(views), strict=True):
        rss, gpu = view.peak_memory_bytes()
        memory, source = (gpu, "gpu") if gpu else (rss, "rss") if rss else (None, None)
        for lv in view.levels:
            if level is not None and lv.index != level:
                continue
            e2e, ttft = lv.stats("e2e"), lv.stats("ttft")
            rows.append(
                CompareRow(
                    run=run,
                    level=lv.name,
                    requests=lv.measured if lv.measured is not None else lv.requests,
                    mean_latency_ms=_num(e2e.mean),
                    p95_latency_ms=_num(e2e.p95),
                    p95_ttft_ms=_num(ttft.p95),
                    tokens_per_s=_num(lv.output_token_throughput),
                    requests_per_s=_num(lv.request_throughput),
                    peak_memory_gb=None if memory is None else memory / 1e9,
                    peak_memory_source=source,
                    error_rate=_num(lv.error_rate),
                )
            )
    return rows


def _require_level(views: Sequence[ReportView], level: int) -> None:
    lacking = [v for v in views if all(lv.index != level for lv in v.levels)]
    if not lacking:
        return

    def levels(view: ReportView) -> str:
        names = [
            str(lv.index) if lv.name == f"#{lv.index}" else f"{lv.index} ({lv.name})"
            for lv in view.levels
        ]
        return f"levels {', '.join(names)}" if names else "no levels"

    where = "; ".join(dict.fromkeys(f"{v.path} has {levels(v)}" for v in lacking))
    raise ReportReadError(f"no level {level} to compare (--level is an index): {where}")


def _num(value: float | None) -> float | None:
    return None if value is None else float(value)


def render(
    rows: Sequence[CompareRow], fmt: Format = "text", *, reports: Sequence[Path] = ()
) -> str:
    """The table in ``fmt``; the HTML page also draws the ``reports``' percentiles and
    throughput against load (raises :class:`ReportReadError` for a report it cannot read)."""
    cells = [r.cells() for r in rows]
    if fmt == "markdown":
        out = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
        out += ["| " + " | ".join(markdown_cell(c) for c in r) + " |" for r in cells]
        return "\n".join(out) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([f.name for f in CompareRow.__dataclass_fields__.values()])
        for r in rows:
            writer.writerow(["" if v is None else v for v in asdict(r).values()])
        return buffer.getvalue()
    if fmt == "html":
        views = [ReportView.open(p) for p in reports]
        return comparison_page(_HEADER, cells, comparison_charts(views, _names(views)))
    if fmt == "json":
        from open_autoglm import _strict_json as strict_json

        return strict_json.dumps([r.to_json() for r in rows], indent=2) + "\n"
    widths = [max(len(r[i]) for r in (_HEADER, *cells)) for i in range(len(_HEADER))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in (_HEADER, *cells)
    ]
    return "\n".join(lines) + "\n"


_MARKDOWN_SPECIAL: Final = str.maketrans({c: "\\" + c for c in "\\`*_[]|"})


def markdown_cell(text: str) -> str:
    """``text`` as literal table-cell content: HTML escaped (a model named ``<img src=x
    onerror=...>`` renders as text), Markdown punctuation and ``|`` backslash-escaped,
    line breaks turned into spaces."""
    flat = " ".join(text.splitlines())
    return html.escape(flat).translate(_MARKDOWN_SPECIAL)
