"""The data of the curves every benchmark report draws, kept small enough for ``report.json``.

From the measured records (``requests.jsonl``) and the server's samples
(``server_metrics.jsonl``):

* time series over the run, seconds from the first request sent: completed requests per
  second, output tokens per second (each request's tokens spread over its chunks), requests
  in flight, and the server's queue depth, running batch size, KV-cache usage and memory;
* the ITL distribution per level (shared bins) and the median ITL against the position of the
  gap in the output (gap *k* lies between output chunks *k* and *k + 1*);
* TTFT against input length (a sample of at most :data:`MAX_SCATTER_POINTS` requests);
* the input and output length distributions per level.

Every series is at most a few hundred points, however long the run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from open_autoglm.analysis._run_directory import RECORDS_TABLE, RunDirectory

#: Buckets of a time series over the run.
TIME_BUCKETS: Final = 60
#: Bins of a histogram.
HISTOGRAM_BINS: Final = 40
#: Points of TTFT against input length kept (an even stride over the requests).
MAX_SCATTER_POINTS: Final = 600
#: Positions of ITL against output position (consecutive gaps averaged beyond this).
MAX_POSITIONS: Final = 120
#: The server's gauges drawn over time: (sample key, series name, scale).
SERVER_GAUGES: Final = (
    ("queue_depth", "queue depth", 1.0),
    ("batch_size", "running batch size", 1.0),
    ("batch_cap", "batch cap", 1.0),
    ("kv_cache_usage", "KV cache usage, %", 100.0),
    ("rss_bytes", "server RSS, MiB", 2.0**-20),
    ("gpu_memory_used_bytes", "GPU memory, MiB", 2.0**-20),
)


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart: ``name`` and its points (``x``, ``y`` of the same length)."""

    name: str
    x: list[float]
    y: list[float]


@dataclass(frozen=True, slots=True)
class Histogram:
    """Counts per bin (``edges`` has one more value than each count list), one list per
    series name; ``above`` counts the values past the last edge (cut at the 99.5th
    percentile so a few outliers do not squash the rest). Edges ``[v, v]``: every value is
    ``v``."""

    edges: list[float]
    counts: dict[str, list[int]]
    above: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LevelMark:
    """Where a level began on the run's time axis (s)."""

    label: str
    t_s: float


@dataclass(frozen=True, slots=True)
class ChartData:
    """The curves of the report (see the module's doc); times in s from the first send."""

    duration_s: float
    levels: list[LevelMark]
    client: list[Series]  # requests/s, output tokens/s, in flight
    server: list[Series]  # the gauges of SERVER_GAUGES that were sampled
    itl_ms: Histogram | None
    itl_by_position_ms: list[Series]  # per level: median ITL per output position
    ttft_by_input: list[Series]  # per level: (input tokens, TTFT ms) points
    input_tokens: Histogram | None
    output_tokens: Histogram | None


def _r(values: np.ndarray, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in values]


