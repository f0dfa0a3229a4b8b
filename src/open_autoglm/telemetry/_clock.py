"""Converts ``perf_counter_ns()`` stamps to wall-clock nanoseconds for span times.

Durations are measured with the monotonic clock; spans need Unix time. One anchor pair,
taken when the module loads, maps one onto the other.
"""

from __future__ import annotations

from time import perf_counter_ns, time_ns

_WALL_ANCHOR_NS = time_ns()
_PERF_ANCHOR_NS = perf_counter_ns()


def wall_ns(perf_ns: int) -> int:
    """Unix time in ns of a ``perf_counter_ns()`` stamp taken in this process."""
    return _WALL_ANCHOR_NS + (perf_ns - _PERF_ANCHOR_NS)
