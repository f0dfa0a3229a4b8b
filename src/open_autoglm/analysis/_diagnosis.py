"""Diagnosis of a run: where the slow requests' time went, and where the server saturates.

Composes the bulk analyses (critical path, hotspots, load models) over a run directory's span
store and records; the report embeds the result and the HTML shows it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from open_autoglm.analysis._critical_path import CriticalPathError, critical_paths
from open_autoglm.analysis._hotspots import (
    HotspotConfig,
    find_hotspots,
    latency_from_records,
    span_attributes,
)
from open_autoglm.analysis._load_models import fit_load_models, points_from_levels
from open_autoglm.analysis._stages import WaterfallSpan, waterfalls

#: Levels needed before a load model is fitted (three parameters each).
MIN_LEVELS_FOR_FIT = 3


@dataclass(frozen=True, slots=True)
class Diagnosis:
    #: hotspots of E2E and of TTFT (each with plain-words summary and example trace ids)
    hotspots: dict[str, dict[str, Any]]
    #: decay and USL fits over the levels, or why not
    load_models: dict[str, Any] | None
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


def _read_records(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def diagnose(spans_path: Path, records_path: Path, levels: list[dict[str, Any]]) -> Diagnosis:
    records = [r for r in _read_records(records_path) if r.get("phase", "measure") == "measure"]
    ok = sum(1 for r in records if r.get("status") == "ok")
    quantile = slow_quantile(ok)
    hotspots: dict[str, dict[str, Any]] = {}
    summary: list[str] = []
    notes: list[str] = []
    example_ids: list[str] = []
    for metric in ("e2e", "ttft"):
        try:
            paths = critical_paths(spans_path, horizon=metric)
        except CriticalPathError as exc:
            notes.append(f"critical path ({metric}): {exc}")
            continue
        config = HotspotConfig(metric=metric, quantile=quantile)
        found = find_hotspots(
            paths,
            latency_from_records(paths, records, metric),
            span_attributes(spans_path, paths),
            config,
        )
        hotspots[metric] = found.to_json()
        summary.extend(found.summary[:1])  # the rest are in the hotspot tables
        if found.top is not None:
            example_ids.extend(found.top.example_trace_ids)
    load_models = None
    if len(levels) >= MIN_LEVELS_FOR_FIT:
        points = points_from_levels(levels, records)
        load_models = fit_load_models(points).to_json()
        summary.extend(load_models["summary"])
    elif len(levels) > 1:
        notes.append(
            f"{len(levels)} levels: a load model needs at least {MIN_LEVELS_FOR_FIT} "
            "(run a step or sweep profile)."
        )
    con = duckdb.connect(str(spans_path), read_only=True)
    try:
        examples = waterfalls(con, list(dict.fromkeys(example_ids)))
    finally:
        con.close()
    return Diagnosis(hotspots, load_models, examples, summary, notes)
