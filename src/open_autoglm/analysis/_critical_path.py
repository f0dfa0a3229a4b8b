"""Critical path and self time of every trace in a span store, computed in bulk.

The critical path is the algorithm of Jaeger's critical-path view: start at the root span's
end, and walk back in time. At each span, the child that ends last at or before the cursor is
on the path: the gap between that child's end and the cursor is the span's own time, and the
walk goes into the child from its end. When no child is left, the rest of the span back to its
start is its own time, and the walk returns to the parent with the cursor at the span's start.
Children that overrun their parent are clipped to it first (children entirely outside it are
dropped), top down, so the path of a trace adds up to its root's duration exactly.

One deliberate difference from Jaeger: a child that ends exactly where the cursor stands is on
the path (Jaeger needs it to end strictly before). The server's stages are back to back to the
nanosecond (``queue`` ends where ``prefill`` starts), and Jaeger's rule would skip them.

Self time of a span is its clipped duration minus the union of its children's clipped
intervals, whether or not they are on the critical path.

Both run over every trace at once with numpy: the walk advances all traces one step per
iteration (a few dozen iterations for the server's traces), each step one binary search over
all children sorted by (parent, end); no Python loop per span or per trace.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import duckdb
import numpy as np
import numpy.typing as npt

from open_autoglm.analysis._errors import AnalysisError
from open_autoglm.collector import CollectorError, SpanStore
from open_autoglm.telemetry import names

Horizon = Literal["e2e", "ttft"]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_DEPTH: Final = 256

# Spans as numbers: 64-bit hashes of the ids (joined and deduplicated in numpy; fetching the
# id strings themselves costs more than the whole analysis) and the times.
_LOAD_SQL: Final = """
SELECT hash(trace_id) AS t, hash(trace_id, span_id) AS k, hash(trace_id, parent_span_id) AS pk,
       parent_span_id IS NULL AS true_root, hash(name) AS n, start_unix_ns, end_unix_ns
FROM {table}
WHERE start_unix_ns IS NOT NULL AND end_unix_ns IS NOT NULL {where}
"""
_TRACES_SQL: Final = """
SELECT DISTINCT trace_id, hash(trace_id) AS h FROM {table}
WHERE start_unix_ns IS NOT NULL AND end_unix_ns IS NOT NULL {where}
"""
_NAMES_SQL: Final = """
SELECT DISTINCT name, hash(name) AS h FROM {table}
WHERE start_unix_ns IS NOT NULL AND end_unix_ns IS NOT NULL {where}
"""

# First output of each trace: the client's time to first chunk from its root span, else the
# server's ``first_token`` event.
_FIRST_OUTPUT_SQL: Final = f"""
SELECT coalesce(c.t, e.t) AS first_output_ns, coalesce(c.trace_id, e.trace_id) AS trace_id
FROM (
    SELECT trace_id, min(start_unix_ns + CAST(round(TRY_CAST(
        attributes->>'$."{names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK}"' AS DOUBLE) * 1e9) AS BIGINT))
        AS t
    FROM {{table}}
    WHERE parent_span_id IS NULL AND kind = 'CLIENT' {{where}}
    GROUP BY trace_id
    HAVING t IS NOT NULL
) AS c
FULL OUTER JOIN (
    SELECT trace_id, min(time_unix_ns) AS t FROM {{events}}
    WHERE name = '{names.EVENT_FIRST_TOKEN}' GROUP BY trace_id
) AS e ON c.trace_id = e.trace_id
"""


class CriticalPathError(AnalysisError, ValueError):
    """The span table cannot be read as the collector's schema."""


@dataclass(frozen=True, slots=True)
class Section:
    """One stretch of the critical path: ``operation`` (span ``span_index``) was the
    critical work from ``start_unix_ns`` to ``end_unix_ns``."""

    span_index: int
    operation: str
    start_unix_ns: int
    end_unix_ns: int

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "start_unix_ns": self.start_unix_ns,
            "end_unix_ns": self.end_unix_ns,
            "duration_ns": self.end_unix_ns - self.start_unix_ns,
        }


