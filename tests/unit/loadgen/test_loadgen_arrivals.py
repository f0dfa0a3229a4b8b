"""Arrival processes: the asked distribution, reproducible, one random stream per level."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from open_autoglm.loadgen import ConfigError, arrival_offsets, level_rng


def gaps(arrival: str, burstiness: float = 1.0, seed: int = 0, level: int = 0) -> np.ndarray:
    rng = level_rng(seed, level, 0)
    offsets = arrival_offsets(20.0, arrival, burstiness, rng, count=4000)  # type: ignore[arg-type]
    return np.diff(offsets)


def test_poisson_gaps_are_exponential_with_the_asked_mean() -> None:
    g = gaps("poisson")
    assert g.mean() == pytest.approx(1 / 20, rel=0.05)
    assert stats.kstest(g, "expon", args=(0, 1 / 20)).pvalue > 0.01


@pytest.mark.parametrize("shape", [0.25, 1.0, 4.0])
def test_gamma_burstiness_sets_the_coefficient_of_variation(shape: float) -> None:
    g = gaps("gamma", burstiness=shape)
    assert g.mean() == pytest.approx(1 / 20, rel=0.1)
    assert g.std() / g.mean() == pytest.approx(1 / np.sqrt(shape), rel=0.15)


def test_constant_is_even() -> None:
    assert np.allclose(gaps("constant"), 1 / 20)


def test_seeded_schedules_repeat_and_levels_differ() -> None:
    assert np.array_equal(gaps("poisson", seed=7), gaps("poisson", seed=7))
    assert not np.array_equal(gaps("poisson", seed=7, level=0), gaps("poisson", seed=7, level=1))
    assert not np.array_equal(gaps("poisson", seed=7), gaps("poisson", seed=8))


def test_duration_bound_schedule_stays_inside_the_duration() -> None:
    offsets = arrival_offsets(100.0, "poisson", 1.0, level_rng(0, 0, 0), duration_s=5.0)
    assert offsets[0] == 0.0
    assert offsets.max() < 5.0
    assert len(offsets) == pytest.approx(500, rel=0.15)


@pytest.mark.parametrize(("rate", "burstiness"), [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0)])
def test_impossible_rates_are_refused(rate: float, burstiness: float) -> None:
    with pytest.raises(ConfigError):
        arrival_offsets(rate, "gamma", burstiness, level_rng(0, 0, 0), count=10)
