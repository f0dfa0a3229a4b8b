"""What the HTML report shows and in what order: results first, then the diagnosis, then the
details; every waterfall on one time scale with durations written; trace links to the user's
trace viewer; hotspot tables with defined columns and only real hotspots."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from open_autoglm.analysis import Report, ReportError, ReportOptions, render_html
from open_autoglm.analysis._hotspots import HotspotConfig, _empty
from open_autoglm.analysis._html_diagnosis import shown_hotspots

GOLDEN = Path(__file__).parents[2] / "fixtures" / "report_run" / "golden_report.json"


@pytest.fixture(scope="module")
def report() -> Report:
    return Report.from_json(json.loads(GOLDEN.read_text(encoding="utf-8")))


def test_results_come_first_then_diagnosis_then_details(report: Report) -> None:
    html = render_html(report)
    ids = ["results", "diagnosis", "over-time", "distributions", "stages", "slowest"]
    positions = [html.index(f"<h2 id='{i}'>") for i in ids]
    assert positions == sorted(positions)
    results = html[positions[0] : positions[1]]
    # a table per latency metric with mean and the report's percentiles, per level
    for metric in ("TTFT", "TPOT", "ITL", "E2E"):
        columns = "".join(f"<th>{c}</th>" for c in (metric, "mean", "p50", "p90", "p95", "p99"))
        assert columns in results
        assert f"{metric} percentiles against load" in results
    assert "<th>requests</th><th>errors</th>" in results


def test_the_details_draw_the_curves_every_peer_draws(report: Report) -> None:
    html = render_html(report)
    for title in ("Completed requests per second", "Requests in flight (client)",
                  "Server queue and batch", "ITL distribution", "Median ITL by output position",
                  "TTFT against input length", "Input length", "Output length"):  # fmt: skip
        assert f"<h4>{title}</h4>" in html, title
    assert "<script" not in html
    assert not re.search(r"(src|href)=['\"]https?://", html)  # nothing fetched


def test_waterfalls_share_one_time_scale_and_write_durations(report: Report) -> None:
    html = render_html(report)
    waterfalls = re.findall(r'<svg class="chart waterfall".*?</svg>', html)
    assert 1 < len(waterfalls) <= 2 * report.waterfalls
    # the axis's five ticks come first: the same last tick everywhere
    axis_ends = {re.findall(r">([\d,.]+) ms</text>", w)[4] for w in waterfalls}
    assert len(axis_ends) == 1
    for w in waterfalls:
        bars = w.count("<rect")
        written = len(re.findall(r"<text[^>]*>[\d,.]+ ms</text>", w)) - 5  # minus the axis ticks
        assert written == bars
    fewer = render_html(dataclasses.replace(report, waterfalls=1))
    assert fewer.count('class="chart waterfall"') < len(waterfalls)


def test_trace_ids_link_to_the_users_trace_viewer(report: Report) -> None:
    assert "trace ↗" not in render_html(report)
    template = "http://127.0.0.1:3000/explore?trace={trace_id}&x=1"
    html = render_html(dataclasses.replace(report, trace_url=template))
    assert report.stages is not None
    slow = report.stages.slowest[0].trace_id
    assert f"href='http://127.0.0.1:3000/explore?trace={slow}&amp;x=1'" in html
    assert f"href='#trace-{slow}'" in html  # and to the in-page waterfall


@pytest.mark.parametrize("url", ["http://x/trace", "file:///{trace_id}", "{trace_id}"])
def test_a_trace_url_without_its_place_or_scheme_is_refused(url: str) -> None:
    with pytest.raises(ReportError, match="trace_id"):
        ReportOptions(trace_url=url)


def test_hotspot_tables_list_only_hotspots_once_with_a_legend(report: Report) -> None:
    assert report.diagnosis is not None
    for found in report.diagnosis.hotspots.values():
        rows = shown_hotspots(found)
        assert rows
        assert all(h.lift is None or h.lift > 1 for h in rows)
        keys = [(h.stage, round(h.slow_share, 3), round(h.baseline_share, 3)) for h in rows]
        assert len(keys) == len(set(keys))
        assert len(rows) < len(found.hotspots)  # the fixture has rows that are not hotspots
    html = render_html(report)
    assert html.count("<dt>lift</dt>") == 1
    assert "<th>lift</th>" in html


def test_a_rate_run_is_drawn_against_its_achieved_rate(report: Report) -> None:
    summary = [dataclasses.replace(s, load_kind="rate") for s in report.summary]
    html = render_html(dataclasses.replace(report, summary=summary))
    results = html[html.index("<h2 id='results'>") : html.index("<h2 id='diagnosis'>")]
    assert "achieved requests/s" in results
    assert "concurrency (requests in flight)" not in results


def test_each_trace_is_drawn_once(report: Report) -> None:
    assert report.diagnosis is not None
    assert report.stages is not None
    first_example = next(iter(report.diagnosis.examples))
    slowest = [s for s in report.stages.slowest if s.trace_id != first_example]
    twice = dataclasses.replace(
        report.stages,
        slowest=[*slowest[:1], dataclasses.replace(slowest[0], trace_id=first_example)],
    )
    html = render_html(dataclasses.replace(report, stages=twice))
    ids = re.findall(r"id='(trace-[0-9a-f]+)'", html)
    assert len(ids) == len(set(ids))
    assert f"id='trace-{first_example}'" in html


def test_a_run_too_small_to_split_says_why_once(report: Report) -> None:
    assert report.diagnosis is not None
    note = "20 requests leave 2 above P90 (3 needed); run at least 22 requests"
    hotspots = {
        metric: _empty(HotspotConfig(metric=metric, quantile=0.9), note)
        for metric in ("e2e", "ttft")
    }
    diagnosis = dataclasses.replace(report.diagnosis, hotspots=hotspots, summary=[])
    html = render_html(dataclasses.replace(report, diagnosis=diagnosis))
    assert html.count(note) == 1
    assert f"No hotspot analysis of E2E or TTFT: {note}." in html
    assert "uniform" not in html


def test_a_report_written_before_the_summary_still_shows_its_results() -> None:
    data = json.loads(GOLDEN.read_text(encoding="utf-8"))
    for key in ("percentiles", "summary", "charts", "trace_url", "waterfalls"):
        del data[key]
    html = render_html(Report.from_json(data))
    results = html[html.index("<h2 id='results'>") : html.index("<h2 id='diagnosis'>")]
    p99 = data["load"]["levels"][0]["ttft_ms"]["p99"]
    assert f"<td>{p99:,.1f}</td>" in results or f"<td>{p99:,.2f}</td>" in results
    assert "TTFT percentiles against load" in results
    assert "No request records: no time series." in html


def test_metrics_of_the_proxy_are_labelled_the_proxys(report: Report) -> None:
    """A run whose only metrics page was an ``open-autoglm proxy``'s: its memory and requests
    in flight are the proxy's, and the report says so where it would say "server"."""
    assert report.run is not None
    assert "Server resources" in render_html(report)  # the golden run: our server's page
    proxied = dataclasses.replace(report, run=dataclasses.replace(report.run, backend="proxy"))
    html = render_html(proxied)
    assert "<h2 id='resources'>Proxy resources</h2>" in html
    assert "proxy RSS peak, serving" in html
    assert "server RSS peak" not in html
    assert "requests in flight at the proxy" in html
    assert "running requests (batch size)" not in html


