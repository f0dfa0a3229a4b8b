"""Load-adaptive tail sampling: keep or drop a request's spans once the request has ended.

The decision is taken when the request's outcome is known, so it can keep what matters:

* every request that failed, and every request slower than a threshold (a fixed one, or a
  running estimate of the 95th percentile of request durations that follows drift) -- reason
  ``error`` / ``slow``, ratio 1;
* of the rest, a fraction ``p`` chosen so that the exported spans stay under a budget
  (spans per second): ``p = (budget - forced rate) / rate of the rest``, from exponentially
  decayed rate estimates (time constant ``tau_s``), so ``p`` falls as load rises and comes
  back when it falls. The draw is consistent, as in OpenTelemetry's ``TraceIdRatioBased``: a
  request is kept when the random low 56 bits of its trace id fall under ``p``.

The ratio a request was kept with goes on its SERVER span (``autoglm.sampling.ratio``), so an
analysis can weight it by ``1 / ratio``. Metrics are observed for every request regardless.

Parent-based, as the OpenTelemetry specification's default sampler: a request whose incoming
``traceparent`` has the sampled flag off is not recorded at all; one with it on is kept (the
caller's trace would break otherwise); only root requests are decided here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

_RANDOM_BITS: Final = 56
_RANDOM_MASK: Final = (1 << _RANDOM_BITS) - 1

REASON_ERROR: Final = "error"
REASON_SLOW: Final = "slow"
REASON_PARENT: Final = "parent"
REASON_RATIO: Final = "ratio"


@dataclass(frozen=True, slots=True)
class Decision:
    """``keep``: export the request's spans; ``ratio``: the probability it was kept with."""

    keep: bool
    ratio: float
    reason: str


KEEP_PARENT: Final = Decision(True, 1.0, REASON_PARENT)


@dataclass(frozen=True, slots=True)
class SamplingConfig:
    """``budget_spans_per_s``: most spans per second to export (``None``: keep everything,
    the default of benchmark runs). ``slow_s``: a request at least this long is always kept
    (``None``: the running ``slow_quantile`` of recent durations)."""

    budget_spans_per_s: float | None = None
    slow_s: float | None = None
    slow_quantile: float = 0.95
    tau_s: float = 0.5

    def __post_init__(self) -> None:
        if self.budget_spans_per_s is not None and not self.budget_spans_per_s > 0:
            raise ValueError("the trace budget must be a positive number of spans per second")
        if self.slow_s is not None and not self.slow_s > 0:
            raise ValueError("the slow-request threshold must be positive")
        if not 0.5 <= self.slow_quantile < 1.0:
            raise ValueError("slow_quantile must be in [0.5, 1)")
        if not self.tau_s > 0:
            raise ValueError("tau_s must be positive")


class _RunningQuantile:
    """A running estimate of the ``q`` quantile that follows drift (O(1) per value).

    Seeded with the sample quantile of the first ``warm`` values; then each value above the
    estimate raises it by a factor ``1 + step * q`` and each one at or below lowers it by
    ``1 - step * (1 - q)``, so in equilibrium a share ``1 - q`` of values lies above it -- also
    while latency climbs under load, where a quantile of a trailing window would lag and mark
    nearly every request slow.
    """

    def __init__(self, q: float, warm: int = 32, step: float = 0.05) -> None:
        self._q = q
        self._warm = warm
        self._step = step
        self._seed: list[float] = []
        self.value = math.inf  # nothing counts as slow before ``warm`` values

    def add(self, value: float) -> None:
        if len(self._seed) < self._warm:
            self._seed.append(value)
            if len(self._seed) == self._warm:
                ordered = sorted(self._seed)
                self.value = max(ordered[min(self._warm - 1, int(self._q * self._warm))], 1e-9)
            return
        if value > self.value:
            self.value *= 1 + self._step * self._q
        else:
            self.value *= 1 - self._step * (1 - self._q)


class _DecayingRate:
    """Events per second, exponentially decayed with time constant ``tau_s``."""

    def __init__(self, tau_s: float, now: float) -> None:
        self._tau = tau_s
        self._rate = 0.0
        self._at = now

    def add(self, amount: float, now: float) -> None:
        self._rate = self.rate(now) + amount / self._tau
        self._at = now

    def rate(self, now: float) -> float:
        dt = now - self._at
        return self._rate * math.exp(-dt / self._tau) if dt > 0 else self._rate


class TailSampler:
    """Decides, per finished root request, whether its spans are exported (see the module).

    Not thread-safe: call it from one event loop. ``clock`` returns seconds (monotonic).
    """

    def __init__(self, config: SamplingConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        now = clock()
        self._forced = _DecayingRate(config.tau_s, now)
        self._rest = _DecayingRate(config.tau_s, now)
        self._slow = _RunningQuantile(config.slow_quantile)
        self.sampled_out = 0  # requests whose spans were dropped

    @property
    def slow_threshold_s(self) -> float:
        return self.config.slow_s if self.config.slow_s is not None else self._slow.value

    def ratio(self) -> float:
        """The fraction of ordinary requests kept now."""
        budget = self.config.budget_spans_per_s
        if budget is None:
            return 1.0
        now = self._clock()
        room = budget - self._forced.rate(now)
        if room <= 0:
            return 0.0
        rest = self._rest.rate(now)
        return 1.0 if rest <= room else room / rest

    def decide(self, trace_id: int, spans: int, duration_s: float, error: bool) -> Decision:
        """The decision for a root request of ``spans`` spans that took ``duration_s``."""
        threshold = self.slow_threshold_s
        if not error:
            self._slow.add(duration_s)
        if self.config.budget_spans_per_s is None:
            return Decision(True, 1.0, REASON_ERROR if error else REASON_RATIO)
        now = self._clock()
        if error or duration_s >= threshold:
            self._forced.add(spans, now)
            return Decision(True, 1.0, REASON_ERROR if error else REASON_SLOW)
        p = self.ratio()
        self._rest.add(spans, now)
        if (trace_id & _RANDOM_MASK) < p * (1 << _RANDOM_BITS):
            return Decision(True, p, REASON_RATIO)
        self.sampled_out += 1
        return Decision(False, p, REASON_RATIO)
