"""Arrival processes for open-loop load: constant, Poisson and gamma (bursty) inter-arrivals.

The whole schedule of a level is drawn up front from one :class:`numpy.random.Generator`
derived from the run's seed and the level's index, so no two levels (or worker processes,
should the schedule be split) ever share a random stream.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from open_autoglm.loadgen._errors import ConfigError

Arrival = Literal["constant", "poisson", "gamma"]
ARRIVALS: tuple[Arrival, ...] = ("constant", "poisson", "gamma")


def level_rng(seed: int, level: int, stream: int) -> np.random.Generator:
    """An independent generator for one (level, purpose) pair of a seeded run; level ``-1``
    is the workload (prompts, images, dataset order)."""
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    return np.random.default_rng(np.random.SeedSequence([seed, level + 1, stream]))


def inter_arrivals(
    rate: float, count: int, arrival: Arrival, burstiness: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """``count`` gaps in seconds with mean ``1/rate``.

    ``poisson`` draws exponential gaps; ``gamma`` draws gamma gaps of shape ``burstiness``
    (``< 1`` burstier than Poisson, ``1`` is Poisson, ``> 1`` smoother); ``constant`` is even.
    """
    if rate <= 0:
        raise ConfigError(f"request rate must be > 0, got {rate}")
    if burstiness <= 0:
        raise ConfigError(f"burstiness must be > 0, got {burstiness}")
    mean = 1.0 / rate
    if arrival == "constant":
        return np.full(count, mean)
    if arrival == "poisson":
        return rng.exponential(mean, count)
    return rng.gamma(burstiness, mean / burstiness, count)


def arrival_offsets(
    rate: float,
    arrival: Arrival,
    burstiness: float,
    rng: np.random.Generator,
    *,
    count: int | None = None,
    duration_s: float | None = None,
) -> NDArray[np.float64]:
    """Send offsets (seconds from the level's start) for ``count`` requests or until
    ``duration_s``, whichever comes first. The first request goes at offset 0."""
    if count is None and duration_s is None:
        raise ConfigError("an open-loop level needs a request count or a duration")
    if count is not None:
        gaps = inter_arrivals(rate, count, arrival, burstiness, rng)
        offsets = np.concatenate(([0.0], np.cumsum(gaps[:-1]))) if count else gaps
    else:
        assert duration_s is not None
        chunk = max(16, int(rate * duration_s * 1.2) + 16)
        parts: list[NDArray[np.float64]] = []
        total = 0.0
        while total <= duration_s:
            gaps = inter_arrivals(rate, chunk, arrival, burstiness, rng)
            parts.append(gaps)
            total += float(gaps.sum())
        gaps_all = np.concatenate(parts)
        offsets = np.concatenate(([0.0], np.cumsum(gaps_all[:-1])))
    if duration_s is not None:
        offsets = offsets[offsets < duration_s]
    return offsets.astype(np.float64)
