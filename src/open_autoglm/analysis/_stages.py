"""Server stages joined to the client's records by trace id, in DuckDB SQL.

One row per measured request: what the client saw (TTFT, E2E, its own queue) next to the
server's stages (tokenize, preprocess, queue, prefill, decode) and the gaps between them,
all on the wall clock that both sides stamp (same machine, or NTP-synchronised).
The client TTFT splits into::

    client queue | network in | server before queue | queue | prefill | first flush
                   send → server span   parse, tokenize            prefill end → first chunk
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import duckdb
import numpy as np

from open_autoglm.analysis._run_directory import RECORDS_TABLE, RunDirectory
from open_autoglm.loadgen import Stats
from open_autoglm.telemetry import names as n

#: Stages reported, in pipeline order.
STAGE_COLUMNS = ("tokenize", "preprocess", "queue", "prefill", "decode")
#: Parts of the client's TTFT, in order.
TTFT_PARTS = ("client_queue", "network_in", "server_pre", "queue", "prefill", "first_flush")

_REQUESTS_SQL = f"""
CREATE OR REPLACE TEMP TABLE request_stages AS
WITH rec AS (
    SELECT trace_id, "index" AS request_index, level, measured, ok, sent_unix_ns, queue_s,
           ttft_s, e2e_s
    FROM {RECORDS_TABLE}
    WHERE trace_id IS NOT NULL
),
srv AS (
    SELECT trace_id, min(start_unix_ns) AS server_start, max(end_unix_ns) AS server_end
    FROM spans WHERE kind = 'SERVER' GROUP BY trace_id
),
stg AS (
    SELECT trace_id,
        sum(duration_ns) FILTER (WHERE name = '{n.SPAN_TOKENIZE}') AS tokenize_ns,
        sum(duration_ns) FILTER (WHERE name = '{n.SPAN_PREPROCESS}') AS preprocess_ns,
        sum(duration_ns) FILTER (WHERE name = '{n.SPAN_QUEUE}') AS queue_ns,
        sum(duration_ns) FILTER (WHERE name = '{n.SPAN_PREFILL}') AS prefill_ns,
        sum(duration_ns) FILTER (WHERE name = '{n.SPAN_DECODE}') AS decode_ns,
        min(start_unix_ns) FILTER (WHERE name = '{n.SPAN_QUEUE}') AS queue_start,
        max(end_unix_ns) FILTER (WHERE name = '{n.SPAN_PREFILL}') AS prefill_end
    FROM spans WHERE kind = 'INTERNAL' GROUP BY trace_id
)
SELECT rec.*, srv.server_start IS NOT NULL AS has_server_span,
    (srv.server_end - srv.server_start) / 1e6 AS server_ms,
    stg.tokenize_ns / 1e6 AS tokenize_ms, stg.preprocess_ns / 1e6 AS preprocess_ms,
    stg.queue_ns / 1e6 AS queue_ms, stg.prefill_ns / 1e6 AS prefill_ms,
    stg.decode_ns / 1e6 AS decode_ms,
    rec.queue_s * 1e3 AS client_queue_ms,
    (srv.server_start - rec.sent_unix_ns) / 1e6 AS network_in_ms,
    (stg.queue_start - srv.server_start) / 1e6 AS server_pre_ms,
    rec.ttft_s * 1e3 - (stg.prefill_end - rec.sent_unix_ns) / 1e6 AS first_flush_ms,
    rec.ttft_s * 1e3 AS ttft_ms, rec.e2e_s * 1e3 AS e2e_ms
FROM rec LEFT JOIN srv USING (trace_id) LEFT JOIN stg USING (trace_id)
"""


@dataclass(frozen=True, slots=True)
class Cohort:
    """Mean milliseconds per stage over a set of requests, and each stage's share of E2E."""

    label: str
    requests: int
    e2e_ms: float | None
    stage_ms: dict[str, float | None]
    share_of_e2e: dict[str, float | None]


@dataclass(frozen=True, slots=True)
class WaterfallSpan:
    """One span of a trace on the trace's time axis (ms from the first span's start)."""

    name: str
    kind: str
    service: str | None
    start_ms: float
    duration_ms: float
    depth: int


@dataclass(frozen=True, slots=True)
class SlowRequest:
    trace_id: str
    level: int
    e2e_ms: float
    ttft_ms: float | None
    stage_ms: dict[str, float | None]
    ttft_parts_ms: dict[str, float | None]
    spans: list[WaterfallSpan]


@dataclass(frozen=True, slots=True)
class StageBreakdown:
    """The server's view of the measured requests, joined to the client's."""

    requests: int  # measured, successful requests with a trace id
    with_server_spans: int  # of those, how many the span store has
    stages_ms: dict[str, Stats]
    at_p50: Cohort  # requests between the 40th and 60th percentile of E2E
    at_p99: Cohort  # requests at or above the 99th percentile of E2E
    rest: Cohort  # requests below the 99th percentile
    ttft_parts_ms: dict[str, Stats]
    ttft_parts_share_p50: dict[str, float | None]
    ttft_parts_share_p99: dict[str, float | None]
    slowest: list[SlowRequest]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def _cohort(label: str, rows: dict[str, np.ndarray], mask: np.ndarray) -> Cohort:
    e2e = _mean(rows["e2e_ms"][mask])
    stage_ms = {s: _mean(rows[f"{s}_ms"][mask]) for s in STAGE_COLUMNS}
    share = {s: (v / e2e if v is not None and e2e else None) for s, v in stage_ms.items()}
    return Cohort(label, int(mask.sum()), e2e, stage_ms, share)


