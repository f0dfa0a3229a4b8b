"""Splitting one level's load across N workers so that the sum is exactly what was asked.

Open loop (:func:`split_arrivals`):

- ``poisson`` is split by *thinning*: N independent Poisson streams of rate ``R/N``, each
  drawn from its own generator (``numpy.random.SeedSequence.spawn`` of the level's seed), so
  their superposition is a Poisson process of rate ``R``. As in a single-process run, the
  first request goes at offset 0 (worker 0); a request count keeps the ``count`` earliest
  arrivals of the superposition.
- ``constant`` and ``gamma`` are split *by schedule*: the combined schedule is drawn exactly
  as a single-process run draws it (same seed, same offsets) and dealt round-robin, because
  a sum of N gamma renewal processes is not a gamma renewal process.

Every arrival carries its run-wide request index (its position in the combined schedule
plus the level's base), so prompts follow the same order as in a single-process run.

Closed loop: :func:`split_evenly` splits a global concurrency (or cap on requests in
flight) into per-worker shares that differ by at most one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from open_autoglm.loadgen._arrivals import arrival_offsets, level_rng
from open_autoglm.loadgen._errors import ConfigError
from open_autoglm.loadgen._profiles import Level

#: The random stream of a level's arrival times (as in the single-process runner).
STREAM_ARRIVALS = 0


@dataclass(frozen=True, slots=True)
class WorkerArrivals:
    """One worker's share of an open-loop level: send offsets in seconds from the level's
    common start (sorted) and the run-wide index of each request (same length)."""

    offsets_s: NDArray[np.float64]
    indices: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.offsets_s)


def split_evenly(total: int, workers: int) -> list[int]:
    """``total`` split into ``workers`` whole shares differing by at most one, larger first:
    ``split_evenly(5, 2) == [3, 2]``. Raises :class:`ConfigError` on ``workers < 1``."""
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if total < 0:
        raise ConfigError(f"cannot split a negative count ({total})")
    base, extra = divmod(total, workers)
    return [base + (1 if w < extra else 0) for w in range(workers)]


def worker_generators(seed: int, level: int, workers: int) -> list[np.random.Generator]:
    """One independent generator per worker for ``level`` of a run seeded with ``seed``:
    the children of the level's seed sequence (``SeedSequence.spawn``), never one seed
    shared by every worker."""
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    parent = np.random.SeedSequence([seed, level + 1, STREAM_ARRIVALS])
    return [np.random.default_rng(child) for child in parent.spawn(workers)]


def split_arrivals(
    level: Level, level_index: int, seed: int, workers: int, base_index: int = 0
) -> list[WorkerArrivals]:
    """Each worker's arrivals for the open-loop ``level`` (see the module docstring).

    Raises :class:`ConfigError` for a closed-loop level or ``workers < 1``."""
    if level.mode != "rate":
        raise ConfigError("only an open-loop (rate) level has arrivals to split")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if level.arrival == "poisson" and workers > 1:
        offsets, owner = _thinned(level, level_index, seed, workers)
    else:
        offsets = arrival_offsets(
            level.value,
            level.arrival,
            level.burstiness,
            level_rng(seed, level_index, STREAM_ARRIVALS),
            count=level.requests,
            duration_s=level.duration_s,
        )
        owner = np.arange(len(offsets), dtype=np.int64) % workers
    indices = np.arange(len(offsets), dtype=np.int64) + base_index
    return [
        WorkerArrivals(offsets_s=offsets[owner == w], indices=indices[owner == w])
        for w in range(workers)
    ]


def _thinned(
    level: Level, level_index: int, seed: int, workers: int
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The superposition of ``workers`` Poisson streams of rate ``R/workers`` after a first
    arrival at 0 (worker 0), sorted, with the worker that owns each arrival."""
    rate = level.value / workers
    count, duration = level.requests, level.duration_s
    streams: list[NDArray[np.float64]] = []
    for rng in worker_generators(seed, level_index, workers):
        if count is not None:
            # the combined first `count` arrivals never take more than `count` of one stream
            times = np.cumsum(rng.exponential(1.0 / rate, count))
        else:
            assert duration is not None
            times = _poisson_until(rate, duration, rng)
        if duration is not None:
            times = times[times < duration]
        streams.append(times)
    offsets = np.concatenate([[0.0], *streams])
    owner = np.concatenate(
        [[0], *(np.full(len(s), w, dtype=np.int64) for w, s in enumerate(streams))]
    ).astype(np.int64)
    order = np.argsort(offsets, kind="stable")
    offsets, owner = offsets[order], owner[order]
    if count is not None:
        offsets, owner = offsets[:count], owner[:count]
    return offsets.astype(np.float64), owner


def _poisson_until(rate: float, duration_s: float, rng: np.random.Generator) -> NDArray[np.float64]:
    """Arrival times of a Poisson process of ``rate`` on ``(0, duration_s)``."""
    chunk = max(16, int(rate * duration_s * 1.2) + 16)
    parts: list[NDArray[np.float64]] = []
    total = 0.0
    while total < duration_s:
        gaps = rng.exponential(1.0 / rate, chunk)
        parts.append(gaps)
        total += float(gaps.sum())
    times = np.cumsum(np.concatenate(parts))
    return times[times < duration_s]