def test_joined_traces_without_stage_spans_say_why(report: Report) -> None:
    """Spans joined but none a stage (a proxy's SERVER span alone): a reason, not an empty
    table and "No data"."""
    assert report.stages is not None
    empty = {name: dataclasses.replace(stats, count=0) for name, stats in
             report.stages.stages_ms.items()}  # fmt: skip
    stages = dataclasses.replace(report.stages, stages_ms=empty)
    html = render_html(dataclasses.replace(report, stages=stages))
    section = html[html.index("<h2 id='stages'>") : html.index("<h2 id='slowest'>")]
    assert "None of the joined traces has a stage span" in section
    assert "<th>stage</th>" not in section
    # nothing joined at all: the reason is that no span arrived, not what the spans lacked
    none = dataclasses.replace(stages, with_server_spans=0)
    html = render_html(dataclasses.replace(report, stages=none))
    section = html[html.index("<h2 id='stages'>") : html.index("<h2 id='slowest'>")]
    assert "No server span arrived for these requests" in section
    assert "None of the joined traces" not in section


def test_metrics_behind_the_proxy_say_so(report: Report) -> None:
    assert report.run is not None
    assert "the server behind it" not in render_html(report)
    via = dataclasses.replace(report, run=dataclasses.replace(report.run, via_proxy=True))
    html = render_html(via)
    resources = html[html.index("<h2 id='resources'>") : html.index("<h2 id='stages'>")]
    assert "these are the metrics of the server behind it" in resources
    assert "<a href='#resources'>" in html
