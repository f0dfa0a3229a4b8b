"""Hotspots on synthetic runs with a bottleneck planted on purpose: the report must name the
stage and the attribute, with example traces that really are slow and really have it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from open_autoglm.analysis._critical_path import critical_paths
from open_autoglm.analysis._hotspots import (
    HotspotConfig,
    find_hotspots,
    latency_from_records,
    span_attributes,
)
from open_autoglm.collector import SpanStore
from open_autoglm.telemetry import _names as names
from open_autoglm.testing import SyntheticRun


def _records(directory: Path) -> list[dict[str, object]]:
    lines = (directory / "requests.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_slow_queue_at_high_depth_is_named_with_its_threshold(tmp_path: Path) -> None:
    store = SyntheticRun(requests=3000, seed=1, slow_stage="queue", slow_above=12).write(tmp_path)
    paths = critical_paths(store)
    attributes = span_attributes(store, paths)
    latency = latency_from_records(paths, _records(tmp_path), "e2e")
    report = find_hotspots(paths, latency, attributes, HotspotConfig(quantile=0.95))

    stages = [h for h in report.hotspots if h.attribute is None and h.significant]
    assert stages[0].stage == "queue"
    assert stages[0].slow_share > 0.5 > stages[0].baseline_share
    assert report.summary[0].startswith("P95 E2E")
    assert "queue time rises with queue depth above 12" in report.summary[0]
    assert report.top is not None
    assert report.top.stage == "queue"
    # the over-represented bucket is the planted one
    finding = report.attributes[0]
    assert finding.attribute == names.ATTR_QUEUE_DEPTH
    assert finding.low > 12
    # example traces are slow requests whose queue was deep, and they exist in the store
    depth = attributes[names.ATTR_QUEUE_DEPTH]
    assert report.threshold_ms is not None
    with SpanStore(store) as reader:
        for trace_id in stages[0].example_trace_ids:
            row = paths.index(trace_id)
            assert latency[row] > report.threshold_ms
            assert depth[row] > 12
            assert {s.name for s in reader.trace(trace_id)} >= {"queue", "prefill", "decode"}
    doc = report.to_json()
    assert json.loads(json.dumps(doc))["hotspots"][0]["example_trace_ids"]


def test_slow_prefill_for_long_prompts_explains_p99_ttft(tmp_path: Path) -> None:
    run = SyntheticRun(
        requests=4000,
        seed=2,
        slow_stage="prefill",
        slow_attribute="prompt_tokens",
        slow_above=250,
        slow_extra_ms=30,
    )
    store = run.write(tmp_path)
    paths = critical_paths(store, horizon="ttft")
    latency = latency_from_records(paths, _records(tmp_path), "ttft")
    attributes = span_attributes(store, paths)
    report = find_hotspots(paths, latency, attributes, HotspotConfig(metric="ttft"))

    assert report.summary[0].startswith("P99 TTFT")
    assert " prefill time" in report.summary[0]
    assert "prompt tokens above" in report.summary[0]
    top_stage = next(h for h in report.hotspots if h.attribute is None)
    assert top_stage.stage == "prefill"
    assert top_stage.p_value is not None
    assert top_stage.p_value < 1e-6
    trend = next(
        t for t in report.trends if t.stage == "prefill" and t.attribute == names.ATTR_PROMPT_TOKENS
    )
    assert trend.rises
    assert 200 <= trend.threshold <= 300


def test_the_seed_rule_flags_frequent_slow_operations(tmp_path: Path) -> None:
    store = SyntheticRun(requests=300, seed=3, slow_stage=None).write(tmp_path)
    paths = critical_paths(store)
    # decode is ~20 ms in every request: more than 100 calls with a mean above 15 ms
    config = HotspotConfig(min_calls=100, min_mean_ms=15, quantile=0.9)
    report = find_hotspots(paths, config=config)
    flagged = {h.stage for h in report.hotspots if h.seed_rule}
    assert "decode" in flagged
    assert "tokenize" not in flagged
    decode = next(h for h in report.hotspots if h.stage == "decode" and h.attribute is None)
    assert decode.calls == 300
    assert decode.mean_ms is not None
    assert 15 < decode.mean_ms < 25
    # the default thresholds (100 calls, 50 ms) flag nothing here
    assert not any(h.seed_rule for h in find_hotspots(paths).hotspots)


def test_too_few_traces_say_so_instead_of_guessing(tmp_path: Path) -> None:
    store = SyntheticRun(requests=10, seed=4).write(tmp_path)
    report = find_hotspots(critical_paths(store))
    assert report.hotspots == ()
    assert report.note is not None
    assert "too few" in report.summary[0]


def test_in_flight_requests_come_from_overlapping_server_spans(tmp_path: Path) -> None:
    store = SyntheticRun(requests=200, seed=5).write(tmp_path)
    paths = critical_paths(store)
    in_flight = span_attributes(store, paths, specs=())["in_flight"]
    assert np.isfinite(in_flight).all()
    assert in_flight.min() == 0
    # brute force on the server spans
    with SpanStore(store) as reader:
        cols = reader.columns(["trace_id", "start_unix_ns", "end_unix_ns"], where="kind = 'SERVER'")
    starts = np.asarray(cols["start_unix_ns"])
    ends = np.asarray(cols["end_unix_ns"])
    for trace_id, start in list(zip(cols["trace_id"], starts, strict=True))[:50]:
        expected = int(((starts < start) & (ends > start)).sum())
        assert in_flight[paths.index(trace_id)] == expected


def test_a_run_too_small_to_split_says_how_many_requests_it_needs(tmp_path: Path) -> None:
    """20 requests with latencies that differ leave 2 above their P90: the reason is the run's
    size, not uniform latencies."""
    store = SyntheticRun(requests=20, seed=6).write(tmp_path)
    paths = critical_paths(store)
    latency = latency_from_records(paths, _records(tmp_path), "ttft")
    assert np.ptp(latency[np.isfinite(latency)]) > 0
    report = find_hotspots(paths, latency, config=HotspotConfig(metric="ttft", quantile=0.9))
    assert report.hotspots == ()
    assert report.note is not None
    assert report.note.startswith("20 requests leave 2 above P90 (3 needed)")
    assert "at least 22 requests" in report.note
    assert "uniform" not in report.note


def test_tied_latencies_are_called_uniform(tmp_path: Path) -> None:
    store = SyntheticRun(requests=100, seed=7).write(tmp_path)
    paths = critical_paths(store)
    latency = np.where(np.isfinite(paths.root_ns), 100.0, np.nan)
    latency[:2] = 200.0  # two values only: the P90 is the common one
    report = find_hotspots(paths, latency, config=HotspotConfig(quantile=0.9))
    assert report.note is not None
    assert "too uniform" in report.note
    assert "98 of 100 latencies equal the P90" in report.note