def chart_data(run: RunDirectory, labels: dict[int, str]) -> ChartData | None:
    """The curves of the run's records and samples; None without records. ``labels`` names
    each level index."""
    if not run.has_records():
        return None
    con = run.database()
    rows = con.execute(
        f"""SELECT level, sent_unix_ns, e2e_s, done_s - sent_s, ok, output_tokens,
                   input_tokens, ttft_s, chunk_offsets_s
            FROM {RECORDS_TABLE} WHERE measured AND sent_unix_ns IS NOT NULL
            ORDER BY sent_unix_ns"""
    ).fetchall()
    if not rows:
        return None
    t0 = min(int(r[1]) for r in rows)
    level = np.array([int(r[0]) for r in rows])
    sent = np.array([(int(r[1]) - t0) / 1e9 for r in rows])
    took = np.array([_num(r[3] if r[3] is not None else r[2]) for r in rows])
    done = sent + np.nan_to_num(took, nan=0.0)
    ok = np.array([bool(r[4]) for r in rows])
    samples = _samples(run.metrics_path, t0)
    end = max(float(done.max()), max((t for s in samples.values() for t in s[0]), default=0.0))
    width = max(end / TIME_BUCKETS, 0.05)
    edges = np.arange(0.0, end + width, width)
    mids = _r((edges[:-1] + edges[1:]) / 2, 3)
    completed = np.histogram(done[ok], edges)[0] / width
    token_times: list[float] = []
    token_weights: list[float] = []
    for r, start in zip(rows, sent, strict=True):
        offsets = r[8] or []
        if r[4] and offsets and r[5]:
            token_times.extend(start + o for o in offsets)
            token_weights.extend([r[5] / len(offsets)] * len(offsets))
    tokens = np.histogram(token_times, edges, weights=token_weights)[0] / width
    in_flight = _in_flight(sent, done, edges)
    client = [
        Series("completed requests/s", mids, _r(completed)),
        Series("output tokens/s", mids, _r(tokens)),
        Series("requests in flight", mids, _r(in_flight)),
    ]
    server = [
        Series(name, _r(np.asarray(t), 3), _r(np.asarray(v) * scale))
        for key, name, scale in SERVER_GAUGES
        if (t := samples.get(key, ([], []))[0]) and (v := samples[key][1])
    ]
    marks = [
        LevelMark(labels.get(lv, str(lv)), round(float(sent[level == lv].min()), 3))
        for lv in np.unique(level)
    ]
    names = [labels.get(int(lv), str(lv)) for lv in level]
    ok_rows = [i for i in range(len(rows)) if ok[i]]
    return ChartData(
        duration_s=round(end, 3),
        levels=marks,
        client=client,
        server=server,
        itl_ms=_itl_histogram(run, labels),
        itl_by_position_ms=_itl_by_position(run, labels),
        ttft_by_input=_scatter(rows, names, ok_rows),
        input_tokens=_histogram(_pooled(rows, ok_rows, 6), integer=True),
        output_tokens=_histogram(_pooled(rows, ok_rows, 5), integer=True),
    )


