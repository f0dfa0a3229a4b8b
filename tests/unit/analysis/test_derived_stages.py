"""Stages drawn from vLLM's ``llm_request`` spans, on crafted spans (no vLLM, no sockets)."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from open_autoglm.analysis._derived_stages import (
    ARRIVAL_TOLERANCE_NS,
    DerivedStage,
    add_derived_stages,
    derived_span_id,
    stages_of_llm_request,
)
from open_autoglm.analysis._run_directory import RunDirectory
from open_autoglm.analysis._stages import stage_breakdown
from open_autoglm.attach import vllm_spans as vs
from open_autoglm.collector import write_span_store
from open_autoglm.telemetry import names as n

T0 = 1_700_000_000_000_000_000
GOLDEN_REPORT = Path(__file__).parents[2] / "fixtures" / "report_run" / "golden_report.json"
MS = 1_000_000


def write_results(path: Path) -> None:
    """A valid results document with no levels (the golden run's, emptied)."""
    from open_autoglm.analysis import Report

    golden = Report.from_json(json.loads(GOLDEN_REPORT.read_text(encoding="utf-8")))
    dataclasses.replace(golden.load, levels=[]).write(path)


def vllm_attributes(
    queue: float | None = 0.010,
    prefill: float | None = 0.020,
    decode: float | None = 0.100,
    e2e: float | None = 0.135,
    ttft: float = 0.034,
) -> dict[str, Any]:
    """Attributes as vLLM 0.32's ``do_tracing`` sets them (seconds); None leaves one out."""
    attributes: dict[str, Any] = {
        vs.TIME_TO_FIRST_TOKEN: ttft,
        vs.PROMPT_TOKENS: 42,
        vs.COMPLETION_TOKENS: 16,
        vs.REQUEST_ID: "chatcmpl-1",
    }
    for key, value in ((vs.TIME_IN_QUEUE, queue), (vs.TIME_IN_MODEL_PREFILL, prefill),
                       (vs.TIME_IN_MODEL_DECODE, decode), (vs.E2E, e2e)):  # fmt: skip
        if value is not None:
            attributes[key] = value
    return attributes


def test_stages_last_exactly_what_vllm_measured_and_end_at_arrival_plus_e2e() -> None:
    stages = stages_of_llm_request(T0, T0 + 136 * MS, vllm_attributes())
    assert [s.name for s in stages] == [n.SPAN_QUEUE, n.SPAN_PREFILL, n.SPAN_DECODE]
    durations = {s.name: s.end_unix_ns - s.start_unix_ns for s in stages}
    assert durations == {n.SPAN_QUEUE: 10 * MS, n.SPAN_PREFILL: 20 * MS, n.SPAN_DECODE: 100 * MS}
    assert stages[-1].end_unix_ns == T0 + 135 * MS  # arrival + e2e, not the later span end
    for earlier, later in itertools.pairwise(stages):
        assert earlier.end_unix_ns == later.start_unix_ns  # back to back
    # what precedes the queue (render, tokenize, hand-over) is left undrawn: 5 ms here
    assert stages[0].start_unix_ns - T0 == 5 * MS


def test_without_e2e_the_chain_ends_at_the_span_end() -> None:
    stages = stages_of_llm_request(T0, T0 + 140 * MS, vllm_attributes(e2e=None))
    assert stages[-1].end_unix_ns == T0 + 140 * MS
    # an e2e past the span's end is not believed either
    stages = stages_of_llm_request(T0, T0 + 140 * MS, vllm_attributes(e2e=0.5))
    assert stages[-1].end_unix_ns == T0 + 140 * MS


def test_a_single_token_has_no_decode_but_keeps_queue_and_prefill() -> None:
    stages = stages_of_llm_request(T0, T0 + 40 * MS, vllm_attributes(decode=0.0, e2e=0.035))
    assert stages == (
        DerivedStage(n.SPAN_QUEUE, T0 + 5 * MS, T0 + 15 * MS),
        DerivedStage(n.SPAN_PREFILL, T0 + 15 * MS, T0 + 35 * MS),
    )


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        # aborted in the queue: scheduled_ts never taken, so queue = 0 - queued_ts < 0, and
        # the stamps after it are 0 too: decode = 0 - 0, prefill = 0 - 0
        (vllm_attributes(queue=-1_000.0, prefill=0.0, decode=0.0), []),
        # aborted before the first token: prefill = 0 - scheduled_ts < 0 ends the chain
        (vllm_attributes(prefill=-2_000.0, decode=0.0), []),
        # an attribute missing or not a number ends the chain where it is
        (vllm_attributes(prefill=None), [n.SPAN_DECODE]),
        ({**vllm_attributes(), vs.TIME_IN_QUEUE: "soon"}, [n.SPAN_PREFILL, n.SPAN_DECODE]),
        ({**vllm_attributes(), vs.TIME_IN_QUEUE: float("nan")}, [n.SPAN_PREFILL, n.SPAN_DECODE]),
        ({**vllm_attributes(), vs.TIME_IN_MODEL_DECODE: True}, []),
        ({}, []),
    ],
)
def test_no_stage_where_a_boundary_is_missing(
    attributes: dict[str, Any], expected: list[str]
) -> None:
    stages = stages_of_llm_request(T0, T0 + 200 * MS, attributes)
    assert [s.name for s in stages] == expected