@dataclass(frozen=True, slots=True, eq=False)
class CriticalPaths:
    """Per trace and operation (span name): time on the critical path and self time.

    Rows follow :attr:`trace_ids` (sorted), columns :attr:`operations` (sorted). A trace whose
    root has no duration left (e.g. no first output for the ``ttft`` horizon) has
    ``complete[i] == False`` and zero rows.
    """

    horizon: Horizon
    trace_ids: npt.NDArray[np.str_]
    operations: tuple[str, ...]
    critical_ns: IntArray  # (traces, operations)
    self_ns: IntArray  # (traces, operations)
    calls: IntArray  # (traces, operations): spans of that name in the trace
    duration_ns: IntArray  # (traces, operations): summed span durations, unclipped
    root_ns: IntArray  # (traces,): the root's duration up to the horizon = path length
    root_operation: IntArray  # (traces,) column of the root span's name, -1 when none
    complete: BoolArray  # (traces,)
    spans: int
    duplicate_spans: int
    orphan_spans: int  # parent id given but not in the trace
    overrunning_spans: int  # clipped to their parent
    detached_spans: int  # entirely outside their parent (or under such a span): not analysed

    def index(self, trace_id: str) -> int:
        """Row of ``trace_id`` (32 hex digits); raises KeyError if the store has no such trace."""
        trace_id = trace_id.lower()
        i = int(np.searchsorted(self.trace_ids, trace_id))
        if i >= self.trace_ids.size or self.trace_ids[i] != trace_id:
            raise KeyError(trace_id)
        return i

    def indexes(self, trace_ids: npt.ArrayLike) -> IntArray:
        """Rows of many trace ids at once; -1 where a trace is not in the store."""
        wanted = np.char.lower(np.asarray(trace_ids, dtype=np.str_))
        if not self.trace_ids.size:
            return np.full(wanted.shape, -1, dtype=np.int64)
        pos = np.searchsorted(self.trace_ids, wanted).astype(np.int64)
        pos = np.minimum(pos, self.trace_ids.size - 1)
        return np.where(self.trace_ids[pos] == wanted, pos, -1)

    def for_trace(self, trace_id: str) -> dict[str, int]:
        """Critical-path nanoseconds of each operation of one trace (operations on the path)."""
        row = self.critical_ns[self.index(trace_id)]
        return {op: int(ns) for op, ns in zip(self.operations, row, strict=True) if ns}

    def operation(self, name: str) -> int:
        return self.operations.index(name)

    def to_json(self, *, trace_ids: list[str] | None = None) -> dict[str, Any]:
        """A summary per operation, plus the per-trace breakdown of the traces asked for."""
        ok = self.complete
        total = float(self.root_ns[ok].sum())
        n = int(ok.sum())
        operations: list[dict[str, Any]] = []
        for j, op in enumerate(self.operations):
            crit = self.critical_ns[ok, j]
            operations.append(
                {
                    "operation": op,
                    "calls": int(self.calls[:, j].sum()),
                    "traces_on_path": int((crit > 0).sum()),
                    "critical_ms_mean": float(crit.mean() / 1e6) if n else None,
                    "critical_share": float(crit.sum() / total) if total > 0 else None,
                    "self_ms_mean": float(self.self_ns[ok, j].mean() / 1e6) if n else None,
                }
            )
        operations.sort(key=lambda o: -(o["critical_share"] or 0.0))
        out: dict[str, Any] = {
            "horizon": self.horizon,
            "traces": int(self.trace_ids.size),
            "complete_traces": n,
            "spans": self.spans,
            "duplicate_spans": self.duplicate_spans,
            "orphan_spans": self.orphan_spans,
            "overrunning_spans": self.overrunning_spans,
            "detached_spans": self.detached_spans,
            "operations": operations,
        }
        if trace_ids is not None:
            out["by_trace"] = {
                t: {op: ns / 1e6 for op, ns in self.for_trace(t).items()} for t in trace_ids
            }
        return out


