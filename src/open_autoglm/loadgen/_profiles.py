"""Load profiles: single, concurrency (closed loop), rate (open loop), step and sweep.

A profile expands into :class:`Level` objects, each run in turn; ``sweep`` expands in two
stages because its rate levels depend on what the first two levels measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from open_autoglm.loadgen._arrivals import ARRIVALS, Arrival
from open_autoglm.loadgen._errors import ConfigError

Mode = Literal["concurrency", "rate"]
ProfileKind = Literal["single", "concurrency", "rate", "step", "sweep"]
PROFILES: tuple[ProfileKind, ...] = ("single", "concurrency", "rate", "step", "sweep")


@dataclass(frozen=True, slots=True)
class Level:
    """One stretch of constant load, bounded by a request count and/or a duration."""

    mode: Mode
    value: float  # concurrency for "concurrency", requests per second for "rate"
    requests: int | None = None
    duration_s: float | None = None
    arrival: Arrival = "poisson"
    burstiness: float = 1.0
    max_concurrency: int | None = None  # rate levels: cap on requests in flight
    warmup_s: float = 0.0
    cooldown_s: float = 0.0
    role: str = ""  # "sync" or "throughput" for the first two levels of a sweep

    def __post_init__(self) -> None:
        if self.requests is None and self.duration_s is None:
            raise ConfigError("each level needs --requests and/or --duration")
        if self.requests is not None and self.requests < 1:
            raise ConfigError(f"--requests must be >= 1, got {self.requests}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ConfigError(f"--duration must be > 0, got {self.duration_s}")
        if self.mode == "concurrency":
            if self.value < 1 or self.value != int(self.value):
                raise ConfigError(f"concurrency must be a whole number >= 1, got {self.value:g}")
            if self.cooldown_s and self.duration_s is None:
                raise ConfigError("--cooldown in closed loop needs --duration to know the end")
        elif not (self.value > 0 and math.isfinite(self.value)):
            raise ConfigError(f"request rate must be > 0, got {self.value:g}")
        if self.arrival not in ARRIVALS:
            raise ConfigError(f"unknown arrival process {self.arrival!r}")
        if not self.burstiness > 0:
            raise ConfigError(f"--burstiness must be > 0, got {self.burstiness:g}")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ConfigError(f"--max-concurrency must be >= 1, got {self.max_concurrency}")
        if self.warmup_s < 0 or self.cooldown_s < 0:
            raise ConfigError("--warmup and --cooldown must be >= 0")
        if self.duration_s is not None and self.warmup_s + self.cooldown_s >= self.duration_s:
            raise ConfigError("--warmup plus --cooldown leave nothing of --duration to measure")

    @property
    def concurrency(self) -> int:
        return int(self.value)

    @property
    def label(self) -> str:
        if self.mode == "concurrency":
            return "single" if self.role == "sync" else f"concurrency={int(self.value)}"
        return f"rate={self.value:.4g}/s"


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    """What the user asked for; :meth:`levels` expands it (sweep: :meth:`sweep_rate_levels`)."""

    kind: ProfileKind = "single"
    concurrency: int | None = None
    rate: float | None = None
    arrival: Arrival = "poisson"
    burstiness: float = 1.0
    max_concurrency: int | None = None
    step_levels: tuple[float, ...] = ()
    step_mode: Mode = "concurrency"
    sweep_levels: int = 6
    sweep_concurrency: int = 64
    requests: int | None = None
    duration_s: float | None = None
    warmup_s: float = 0.0
    cooldown_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in PROFILES:
            raise ConfigError(f"unknown profile {self.kind!r}; choose one of {', '.join(PROFILES)}")
        if self.kind == "concurrency" and self.concurrency is None:
            raise ConfigError("the concurrency profile needs --concurrency N")
        if self.kind == "rate" and self.rate is None:
            raise ConfigError("the rate profile needs --rate R")
        if self.kind == "step" and not self.step_levels:
            raise ConfigError("the step profile needs --levels, e.g. --levels 1,2,4,8")
        if self.kind == "sweep":
            if self.sweep_levels < 1:
                raise ConfigError(f"--sweep-levels must be >= 1, got {self.sweep_levels}")
            if self.sweep_concurrency < 2:
                raise ConfigError("--sweep-concurrency must be >= 2")
        # building the levels validates every number in them
        self.levels()

    def _level(self, mode: Mode, value: float, role: str = "") -> Level:
        return Level(
            mode=mode,
            value=value,
            requests=self.requests,
            duration_s=self.duration_s,
            arrival=self.arrival,
            burstiness=self.burstiness,
            max_concurrency=self.max_concurrency if mode == "rate" else None,
            warmup_s=self.warmup_s,
            cooldown_s=self.cooldown_s,
            role=role,
        )

    def levels(self) -> list[Level]:
        """The fixed levels; for ``sweep`` the two measuring levels that come first."""
        if self.kind == "single":
            return [self._level("concurrency", 1, role="sync")]
        if self.kind == "concurrency":
            assert self.concurrency is not None
            return [self._level("concurrency", self.concurrency)]
        if self.kind == "rate":
            assert self.rate is not None
            return [self._level("rate", self.rate)]
        if self.kind == "step":
            return [self._level(self.step_mode, value) for value in self.step_levels]
        return [
            self._level("concurrency", 1, role="sync"),
            self._level("concurrency", self.sweep_concurrency, role="throughput"),
        ]

    def sweep_rate_levels(self, sync_rate: float, max_rate: float) -> list[Level]:
        """``sweep_levels`` open-loop rates spread evenly between the synchronous rate and the
        saturated throughput, both excluded (they were just measured)."""
        if not (sync_rate > 0 and max_rate > 0):
            return []
        low, high = sorted((sync_rate, max_rate))
        rates = np.linspace(low, high, self.sweep_levels + 2)[1:-1]
        return [self._level("rate", float(rate)) for rate in rates]
