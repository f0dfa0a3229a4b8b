"""Diagnosis of a run: where the slow requests' time went, and where the server saturates.

Composes the bulk analyses (critical path, hotspots, load models) over a run directory's span
store and records; the report embeds the result and the HTML shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from open_autoglm.analysis._critical_path import CriticalPathError, CriticalPaths, critical_paths
from open_autoglm.analysis._hotspots import (
    HotspotConfig,
    HotspotReport,
    find_hotspots,
    span_attributes,
)
from open_autoglm.analysis._load_models import (
    LoadModelsSummary,
    fit_load_models,
    points_from_levels,
)
from open_autoglm.analysis._run_directory import RECORDS_TABLE, RunDirectory
from open_autoglm.analysis._stages import WaterfallSpan, waterfalls

#: Levels needed before a load model is fitted (three parameters each).
MIN_LEVELS_FOR_FIT = 3
#: Per-request latencies per level kept for the load models' bootstrap (an even stride).
BOOTSTRAP_SAMPLES_PER_LEVEL = 2000


@dataclass(frozen=True, slots=True)
class Diagnosis:
    #: hotspots of E2E and of TTFT, by metric (each with plain-words summary and example trace
    #: ids); a metric whose critical paths could not be built is absent (see ``notes``)
    hotspots: dict[str, HotspotReport]
    #: decay and USL fits over the levels (None under three levels)
    load_models: LoadModelsSummary | None
    #: waterfalls of the hotspots' example traces, by trace id
    examples: dict[str, list[WaterfallSpan]]
    summary: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def slow_quantile(requests: int) -> float:
    """The slow cohort's quantile: P99 needs thousands of requests to hold more than a few."""
    if requests >= 2000:
        return 0.99
    if requests >= 200:
        return 0.95
    return 0.9


def _read_records(con: duckdb.DuckDBPyConnection) -> dict[str, np.ndarray]:
    """The measured records' columns (missing keys are NULL; ``ok`` per the records' rule)."""
    columns = con.execute(
        f"SELECT trace_id, level, ok, e2e_s, ttft_s FROM {RECORDS_TABLE} WHERE measured"
    ).fetchnumpy()
    return {
        k: np.ma.filled(v.astype(np.float64), np.nan) if k in ("e2e_s", "ttft_s") else
        np.ma.filled(v, False) if k == "ok" else np.asarray(v)
        for k, v in columns.items()
    }  # fmt: skip


def _latency_ms(paths: CriticalPaths, records: dict[str, np.ndarray], metric: str) -> np.ndarray:
    """Client latency (ms) per row of ``paths``; NaN for traces without a successful record."""
    values = records[f"{metric}_s"] * 1e3
    ok = records["ok"] & np.isfinite(values)
    ids = records["trace_id"][ok]
    out = np.full(paths.trace_ids.size, np.nan)
    if ids.size:
        rows = paths.indexes(np.asarray([str(i) for i in ids]))
        hit = rows >= 0
        out[rows[hit]] = values[ok][hit]
    return out


def _bootstrap_records(records: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Successful records, at most ``BOOTSTRAP_SAMPLES_PER_LEVEL`` a level, as dicts."""
    ok = records["ok"] & np.isfinite(records["e2e_s"])
    out: list[dict[str, Any]] = []
    for level in np.unique(records["level"][ok]):
        e2e = records["e2e_s"][ok & (records["level"] == level)]
        step = max(1, -(-e2e.size // BOOTSTRAP_SAMPLES_PER_LEVEL))
        out += [{"level": int(level), "e2e_s": float(v)} for v in e2e[::step]]
    return out


def diagnose(run: RunDirectory, levels: Sequence[Mapping[str, Any]]) -> Diagnosis:
    """Hotspots of the slow requests (E2E and TTFT) and load models over ``levels`` (the load
    generator's per-level results as JSON), from the run's span store and records (see
    :meth:`RunDirectory.database`)."""
    con = run.database()
    records = _read_records(con)
    ok = int(records["ok"].sum())
    quantile = slow_quantile(ok)
    hotspots: dict[str, HotspotReport] = {}
    summary: list[str] = []
    notes: list[str] = []
    example_ids: list[str] = []
    for metric in ("e2e", "ttft"):
        try:
            paths = critical_paths(con, horizon=metric)
        except CriticalPathError as exc:
            notes.append(f"critical path ({metric}): {exc}")
            continue
        config = HotspotConfig(metric=metric, quantile=quantile)
        found = find_hotspots(
            paths,
            _latency_ms(paths, records, metric),
            span_attributes(con, paths),
            config,
        )
        hotspots[metric] = found
        if found.note is None:  # a note is shown once, with the hotspot tables
            summary.extend(found.summary[:1])  # the rest are in the hotspot tables
        if found.top is not None:
            example_ids.extend(found.top.example_trace_ids)
    load_models = None
    if len(levels) >= MIN_LEVELS_FOR_FIT:
        points = points_from_levels(levels, _bootstrap_records(records))
        load_models = fit_load_models(points).report()
        summary.extend(load_models.summary)
    elif len(levels) > 1:
        notes.append(
            f"{len(levels)} levels: a load model needs at least {MIN_LEVELS_FOR_FIT} "
            "(run a step or sweep profile)."
        )
    examples = waterfalls(con, list(dict.fromkeys(example_ids)))
    return Diagnosis(hotspots, load_models, examples, summary, notes)