def _pooled(
    rows: list[tuple[object, ...]], ok_rows: list[int], column: int
) -> dict[str, list[float]]:
    """The values of one column over the successful rows of every level (None left out)."""
    values = [_num(rows[i][column]) for i in ok_rows if rows[i][column] is not None]
    return {"all levels": values} if values else {}


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _in_flight(sent: np.ndarray, done: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Requests in flight averaged over each bucket (time inside the bucket ÷ its width);
    for a very long run, counted at each bucket's middle instead."""
    lo, hi = edges[:-1], edges[1:]
    if sent.size * lo.size > 5_000_000:
        mid = (lo + hi) / 2
        started = np.searchsorted(np.sort(sent), mid, side="right")
        ended = np.searchsorted(np.sort(done), mid, side="right")
        counted: np.ndarray = (started - ended).astype(np.float64)
        return counted
    overlap = np.clip(np.minimum(done[:, None], hi) - np.maximum(sent[:, None], lo), 0.0, None)
    result: np.ndarray = overlap.sum(axis=0) / (hi - lo)
    return result


def _samples(path: Path, t0: int) -> dict[str, tuple[list[float], list[float]]]:
    """Each numeric gauge of ``server_metrics.jsonl`` as (s from ``t0``, value); samples
    before the first request are kept (model load shows as negative time, left out)."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    if not path.is_file():
        return out
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    step = max(1, len(rows) // (TIME_BUCKETS * 4))
    for row in rows[::step]:
        t = (int(row.get("unix_ns", 0)) - t0) / 1e9
        if t < 0:
            continue
        for key, value in row.items():
            if key != "unix_ns" and isinstance(value, int | float) and math.isfinite(value):
                times, values = out.setdefault(key, ([], []))
                times.append(t)
                values.append(float(value))
    return out


def _histogram(values: dict[str, list[float]], *, integer: bool = False) -> Histogram | None:
    """Shared bins over every series (cut at the 99.5th percentile), counts per series;
    ``integer`` values (token counts) get bins of whole numbers."""
    pooled = np.asarray([v for vs in values.values() for v in vs], dtype=np.float64)
    if not pooled.size:
        return None
    low, high = float(pooled.min()), float(np.percentile(pooled, 99.5))
    if float(pooled.max()) == low:  # one value: edges [v, v], one count per series
        return Histogram([round(low, 4)] * 2, {k: [len(v)] for k, v in values.items()})
    if integer:
        high = math.ceil(high)
        width = max(1, math.ceil((high - low + 1) / HISTOGRAM_BINS))
        edges = np.arange(low - 0.5, high + 0.5 + width, width)
        edges = edges[: np.searchsorted(edges, high + 0.5) + 1]
    else:
        if high <= low:
            high = low + 1.0
        edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    counts = {name: np.histogram(vs, edges)[0].tolist() for name, vs in values.items()}
    above = {name: int((np.asarray(vs) > edges[-1]).sum()) for name, vs in values.items()}
    return Histogram(_r(edges), counts, {k: v for k, v in above.items() if v})


def _itl_histogram(run: RunDirectory, labels: dict[int, str]) -> Histogram | None:
    gaps = (
        run.database()
        .execute(
            f"""SELECT level, list((chunk_offsets_s[i + 1] - chunk_offsets_s[i]) * 1e3)
                FROM (SELECT level, chunk_offsets_s,
                             unnest(range(1, len(chunk_offsets_s))) AS i
                      FROM {RECORDS_TABLE}
                      WHERE measured AND ok AND len(chunk_offsets_s) > 1)
                GROUP BY level ORDER BY level"""
        )
        .fetchall()
    )
    return _histogram({labels.get(int(lv), str(lv)): list(v) for lv, v in gaps})


def _itl_by_position(run: RunDirectory, labels: dict[int, str]) -> list[Series]:
    """Median gap (ms) per output position and level; positions past :data:`MAX_POSITIONS`
    are grouped evenly (x is the group's first position)."""
    row = (
        run.database()
        .execute(f"SELECT max(len(chunk_offsets_s)) FROM {RECORDS_TABLE} WHERE measured AND ok")
        .fetchone()
    )
    longest = int(row[0]) if row and row[0] else 0
    if longest < 2:
        return []
    group = max(1, math.ceil((longest - 1) / MAX_POSITIONS))
    data = (
        run.database()
        .execute(
            f"""SELECT level, (i - 1) // {group} * {group} + 1 AS pos,
                       median((chunk_offsets_s[i + 1] - chunk_offsets_s[i]) * 1e3)
                FROM (SELECT level, chunk_offsets_s,
                             unnest(range(1, len(chunk_offsets_s))) AS i
                      FROM {RECORDS_TABLE}
                      WHERE measured AND ok AND len(chunk_offsets_s) > 1)
                GROUP BY level, pos ORDER BY level, pos"""
        )
        .fetchall()
    )
    out: dict[int, tuple[list[float], list[float]]] = {}
    for lv, pos, gap in data:
        xs, ys = out.setdefault(int(lv), ([], []))
        xs.append(float(pos))
        ys.append(round(float(gap), 4))
    return [Series(labels.get(lv, str(lv)), xs, ys) for lv, (xs, ys) in out.items()]


def _scatter(rows: list[tuple[object, ...]], names: list[str], ok_rows: list[int]) -> list[Series]:
    points = [i for i in ok_rows if rows[i][6] is not None and rows[i][7] is not None]
    stride = max(1, math.ceil(len(points) / MAX_SCATTER_POINTS))
    out: dict[str, tuple[list[float], list[float]]] = {}
    for i in points[::stride]:
        xs, ys = out.setdefault(names[i], ([], []))
        xs.append(_num(rows[i][6]))
        ys.append(round(_num(rows[i][7]) * 1e3, 3))
    return [Series(name, xs, ys) for name, (xs, ys) in out.items()]
