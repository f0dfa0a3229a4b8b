"""Analysis: the report of a run (stages joined by trace id, resources, HTML)."""

from open_autoglm.analysis._html import render_html, write_html
from open_autoglm.analysis._report import REPORT_VERSION, Report, ReportError, build_report
from open_autoglm.analysis._stages import StageBreakdown, stage_breakdown

__all__ = [
    "REPORT_VERSION",
    "Report",
    "ReportError",
    "StageBreakdown",
    "build_report",
    "render_html",
    "stage_breakdown",
    "write_html",
]
