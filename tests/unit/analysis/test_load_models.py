"""Load models recover known parameters from noisy synthetic levels, and refuse to invent a
knee or a plateau that the data do not show."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from open_autoglm.analysis._load_models import (
    LevelPoint,
    decay,
    fit_load_models,
    points_from_levels,
    server_sentence,
    usl,
)

LOADS = np.array([1, 2, 4, 8, 12, 16, 24, 32, 48, 64], dtype=np.float64)


def noisy_points(seed: int = 0, noise: float = 0.02) -> list[LevelPoint]:
    rng = np.random.default_rng(seed)
    x = usl(LOADS, 12.0, 0.04, 0.0015) * rng.normal(1, noise, LOADS.size)
    r = decay(LOADS, 40.0, 250.0, 0.06) * rng.normal(1, noise, LOADS.size)
    return [LevelPoint(n, xi, ri, label=f"c={n:g}") for n, xi, ri in zip(LOADS, x, r, strict=True)]


def test_usl_recovers_parameters_and_the_knee_with_its_interval() -> None:
    fit = fit_load_models(noisy_points(), bootstrap=150).usl
    assert fit.supported
    true_knee = math.sqrt((1 - 0.04) / 0.0015)  # 25.3
    assert fit.knee is not None
    assert fit.knee.value == pytest.approx(true_knee, rel=0.1)
    assert fit.knee.low is not None
    assert fit.knee.high is not None
    assert fit.knee.low <= true_knee <= fit.knee.high
    assert fit.parameters["lambda"].value == pytest.approx(12.0, rel=0.05)
    assert fit.parameters["kappa"].value == pytest.approx(0.0015, rel=0.25)
    assert fit.r_squared is not None
    assert fit.r_squared > 0.98
    assert "N* = " in fit.sentence
    # the next untested level after 48, 64 is one more step of 16
    assert fit.next_load == 80
    assert fit.prediction is not None
    truth = float(usl(np.asarray(fit.next_load), 12.0, 0.04, 0.0015))
    assert fit.prediction.value == pytest.approx(truth, rel=0.05)


def test_decay_model_recovers_base_latency_and_predicts_the_next_level() -> None:
    models = fit_load_models(noisy_points(seed=1), next_load=80, bootstrap=150)
    fit = models.decay
    assert fit.supported
    assert fit.parameters["r0"].value == pytest.approx(40, rel=0.2)
    assert fit.parameters["alpha"].value == pytest.approx(250, rel=0.1)
    assert fit.parameters["beta"].value == pytest.approx(0.06, rel=0.2)
    assert fit.prediction is not None
    truth = float(decay(np.asarray(80.0), 40.0, 250.0, 0.06))
    assert fit.prediction.low is not None
    assert fit.prediction.high is not None
    assert fit.prediction.low * 0.98 <= truth <= fit.prediction.high * 1.02
    assert "ms" in fit.sentence
    doc = json.loads(json.dumps(models.to_json()))
    assert len(doc["decay"]["curve"]["load"]) == 64
    assert len(doc["usl"]["points"]) == LOADS.size


def test_three_levels_are_refused_in_words() -> None:
    models = fit_load_models(noisy_points()[:3])
    for fit in (models.decay, models.usl):
        assert not fit.supported
        assert fit.knee is None
        assert "3 distinct load levels" in fit.sentence
        assert "at least 4" in fit.sentence
    assert np.isnan(models.usl.predict([10.0])).all()


def test_no_retrograde_throughput_means_no_knee() -> None:
    # throughput still climbing linearly: κ = 0, the peak is not in the data
    points = [LevelPoint(n, 10.0 * n / (1 + 0.1 * (n - 1)), 20 + 2 * n) for n in LOADS[:6]]
    models = fit_load_models(points, bootstrap=50)
    assert not models.usl.supported
    assert models.usl.knee is None
    assert "κ is 0" in models.usl.sentence
    # latency rising in a straight line has no plateau: the decay model says so
    assert not models.decay.supported
    assert models.decay.reason is not None
    assert "linearly" in models.decay.reason


def test_points_from_loadgen_levels_use_concurrency_or_in_flight() -> None:
    levels = [
        {"index": 0, "label": "c=4", "mode": "concurrency", "target": 4, "mean_in_flight": 3.9,
         "succeeded": 10, "request_throughput": 20.0, "e2e_ms": {"mean": 150.0}},
        {"index": 1, "label": "r=30", "mode": "rate", "target": 30, "mean_in_flight": 7.5,
         "succeeded": 10, "request_throughput": 29.0, "e2e_ms": {"mean": 210.0}},
        {"index": 2, "label": "c=8", "mode": "concurrency", "target": 8, "succeeded": 0,
         "request_throughput": 0.0, "e2e_ms": {"mean": None}},
    ]  # fmt: skip
    records = [
        {"level": 0, "phase": "measure", "status": "ok", "e2e_s": 0.1},
        {"level": 0, "phase": "warmup", "status": "ok", "e2e_s": 9.0},
        {"level": 1, "phase": "measure", "status": "error", "e2e_s": None},
        {"level": 1, "phase": "measure", "status": "ok", "e2e_s": 0.2},
    ]
    points = points_from_levels(levels, records)
    assert [(p.load, p.throughput, p.latency_ms) for p in points] == [
        (4.0, 20.0, 150.0),
        (7.5, 29.0, 210.0),
    ]
    assert points[0].latencies_ms == (100.0,)
    assert points[1].latencies_ms == (200.0,)


def test_the_servers_gauges_per_level_join_the_load_models_summary(tmp_path: Path) -> None:
    from open_autoglm.analysis._metric_samples import resources_by_level

    t0 = 1_700_000_000_000_000_000
    levels = [
        {"index": i, "label": f"c={c}", "mode": "concurrency", "target": c, "succeeded": 10,
         "e2e_ms": {"mean": 100.0 * (1 + i)}, "request_throughput": 10.0 * c / (1 + i),
         "started_unix_ns": t0 + i * 10**10, "duration_s": 9.0}
        for i, c in enumerate((1, 2, 4, 8))
    ]  # fmt: skip
    samples = [
        {"unix_ns": t0 + i * 10**10 + k * 10**9, "queue_depth": [0, 0, 2, 6][i],
         "kv_cache_usage": [0.1, 0.2, 0.5, 0.9][i], "preemptions_total": [0, 0, 0, k][i]}
        for i in range(4) for k in range(5)
    ]  # fmt: skip
    path = tmp_path / "server_metrics.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    server = resources_by_level(path, levels)
    assert [s.samples for s in server] == [5, 5, 5, 5]
    assert server[3].preemptions == 4
    points = points_from_levels(levels, server=server)
    assert points[2].server is not None
    assert points[2].server.queue_depth_mean == 2
    assert points[2].summary().server == server[2]  # kept in the report
    assert server_sentence(points) == (
        "By the server's own gauges, requests start to wait in its queue at load 4 (mean "
        "depth 2.0); its KV cache is at most 90 % full (load 8); 4 requests were preempted."
    )
    assert server_sentence(points_from_levels(levels)) is None