def _shares(rows: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, float | None]:
    ttft = _mean(rows["ttft_ms"][mask])
    return {
        p: (v / ttft if (v := _mean(rows[f"{p}_ms"][mask])) is not None and ttft else None)
        for p in TTFT_PARTS
    }


def stage_breakdown(run: RunDirectory, slowest: int = 10) -> StageBreakdown:
    """Join the run's records to its span store by trace id and summarise the server's
    stages over the measured, successful requests (``run`` has both; see
    :meth:`RunDirectory.database`)."""
    con = run.database()
    con.execute(_REQUESTS_SQL)
    columns = ["trace_id", "level", "e2e_ms", "ttft_ms", "has_server_span"]
    columns += [f"{s}_ms" for s in STAGE_COLUMNS] + [f"{p}_ms" for p in TTFT_PARTS]
    result = con.execute(
        f"SELECT {', '.join(dict.fromkeys(columns))} FROM request_stages "
        "WHERE measured AND ok AND e2e_ms IS NOT NULL "
        "ORDER BY level, request_index, trace_id"  # one order: sums repeat to the last digit
    ).fetchnumpy()
    e2e_all = np.asarray(result["e2e_ms"], dtype=np.float64)
    top = [str(result["trace_id"][i]) for i in np.argsort(-e2e_all)[:slowest]]
    by_trace = waterfalls(con, top)
    # DuckDB hands NULLs back as masked entries: make them NaN, never a silent 0
    rows = {
        k: (v if k == "trace_id" else np.ma.filled(np.ma.asarray(v, dtype=np.float64), np.nan))
        for k, v in result.items()
    }
    count = len(rows["trace_id"])
    e2e = rows["e2e_ms"]
    if count:
        p40, p60, p99 = np.percentile(e2e, [40, 60, 99])
    else:
        p40 = p60 = p99 = 0.0
    mid = (e2e >= p40) & (e2e <= p60)
    slow = e2e >= p99
    order = np.argsort(-e2e)[:slowest]

    def part(name: str, i: int) -> float | None:
        value = rows[name][i]
        return float(value) if np.isfinite(value) else None

    return StageBreakdown(
        requests=count,
        with_server_spans=int(np.nansum(rows["has_server_span"])) if count else 0,
        stages_ms={
            s: Stats.of_seconds((_finite(rows[f"{s}_ms"]) / 1e3).tolist()) for s in STAGE_COLUMNS
        },
        at_p50=_cohort("p40-p60 of E2E", rows, mid),
        at_p99=_cohort("≥ p99 of E2E", rows, slow),
        rest=_cohort("< p99 of E2E", rows, ~slow),
        ttft_parts_ms={
            p: Stats.of_seconds((_finite(rows[f"{p}_ms"]) / 1e3).tolist()) for p in TTFT_PARTS
        },
        ttft_parts_share_p50=_shares(rows, mid),
        ttft_parts_share_p99=_shares(rows, slow),
        slowest=[
            SlowRequest(
                trace_id=str(rows["trace_id"][i]),
                level=int(rows["level"][i]),
                e2e_ms=float(e2e[i]),
                ttft_ms=part("ttft_ms", i),
                stage_ms={s: part(f"{s}_ms", i) for s in STAGE_COLUMNS},
                ttft_parts_ms={p: part(f"{p}_ms", i) for p in TTFT_PARTS},
                spans=by_trace.get(str(rows["trace_id"][i]), []),
            )
            for i in order
        ],
    )


def waterfalls(
    con: duckdb.DuckDBPyConnection, trace_ids: list[str]
) -> dict[str, list[WaterfallSpan]]:
    """Spans of the given traces, ordered by start, with their depth in the span tree."""
    if not trace_ids:
        return {}
    rows = con.execute(
        "SELECT trace_id, span_id, parent_span_id, name, kind, service_name, start_unix_ns, "
        "duration_ns FROM spans WHERE trace_id IN (SELECT unnest(?)) "
        "ORDER BY trace_id, start_unix_ns",
        [trace_ids],
    ).fetchall()
    by_trace: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_trace.setdefault(row[0], []).append(row)
    out: dict[str, list[WaterfallSpan]] = {}
    for trace_id, spans in by_trace.items():
        parents = {r[1]: r[2] for r in spans}
        origin = min(r[6] for r in spans)

        def depth(span_id: str, parents: dict[str, str | None] = parents) -> int:
            d, seen = 0, set()
            while (parent := parents.get(span_id)) in parents and parent not in seen:
                seen.add(parent)
                span_id, d = parent, d + 1
            return d

        out[trace_id] = [
            WaterfallSpan(r[3], r[4], r[5], (r[6] - origin) / 1e6, r[7] / 1e6, depth(r[1]))
            for r in spans
        ]
    return out


def _finite(values: np.ndarray) -> np.ndarray:
    finite: np.ndarray = values[np.isfinite(values)]
    return finite