def test_a_stage_before_the_arrival_is_clipped_within_tolerance_and_refused_beyond() -> None:
    # queue + prefill + decode exceed e2e by half the tolerance: the queue starts at arrival
    half = ARRIVAL_TOLERANCE_NS / 2e9
    stages = stages_of_llm_request(T0, T0 + 200 * MS, vllm_attributes(e2e=0.130 - half))
    assert stages[0].name == n.SPAN_QUEUE
    assert stages[0].start_unix_ns == T0
    # by three times the tolerance: the queue's start cannot be placed, so it is not drawn
    stages = stages_of_llm_request(T0, T0 + 200 * MS, vllm_attributes(e2e=0.130 - 3 * half))
    assert [s.name for s in stages] == [n.SPAN_PREFILL, n.SPAN_DECODE]


# ------------------------------------------------------------------------- on a span store


def _store(tmp_path: Path, with_measured_trace: bool = False) -> tuple[Path, Path]:
    """Three traces from an unmodified vLLM (CLIENT root, llm_request child), one request
    aborted in the queue; optionally a fourth whose server sent measured stages."""
    spans: dict[str, list[Any]] = {k: [] for k in (
        "trace_id", "span_id", "parent_span_id", "name", "kind", "service_name",
        "start_unix_ns", "end_unix_ns", "attributes", "resource_attributes")}  # fmt: skip
    records = []

    def add(trace: str, span: str, parent: str | None, name: str, kind: str, start: int,
            end: int, attributes: dict[str, Any], service: str) -> None:  # fmt: skip
        for key, value in (("trace_id", trace), ("span_id", span), ("parent_span_id", parent),
                           ("name", name), ("kind", kind), ("service_name", service),
                           ("start_unix_ns", start), ("end_unix_ns", end),
                           ("attributes", attributes),
                           ("resource_attributes", {"service.name": service})):  # fmt: skip
            spans[key].append(value)

    plans = [
        ("1" * 32, vllm_attributes()),
        ("2" * 32, vllm_attributes(queue=0.050, e2e=0.175, ttft=0.074)),
        ("3" * 32, vllm_attributes(queue=-5.0, prefill=0.0, decode=0.0, e2e=0.2)),
    ]
    for i, (trace, attributes) in enumerate(plans):
        sent = T0 + i * 1_000 * MS
        add(trace, f"{i:016x}", None, "chat m", "CLIENT", sent, sent + 140 * MS, {}, "loadgen")
        start = sent + 1 * MS
        add(trace, f"a{i:015x}", f"{i:016x}", vs.LLM_REQUEST_SPAN, "SERVER", start,
            start + round(attributes[vs.E2E] * 1e9) + MS // 10, attributes, "vllm")  # fmt: skip
        records.append({"trace_id": trace, "index": i, "level": 1, "phase": "measure",
                        "status": "ok", "sent_unix_ns": sent, "queue_s": 0.0,
                        "ttft_s": attributes[vs.TIME_TO_FIRST_TOKEN] + 0.002,
                        "e2e_s": attributes[vs.E2E] + 0.002})  # fmt: skip
    if with_measured_trace:
        trace = "4" * 32
        add(trace, "b" * 16, None, vs.LLM_REQUEST_SPAN, "SERVER", T0, T0 + 140 * MS,
            vllm_attributes(), "vllm")  # fmt: skip
        add(trace, "c" * 16, "b" * 16, n.SPAN_QUEUE, "INTERNAL", T0, T0 + 7 * MS,
            {n.ATTR_QUEUE_DEPTH: 0}, "vllm")  # fmt: skip
    store = write_span_store(tmp_path / "spans.duckdb", spans)
    records_path = tmp_path / "requests.jsonl"
    records_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return store, records_path


def test_store_gets_children_of_llm_request_named_for_their_source(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    with duckdb.connect(str(store)) as con:
        summary = add_derived_stages(con)
        rows = con.execute(
            "SELECT trace_id, span_id, parent_span_id, name, kind, service_name, duration_ns, "
            "attributes FROM spans WHERE kind = 'INTERNAL' ORDER BY trace_id, start_unix_ns"
        ).fetchall()
        events = con.execute("SELECT span_id, name, time_unix_ns FROM span_events").fetchall()
        decode_starts = dict(
            con.execute("SELECT span_id, start_unix_ns FROM spans WHERE name = 'decode'").fetchall()
        )
    assert summary.llm_requests == 3
    assert summary.derived == 2
    assert summary.incomplete == 1  # the request aborted in the queue: nothing to draw
    assert summary.spans == 6
    assert [(r[0][0], r[3]) for r in rows] == [
        ("1", "queue"),
        ("1", "prefill"),
        ("1", "decode"),
        ("2", "queue"),
        ("2", "prefill"),
        ("2", "decode"),
    ]
    for trace_id, span_id, parent, name, _, service, _, attributes in rows:
        assert parent == ("a" + "0" * 15 if trace_id[0] == "1" else "a" + "0" * 14 + "1")
        assert span_id == derived_span_id(trace_id, parent, name)
        assert service == "vllm"
        assert json.loads(attributes)[n.ATTR_DERIVED_FROM] == vs.LLM_REQUEST_SPAN
    assert rows[3][6] == 50 * MS  # trace 2's queue: vLLM's 50 ms
    assert json.loads(rows[1][7])[n.ATTR_PROMPT_TOKENS] == 42
    assert json.loads(rows[2][7])[n.ATTR_OUTPUT_TOKENS] == 16
    assert sorted((name, decode_starts[span]) for span, name, _ in events) == sorted(
        (n.EVENT_FIRST_TOKEN, at) for at in decode_starts.values()
    )
    assert {at for _, _, at in events} == set(decode_starts.values())


def test_deriving_twice_adds_nothing_and_measured_traces_are_left_alone(tmp_path: Path) -> None:
    store, _ = _store(tmp_path, with_measured_trace=True)
    with duckdb.connect(str(store)) as con:
        first = add_derived_stages(con)
        second = add_derived_stages(con)
        count = con.execute("SELECT count(*) FROM spans").fetchone()
        on_measured = con.execute(
            f"SELECT count(*) FROM spans WHERE trace_id = '{'4' * 32}' AND kind = 'INTERNAL'"
        ).fetchone()
    assert (first.derived, first.measured, first.spans) == (2, 1, 6)
    assert (second.derived, second.already_derived, second.measured, second.spans) == (0, 2, 1, 0)
    assert count == (3 * 2 + 2 + 6,)  # three vLLM traces, the measured one, the derived
    assert on_measured == (1,)  # its own queue span, nothing drawn next to it


def test_a_read_only_store_is_an_error_not_a_silent_skip(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    with duckdb.connect(str(store), read_only=True) as con, pytest.raises(duckdb.Error):
        add_derived_stages(con)


def test_stage_breakdown_and_ttft_split_work_on_derived_stages(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    with duckdb.connect(str(store)) as con:
        add_derived_stages(con)
    with RunDirectory(tmp_path) as run:
        breakdown = stage_breakdown(run)
    assert breakdown.requests == 3
    assert breakdown.with_server_spans == 3
    queue = breakdown.stages_ms["queue"]
    assert queue.count == 2  # the aborted request has no queue stage drawn
    assert queue.max == pytest.approx(50.0)
    slowest = breakdown.slowest[0]
    assert slowest.trace_id == "3" * 32  # e2e 200 ms, no stages
    second = breakdown.slowest[1]
    assert second.stage_ms == {"tokenize": None, "preprocess": None, "queue": 50.0,
                               "prefill": 20.0, "decode": 100.0}  # fmt: skip
    # the client's TTFT splits at the derived boundaries: network in is the 1 ms between
    # the client's send and vLLM's arrival; server_pre the 5 ms before vLLM's queue
    parts = second.ttft_parts_ms
    assert parts["network_in"] == pytest.approx(1.0)
    assert parts["server_pre"] == pytest.approx(5.0)
    assert parts["queue"] == pytest.approx(50.0)
    assert parts["prefill"] == pytest.approx(20.0)
    depths = {s.name: s.depth for s in second.spans}
    assert depths == {"chat m": 0, vs.LLM_REQUEST_SPAN: 1, "queue": 2, "prefill": 2, "decode": 2}


def test_the_report_draws_the_stages_once_and_says_where_they_came_from(tmp_path: Path) -> None:
    from open_autoglm.analysis import build_report

    _store(tmp_path)
    write_results(tmp_path / "results.json")
    first = build_report(tmp_path)
    second = build_report(tmp_path)
    for report in (first, second):
        assert report.stages is not None
        assert report.stages.stages_ms["decode"].count == 2
        assert any("llm_request" in note and "2 requests" in note for note in report.notes)
    with duckdb.connect(str(tmp_path / "spans.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM spans WHERE kind = 'INTERNAL'").fetchone() == (6,)
