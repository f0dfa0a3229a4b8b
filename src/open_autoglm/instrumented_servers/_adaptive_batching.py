"""Adaptive batching: the seed's feedback loop from measured step latency to the batch cap.

A continuous-batching scheduler admits new sequences while the running batch is below a cap.
A bigger batch gives more tokens per second but a slower step, so every running sequence gets
its tokens more slowly: time per output token (TPOT) grows with the batch. With a TPOT target,
:class:`BatchCapController` looks for the largest cap that still meets it, from what the
engine measures, with no model of the engine:

* **Measure.** The scheduler reports every step that gave a token to the sequences already
  running: the time since their previous token (so prefill steps that stall them count) and
  the batch size. Steps with a batch above the cap are ignored: after a decrease the batch
  drains as sequences finish, and those steps say nothing about the new cap.
* **Smooth.** Every ``window_steps`` such steps, the token-weighted mean TPOT of the window
  decides once, then the window starts afresh.
* **Multiplicative decrease.** Over the target in two windows in a row (or by more than
  ``over_tolerance`` in one, a real overload; one window with a stall is not enough): the cap
  becomes ``floor(batch × max(max_decrease, target / measured))`` (the smaller of the two
  means), at least one less than the batch that was measured. TPOT grows with the batch and
  has a fixed part, so this proportional step lands at or above the best cap; the next
  windows take what is left.
* **Additive increase.** At or under the target *and* the batch filled the cap (a cap the
  load does not reach proves nothing): the cap grows by one.
* **Hysteresis.** A batch size that missed the target becomes a ceiling: the cap stays below
  it, and only after ``probe_hold_windows`` good windows at the cap below does it try the
  ceiling again (a probe). A probe that fails doubles the wait, up to
  ``probe_hold_max_windows``; one that meets the target in two windows in a row lifts the
  ceiling (the load got lighter) and halves the wait.
  Once converged, the cap sits at the best value and visits the next one only on rare probes.

The cap stays within ``[1, max_batch_size]``. The controller is pure logic (no clock, no
I/O): the schedulers feed it and read :attr:`BatchCapController.cap`; unit tests feed it
synthetic step times.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AdaptiveBatchingConfig:
    """Settings of :class:`BatchCapController`; ``target_tpot_ms`` comes from ``--target-tpot``."""

    target_tpot_ms: float
    #: Steps (at or below the cap) averaged into one decision.
    window_steps: int = 8
    #: The smallest factor one decrease multiplies the cap by.
    max_decrease: float = 0.5
    #: A window this much over the target (a fraction) decreases the cap at once; a smaller
    #: excess must last two windows (one window with a stall or a noisy step does not count).
    over_tolerance: float = 0.25
    #: Good windows just below a ceiling before the ceiling is tried again.
    probe_hold_windows: int = 4
    #: The longest wait between probes of a ceiling that keeps failing.
    probe_hold_max_windows: int = 32

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target_tpot_ms) and self.target_tpot_ms > 0):
            raise ValueError(
                f"--target-tpot must be a positive number of ms, got {self.target_tpot_ms}"
            )
        if self.window_steps < 1:
            raise ValueError("adaptive batching window_steps must be at least 1")
        if not 0.0 < self.max_decrease < 1.0:
            raise ValueError("adaptive batching max_decrease must be between 0 and 1")
        if not 0.0 <= self.over_tolerance < 1.0:
            raise ValueError("adaptive batching over_tolerance must be between 0 and 1")
        if not 1 <= self.probe_hold_windows <= self.probe_hold_max_windows:
            raise ValueError(
                "adaptive batching needs 1 <= probe_hold_windows <= probe_hold_max_windows"
            )


class BatchCapController:
    """Adjusts a batch cap from measured time per output token against a target.

    Starts at ``max_batch_size`` (where a server without the controller runs) and moves by
    the rules in the module docstring. Not thread-safe: one scheduler feeds it.
    """

    def __init__(self, config: AdaptiveBatchingConfig, max_batch_size: int) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.config = config
        self.max_batch_size = max_batch_size
        self._target_s = config.target_tpot_ms / 1000.0
        self._cap = max_batch_size
        # the current window
        self._steps = 0
        self._full_steps = 0
        self._tokens = 0
        self._weighted_s = 0.0
        self._largest = 0
        # hysteresis
        self._ceiling: int | None = None
        self._hold = 0
        self._hold_len = config.probe_hold_windows
        self._since_increase = 0  # windows decided since the cap last grew
        self._over = 0  # consecutive windows over the target
        self._over_mean = 0.0  # the smallest mean TPOT among them
        self._good = 0  # consecutive windows at the cap, filled, within the target
        #: Windows decided so far, and the mean TPOT (seconds) of the latest one.
        self.decisions = 0
        self.last_window_tpot_s: float | None = None

    @property
    def cap(self) -> int:
        """The most sequences the scheduler may run together now."""
        return self._cap

    @property
    def target_tpot_s(self) -> float:
        return self._target_s

    @property
    def ceiling(self) -> int | None:
        """The smallest batch size known to miss the target, if any (kept until probed)."""
        return self._ceiling

    def observe(self, tpot_s: float, batch_size: int) -> None:
        """One engine step: ``batch_size`` running sequences got a token ``tpot_s`` seconds
        after their previous one."""
        if batch_size < 1 or batch_size > self._cap or not math.isfinite(tpot_s) or tpot_s < 0:
            return
        self._steps += 1
        self._full_steps += batch_size == self._cap
        self._tokens += batch_size
        self._weighted_s += tpot_s * batch_size
        self._largest = max(self._largest, batch_size)
        if self._steps >= self.config.window_steps:
            self._decide()

    def _decide(self) -> None:
        before = self._cap
        self._judge()
        if self._cap != before:
            _log.info(
                "batch cap %d -> %d (window TPOT %.1f ms, target %.1f ms, ceiling %s)",
                before, self._cap, (self.last_window_tpot_s or 0.0) * 1e3,
                self.config.target_tpot_ms, self._ceiling,
            )  # fmt: skip

    def _judge(self) -> None:
        mean = self._weighted_s / self._tokens
        largest = self._largest
        cap_limited = 2 * self._full_steps >= self._steps
        self._steps = self._full_steps = self._tokens = self._largest = 0
        self._weighted_s = 0.0
        self.decisions += 1
        self._since_increase += 1
        self.last_window_tpot_s = mean
        if mean > self._target_s:
            self._good = 0
            self._over_mean = min(self._over_mean, mean) if self._over else mean
            self._over += 1
            if self._over >= 2 or mean > self._target_s * (1.0 + self.config.over_tolerance):
                self._over = 0
                self._decrease(self._over_mean, largest)
            return
        self._over = 0
        if cap_limited:
            self._good += 1
            self._increase()
        else:
            self._good = 0

    def _decrease(self, mean: float, batch: int) -> None:
        cfg = self.config
        if self._since_increase <= 2:  # just after growing: the growth was wrong
            self._hold_len = min(2 * self._hold_len, cfg.probe_hold_max_windows)
            self._hold = self._hold_len
        else:  # the load got heavier, or a noisy window: try again soon
            self._hold = cfg.probe_hold_windows
        self._ceiling = batch if self._ceiling is None else min(self._ceiling, batch)
        self._good = 0
        factor = max(self.config.max_decrease, self._target_s / mean)
        self._cap = max(1, min(batch - 1, math.floor(batch * factor)))

    def _increase(self) -> None:
        if self._cap >= self.max_batch_size:
            return
        if self._ceiling is not None and self._cap >= self._ceiling:
            if self._good < 2:  # a probe must meet the target twice in a row
                return
            # the probe met the target: the load got lighter; lift the ceiling, wait less
            self._ceiling = None
            self._hold_len = max(self.config.probe_hold_windows, self._hold_len // 2)
        if self._ceiling is not None and self._cap + 1 >= self._ceiling:
            self._hold -= 1
            if self._hold > 0:
                return
        self._cap += 1
        self._since_increase = self._good = 0