@dataclass(frozen=True, slots=True)
class _Spans:
    trace: IntArray
    name: IntArray
    parent: IntArray
    true_root: BoolArray
    start: IntArray
    end: IntArray


#: Where spans are read from: a span store file, an open :class:`SpanStore`, or a DuckDB
#: connection that has the tables (the report's, or a test's own).
SpanSource = SpanStore | duckdb.DuckDBPyConnection | Path | str


@contextmanager
def span_connection(source: SpanSource) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection on ``source``: the connection given, the store's, or a
    :class:`SpanStore` opened on the file (read-only, schema checked) and closed after.

    Raises :class:`CriticalPathError` when the file is not a span store of this version."""
    if isinstance(source, duckdb.DuckDBPyConnection):
        yield source
        return
    if isinstance(source, SpanStore):
        yield source.connection
        return
    try:
        store = SpanStore(source)
    except CollectorError as exc:
        raise CriticalPathError(str(exc)) from exc
    with store:
        yield store.connection


def critical_paths(
    source: SpanSource,
    *,
    table: str = "spans",
    events_table: str = "span_events",
    horizon: Horizon = "e2e",
    service: str | None = None,
) -> CriticalPaths:
    """Critical path and self time of every trace in ``table`` (the collector's ``spans``).

    ``horizon="e2e"`` walks back from the root's end; ``"ttft"`` from the trace's first output
    (the client span's ``gen_ai.response.time_to_first_chunk``, else the server's
    ``first_token`` event), everything after it clipped off: what the time to first token was
    spent on. ``service`` keeps the spans of one ``service_name`` only.
    """
    with span_connection(source) as con:
        for t in (table, events_table):
            if not _IDENTIFIER.match(t):
                raise CriticalPathError(f"bad table name {t!r}")
        where, params = ("AND service_name = ?", [service]) if service else ("", [])
        try:
            spans, trace_ids, operations, duplicates = _load(con, table, where, params)
            cutoff = None
            if horizon == "ttft":
                cutoff = _first_output(con, table, events_table, where, params, trace_ids)
        except duckdb.Error as exc:
            raise CriticalPathError(f"cannot read spans from {table!r}: {exc}") from exc
    return _compute(
        spans,
        trace_ids=trace_ids,
        operations=operations,
        horizon=horizon,
        cutoff=cutoff,
        duplicates=duplicates,
    )


def _load(
    con: duckdb.DuckDBPyConnection, table: str, where: str, params: list[Any]
) -> tuple[_Spans, npt.NDArray[np.str_], tuple[str, ...], int]:
    """Spans (deduplicated, parents as row numbers), sorted trace ids, sorted names.

    Ids are matched by their 64-bit hashes: two distinct ids colliding in a run of a million
    spans has a chance of about 1 in 10^8."""
    raw = con.execute(_LOAD_SQL.format(table=table, where=where), params).fetchnumpy()
    traces = con.execute(_TRACES_SQL.format(table=table, where=where), params).fetchnumpy()
    names_ = con.execute(_NAMES_SQL.format(table=table, where=where), params).fetchnumpy()
    key = np.asarray(raw["k"], dtype=np.uint64)
    total = key.size
    order = np.argsort(key, kind="stable")
    first = np.r_[True, key[order][1:] != key[order][:-1]] if total else np.ones(0, np.bool_)
    keep = np.sort(order[first])
    key = key[keep]
    order = np.argsort(key)
    sorted_keys = key[order]
    parent_key = np.asarray(raw["pk"], dtype=np.uint64)[keep]
    true_root = np.asarray(raw["true_root"], dtype=np.bool_)[keep]
    parent = np.full(key.size, -1, dtype=np.int64)
    if key.size:
        pos = np.minimum(np.searchsorted(sorted_keys, parent_key), key.size - 1)
        found = (sorted_keys[pos] == parent_key) & ~true_root
        parent = np.where(found, order[pos], -1).astype(np.int64)
        parent[parent == np.arange(key.size)] = -1
    trace_ids, trace_index = _dictionary(traces["trace_id"], traces["h"], raw["t"][keep])
    op_names, name_index = _dictionary(names_["name"], names_["h"], raw["n"][keep])
    spans = _Spans(
        trace=trace_index,
        name=name_index,
        parent=parent,
        true_root=true_root,
        start=np.asarray(raw["start_unix_ns"], dtype=np.int64)[keep],
        end=np.asarray(raw["end_unix_ns"], dtype=np.int64)[keep],
    )
    return spans, trace_ids, tuple(str(x) for x in op_names), total - int(keep.size)


def _dictionary(
    values: npt.NDArray[Any], hashes: npt.NDArray[Any], wanted: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.str_], IntArray]:
    """Sorted distinct strings, and the position in them of each hash in ``wanted``."""
    text = np.asarray(values.astype(str), dtype=np.str_)
    by_text = np.argsort(text, kind="stable")
    text, h = text[by_text], np.asarray(hashes, dtype=np.uint64)[by_text]
    by_hash = np.argsort(h)
    if not h.size:
        return text, np.zeros(len(wanted), dtype=np.int64)
    pos = np.minimum(np.searchsorted(h[by_hash], np.asarray(wanted, dtype=np.uint64)), h.size - 1)
    return text, by_hash[pos].astype(np.int64)


def trace_sections(
    source: SpanSource,
    trace_id: str,
    *,
    table: str = "spans",
) -> list[Section]:
    """The critical path of one trace as sections in time order (for a waterfall)."""
    with span_connection(source) as con:
        if not _IDENTIFIER.match(table):
            raise CriticalPathError(f"bad table name {table!r}")
        spans, _, op_names, _ = _load(con, table, "AND trace_id = ?", [trace_id.lower()])
    if not spans.trace.size:
        return []
    prepared = _prepare(spans, 1, None)
    sections: list[tuple[int, int, int]] = []
    _walk(prepared, sections)
    return [
        Section(i, op_names[int(spans.name[i])], s, e) for i, s, e in reversed(sections) if e > s
    ]


def _first_output(
    con: duckdb.DuckDBPyConnection,
    table: str,
    events: str,
    where: str,
    params: list[Any],
    trace_ids: npt.NDArray[Any],
) -> IntArray:
    rows = con.execute(
        _FIRST_OUTPUT_SQL.format(table=table, events=events, where=where), params
    ).fetchnumpy()
    cutoff = np.full(len(trace_ids), np.iinfo(np.int64).min, dtype=np.int64)
    if len(rows["trace_id"]) and len(trace_ids):
        ids = np.asarray(trace_ids.astype(str), dtype=np.str_)
        wanted = np.asarray(rows["trace_id"].astype(str), dtype=np.str_)
        pos = np.minimum(np.searchsorted(ids, wanted), ids.size - 1)
        hit = ids[pos] == wanted
        values = np.asarray(rows["first_output_ns"], dtype=np.int64)
        cutoff[pos[hit]] = values[hit]
    return cutoff


@dataclass(slots=True)
class _Prepared:
    spans: _Spans
    start: IntArray  # clipped
    end: IntArray  # clipped
    kept: BoolArray
    root: IntArray  # (traces,) span index or -1
    child_keys: IntArray  # parent * m + end rank, sorted
    child_order: IntArray  # span index of each key
    uniq_ends: IntArray
    m: int
    end_rank: IntArray
    start_rank: IntArray
    overrun: BoolArray
    detached: BoolArray


def _prepare(spans: _Spans, n_traces: int, cutoff: IntArray | None) -> _Prepared:
    n = spans.trace.size
    parent = spans.parent
    start = spans.start.copy()
    end = np.maximum(spans.end, start)
    beyond = np.zeros(n, dtype=np.bool_)
    if cutoff is not None:
        end = np.minimum(end, cutoff[spans.trace])
        beyond = end <= start
    # Depth of each span below its root; spans in a parent cycle (or deeper than any real
    # trace) keep depth -1 and are treated as detached.
    depth = np.where(parent < 0, 0, -1).astype(np.int64)
    for _ in range(_MAX_DEPTH):
        todo = (depth < 0) & (parent >= 0)
        todo[todo] = depth[parent[todo]] >= 0
        if not todo.any():
            break
        depth[todo] = depth[parent[todo]] + 1
    kept = (depth >= 0) & (end > start)
    overrun = np.zeros(n, dtype=np.bool_)
    for d in range(1, int(depth.max(initial=0)) + 1):
        at = np.flatnonzero(depth == d)
        if not at.size:
            continue
        p = parent[at]
        new_start = np.maximum(start[at], start[p])
        new_end = np.minimum(end[at], end[p])
        overrun[at] = (new_start != start[at]) | (new_end < spans.end[at])
        start[at] = new_start
        end[at] = np.maximum(new_end, new_start)
        kept[at] &= kept[p] & (new_end > new_start)
    # The root of each trace: a span without a parent in the trace, a true root (no parent id)
    # before an orphan, then the longest.
    candidates = np.flatnonzero((parent < 0) & kept)
    root = np.full(n_traces, -1, dtype=np.int64)
    if candidates.size:
        dur = end[candidates] - start[candidates]
        order = np.lexsort((dur, spans.true_root[candidates], spans.trace[candidates]))
        ordered = candidates[order]
        last = np.r_[spans.trace[ordered][1:] != spans.trace[ordered][:-1], True]
        root[spans.trace[ordered[last]]] = ordered[last]
    # Children that can be on a path, sorted by (parent, end, later start first).
    children = np.flatnonzero(kept & (parent >= 0))
    uniq_ends = _unique(end[children])
    m = int(uniq_ends.size) + 1
    # ranks: how many distinct child ends are <= a time; the walk's cursor is always some
    # span's start or end, so it moves over these ranks and never searches the times again
    end_rank = np.searchsorted(uniq_ends, end, side="right")
    start_rank = np.searchsorted(uniq_ends, start, side="right")
    keys = parent[children] * m + end_rank[children]
    order = np.lexsort((-start[children], keys))
    return _Prepared(
        spans=spans,
        start=start,
        end=end,
        kept=kept,
        root=root,
        child_keys=keys[order],
        child_order=children[order],
        uniq_ends=uniq_ends,
        m=m,
        end_rank=end_rank,
        start_rank=start_rank,
        overrun=overrun & kept,
        detached=~kept & (spans.end > spans.start) & ~beyond,
    )


def _walk(p: _Prepared, sections: list[tuple[int, int, int]] | None = None) -> FloatArray:
    """Critical-path nanoseconds of each span: all traces advance one step per iteration."""
    on_path = np.zeros(p.spans.trace.size, dtype=np.float64)
    cur = p.root[p.root >= 0]
    cursor = p.end[cur]
    rank = p.end_rank[cur]
    parent = p.spans.parent
    keys, order = p.child_keys, p.child_order
    while cur.size:
        if keys.size:
            pos = np.searchsorted(keys, cur * p.m + rank, side="right") - 1
            safe = np.maximum(pos, 0)
            found = (pos >= 0) & (keys[safe] // p.m == cur)
            child = order[safe]
        else:
            found = np.zeros(cur.size, dtype=np.bool_)
            child = cur
        section_start = np.where(found, p.end[child], p.start[cur])
        # each trace is at one span, so ``cur`` has no repeats: plain fancy indexing adds.
        on_path[cur] += cursor - section_start
        if sections is not None:
            sections.extend(zip(cur.tolist(), section_start.tolist(), cursor.tolist(), strict=True))
        up = ~found & (parent[cur] >= 0)
        go = found | up
        next_cur = np.where(found, child, parent[cur])
        next_cursor = np.where(found, p.end[child], p.start[cur])
        next_rank = np.where(found, p.end_rank[child], p.start_rank[cur])
        cur, cursor, rank = next_cur[go], next_cursor[go], next_rank[go]
    return on_path


def _self_time(p: _Prepared) -> FloatArray:
    """Clipped duration minus the union of the children's clipped intervals."""
    n = p.spans.trace.size
    duration = np.where(p.kept, p.end - p.start, 0).astype(np.float64)
    children = np.flatnonzero(p.kept & (p.spans.parent >= 0))
    if not children.size:
        return duration
    parent = p.spans.parent[children]
    order = np.lexsort((p.start[children], parent))
    children, parent = children[order], parent[order]
    uniq = _unique(p.end[children])
    m = int(uniq.size) + 1
    rank = np.searchsorted(uniq, p.end[children]) + 1
    running = np.maximum.accumulate(parent * m + rank)
    # the furthest end among earlier siblings: the running maximum one position back,
    # unless that position belongs to another parent.
    prev = np.r_[0, running[:-1]]
    first = np.r_[True, parent[1:] != parent[:-1]]
    prev_rank = np.where(first, 0, prev - parent * m)
    prev_end = np.where(prev_rank > 0, uniq[np.maximum(prev_rank - 1, 0)], np.iinfo(np.int64).min)
    covered = np.maximum(p.end[children] - np.maximum(p.start[children], prev_end), 0)
    covered_by_parent = np.bincount(parent, weights=covered.astype(np.float64), minlength=n)
    return np.maximum(duration - covered_by_parent, 0.0)


def _unique(values: IntArray) -> IntArray:
    """Sorted distinct values (a sort: numpy's hash-based unique is slower on int64 here)."""
    ordered = np.sort(values)
    if not ordered.size:
        return ordered
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def _per_trace(values: npt.NDArray[Any], spans: _Spans, n_traces: int, n_ops: int) -> IntArray:
    cells = np.bincount(
        spans.trace * n_ops + spans.name,
        weights=np.asarray(values, dtype=np.float64),
        minlength=n_traces * n_ops,
    )
    return np.rint(cells).astype(np.int64).reshape(n_traces, n_ops)


def _compute(
    spans: _Spans,
    *,
    trace_ids: npt.NDArray[np.str_],
    operations: tuple[str, ...],
    horizon: Horizon = "e2e",
    cutoff: IntArray | None = None,
    duplicates: int = 0,
) -> CriticalPaths:
    n_traces, n_ops = int(trace_ids.size), len(operations)
    p = _prepare(spans, n_traces, cutoff)
    on_path = _walk(p)
    self_ns = _self_time(p)
    ones = np.ones(spans.trace.size, dtype=np.float64)
    root = p.root
    complete = root >= 0
    root_ns = np.where(complete, p.end[root] - p.start[root], 0).astype(np.int64)
    return CriticalPaths(
        horizon=horizon,
        trace_ids=trace_ids,
        operations=operations,
        critical_ns=_per_trace(on_path, spans, n_traces, n_ops),
        self_ns=_per_trace(self_ns, spans, n_traces, n_ops),
        calls=_per_trace(ones, spans, n_traces, n_ops),
        duration_ns=_per_trace(spans.end - spans.start, spans, n_traces, n_ops),
        root_ns=root_ns,
        root_operation=np.where(complete, spans.name[root], -1).astype(np.int64),
        complete=complete,
        spans=int(spans.trace.size),
        duplicate_spans=duplicates,
        orphan_spans=int(((spans.parent < 0) & ~spans.true_root).sum()),
        overrunning_spans=int(p.overrun.sum()),
        detached_spans=int(p.detached.sum()),
    )
