"""Critical path and self time on hand-built traces in a real span store file (the collector's
schema), every trace of the store analysed in one bulk pass, against answers worked by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from open_autoglm.analysis._critical_path import CriticalPaths, critical_paths, trace_sections
from open_autoglm.collector import SpanStore, write_span_store

T0 = 1_700_000_000_000_000_000
MS = 1_000_000

# trace id -> spans as (span_id, parent_id, name, start ms, end ms)
TRACES: dict[str, list[tuple[str, str | None, str, float, float]]] = {
    # Nested with gaps: R[0,100] with A[10,40] and B[50,90], B with B1[60,70].
    "a" * 32: [
        ("1" * 16, None, "R", 0, 100),
        ("2" * 16, "1" * 16, "A", 10, 40),
        ("3" * 16, "1" * 16, "B", 50, 90),
        ("4" * 16, "3" * 16, "B1", 60, 70),
    ],
    # Overlapping children: B[50,90] ends last; A[10,80] still runs at B's start, so it is
    # off the path (Jaeger's rule) and R owns [0,50].
    "b" * 32: [
        ("1" * 16, None, "R", 0, 100),
        ("2" * 16, "1" * 16, "A", 10, 80),
        ("3" * 16, "1" * 16, "B", 50, 90),
    ],
    # Overrunning children clipped to R, one entirely outside it dropped.
    "c" * 32: [
        ("1" * 16, None, "R", 0, 100),
        ("2" * 16, "1" * 16, "A", 80, 130),
        ("3" * 16, "1" * 16, "C", -20, 10),
        ("4" * 16, "1" * 16, "D", 120, 150),
    ],
    # The server's stages, back to back to the nanosecond.
    "d" * 32: [
        ("1" * 16, None, "chat m", 0, 100),
        ("2" * 16, "1" * 16, "POST /v1/chat/completions", 10, 90),
        ("3" * 16, "2" * 16, "queue", 10, 30),
        ("4" * 16, "2" * 16, "prefill", 30, 60),
        ("5" * 16, "2" * 16, "decode", 60, 90),
    ],
    # The client span never arrived: the server span (an orphan) is the root.
    "e" * 32: [
        ("2" * 16, "9" * 16, "POST /v1/chat/completions", 0, 50),
        ("3" * 16, "2" * 16, "queue", 0, 20),
        ("4" * 16, "2" * 16, "decode", 20, 45),
    ],
}


def _columns(traces: dict[str, list[tuple[str, str | None, str, float, float]]]) -> dict[str, Any]:
    cols: dict[str, list[Any]] = {
        k: []
        for k in ("trace_id", "span_id", "parent_span_id", "name", "start_unix_ns", "end_unix_ns")
    }
    for trace_id, spans in traces.items():
        for span_id, parent, name, start, end in spans:
            cols["trace_id"].append(trace_id)
            cols["span_id"].append(span_id)
            cols["parent_span_id"].append(parent)
            cols["name"].append(name)
            cols["start_unix_ns"].append(T0 + int(start * MS))
            cols["end_unix_ns"].append(T0 + int(end * MS))
    return cols


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cp") / "spans.duckdb"
    cols = _columns(TRACES)
    # the exporter retried one batch: a span stored twice must count once
    for key in cols:
        cols[key].append(cols[key][1])
    return write_span_store(path, cols)


@pytest.fixture(scope="module")
def paths(store: Path) -> CriticalPaths:
    return critical_paths(store)


def ms(values: dict[str, int]) -> dict[str, float]:
    return {k: v / MS for k, v in values.items()}


def self_ms(paths: CriticalPaths, trace_id: str) -> dict[str, float]:
    row = paths.self_ns[paths.index(trace_id)]
    return {op: v / MS for op, v in zip(paths.operations, row, strict=True) if v}


def test_store_is_readable_by_the_collector_reader(store: Path) -> None:
    with SpanStore(store) as reader:
        assert reader.trace_count() == len(TRACES)


def test_nested_children_and_gaps_give_the_parent_its_own_time(paths: CriticalPaths) -> None:
    assert ms(paths.for_trace("a" * 32)) == {"R": 30, "A": 30, "B": 30, "B1": 10}
    assert self_ms(paths, "a" * 32) == {"R": 30, "A": 30, "B": 30, "B1": 10}


def test_a_child_overlapped_by_a_later_sibling_is_off_the_path(paths: CriticalPaths) -> None:
    assert ms(paths.for_trace("b" * 32)) == {"R": 60, "B": 40}
    # self time subtracts the union of the children, on the path or not
    assert self_ms(paths, "b" * 32) == {"R": 20, "A": 70, "B": 40}


def test_overrunning_children_are_clipped_and_outsiders_dropped(paths: CriticalPaths) -> None:
    assert ms(paths.for_trace("c" * 32)) == {"R": 70, "A": 20, "C": 10}
    assert paths.overrunning_spans == 2
    assert paths.detached_spans == 1


def test_back_to_back_stages_are_all_on_the_path(paths: CriticalPaths) -> None:
    assert ms(paths.for_trace("d" * 32)) == {"chat m": 20, "queue": 20, "prefill": 30, "decode": 30}


def test_an_orphan_server_span_stands_in_for_the_missing_root(paths: CriticalPaths) -> None:
    i = paths.index("e" * 32)
    assert paths.complete[i]
    assert paths.operations[paths.root_operation[i]] == "POST /v1/chat/completions"
    assert ms(paths.for_trace("e" * 32)) == {
        "POST /v1/chat/completions": 5,
        "queue": 20,
        "decode": 25,
    }
    assert paths.orphan_spans == 1


def test_every_path_adds_up_to_its_root(paths: CriticalPaths) -> None:
    assert (paths.critical_ns.sum(axis=1) == paths.root_ns).all()
    assert paths.duplicate_spans == 1
    assert paths.spans == sum(len(s) for s in TRACES.values())


def test_summary_ranks_operations_by_share(paths: CriticalPaths) -> None:
    doc = paths.to_json(trace_ids=["d" * 32])
    shares = [o["critical_share"] for o in doc["operations"]]
    assert shares == sorted(shares, reverse=True)
    assert doc["by_trace"]["d" * 32]["prefill"] == 30
    assert doc["operations"][0]["operation"] == "R"


def test_sections_of_one_trace_in_time_order(store: Path) -> None:
    sections = trace_sections(store, "A" * 32)
    assert [
        (s.operation, (s.start_unix_ns - T0) / MS, (s.end_unix_ns - T0) / MS) for s in sections
    ] == [
        ("R", 0, 10),
        ("A", 10, 40),
        ("R", 40, 50),
        ("B", 50, 60),
        ("B1", 60, 70),
        ("B", 70, 90),
        ("R", 90, 100),
    ]


def test_ttft_horizon_clips_the_path_at_the_first_output(tmp_path: Path) -> None:
    trace = "f" * 32
    cols = _columns(
        {
            trace: [
                ("1" * 16, None, "chat m", 0, 100),
                ("2" * 16, "1" * 16, "POST /v1/chat/completions", 5, 95),
                ("3" * 16, "2" * 16, "queue", 5, 25),
                ("4" * 16, "2" * 16, "prefill", 25, 40),
                ("5" * 16, "2" * 16, "decode", 40, 95),
            ]
        }
    )
    cols["kind"] = ["CLIENT", "SERVER", "INTERNAL", "INTERNAL", "INTERNAL"]
    # the client saw its first chunk 42 ms after it sent the request
    cols["attributes"] = [{"gen_ai.response.time_to_first_chunk": 0.042}, None, None, None, None]
    path = write_span_store(tmp_path / "spans.duckdb", cols)
    ttft = critical_paths(path, horizon="ttft")
    assert ms(ttft.for_trace(trace)) == {"chat m": 5, "queue": 20, "prefill": 15, "decode": 2}
    assert ttft.root_ns[0] == 42 * MS


def test_a_missing_table_is_one_clear_error(tmp_path: Path) -> None:
    from open_autoglm.analysis._critical_path import CriticalPathError

    path = write_span_store(tmp_path / "s.duckdb", _columns({"a" * 32: TRACES["a" * 32]}))
    with pytest.raises(CriticalPathError, match="cannot read spans"):
        critical_paths(path, table="nope")
    with pytest.raises(CriticalPathError, match="bad table name"):
        critical_paths(path, table="spans; DROP TABLE spans")
