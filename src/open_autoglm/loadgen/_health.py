"""Client health: was the load generator itself the bottleneck?

Three measurements per level: scheduling lag (a request's actual send time minus its
intended one, limiter waits excluded; judged at its median and at its p99), event-loop lag
(how late a 10 ms heartbeat wakes up) and the client process's CPU time. The verdict is stated
plainly in the results.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: A request that goes out later than this (median) means the client could not keep up.
SCHED_LAG_LIMIT_S = 1e-3
#: More than 1 % of requests going out later than this (p99) is a stall that moved a part of
#: the load off its plan (one 200 ms stall in a 3 s level: 7 % of requests sent in a burst),
#: even when the median request left on time.
SCHED_LAG_TAIL_LIMIT_S = 10e-3
#: Event-loop stalls longer than this (p99) distort every latency the client measures.
LOOP_LAG_LIMIT_S = 10e-3
#: Below this share of a core, a lagging loop is waiting for the CPU, not doing client work.
BUSY_CLIENT_CPU = 0.5


class LoopLagMonitor:
    """A heartbeat task on the running loop; each beat records how late it woke up."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.lags_s: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def stop(self) -> list[float]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        return self.lags_s

    def take(self) -> list[float]:
        lags, self.lags_s = self.lags_s, []
        return lags

    async def _beat(self) -> None:
        interval = self.interval_s
        while True:
            due = time.perf_counter() + interval
            await asyncio.sleep(interval)
            self.lags_s.append(max(0.0, time.perf_counter() - due))


class CpuMeter:
    """CPU seconds of this process (all threads) per wall second, between two reads."""

    def __init__(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.perf_counter()

    def read(self) -> float:
        cpu, wall = time.process_time(), time.perf_counter()
        busy = (cpu - self._cpu) / max(wall - self._wall, 1e-9)
        self._cpu, self._wall = cpu, wall
        return busy


@dataclass(frozen=True, slots=True)
class ClientHealth:
    sched_lag_p50_ms: float | None
    sched_lag_p99_ms: float | None
    sched_lag_max_ms: float | None
    loop_lag_p50_ms: float | None
    loop_lag_p99_ms: float | None
    loop_lag_max_ms: float | None
    cpu_cores: float
    client_bound: bool
    statement: str
    machine_busy: bool = False  # the loop lagged while the client was idle: CPU contention


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) * 1e3 if len(values) else None


def assess(sched_lags_s: Sequence[float], loop_lags_s: Sequence[float], cpu: float) -> ClientHealth:
    """Judge one level; the statement names the numbers it is based on."""
    s50, s99 = _pct(sched_lags_s, 50), _pct(sched_lags_s, 99)
    l50, l99 = _pct(loop_lags_s, 50), _pct(loop_lags_s, 99)
    late = s50 is not None and s50 > SCHED_LAG_LIMIT_S * 1e3
    late = late or (s99 is not None and s99 > SCHED_LAG_TAIL_LIMIT_S * 1e3)
    stalled = l99 is not None and l99 > LOOP_LAG_LIMIT_S * 1e3
    # a stalled loop while the client itself is mostly idle means other processes held the
    # CPU: the latencies carry that delay, but the client's own work was not the limit
    # (requests going out late while the client got under half a core is the same story: a
    # client that is its own bottleneck burns a whole core)
    busy_machine = (stalled or late) and cpu < BUSY_CLIENT_CPU
    numbers = (
        f"requests went out {s50 or 0:.2f} ms late (p50, p99 {s99 or 0:.2f} ms), "
        f"the event loop lagged {l99 or 0:.2f} ms (p99), and the client used "
        f"{cpu:.0%} of a CPU core"
    )
    if busy_machine:
        statement = (
            f"The machine was busy, not the client: {numbers}. Other processes held the CPU, "
            f"so latencies may include up to {l99 or 0:.0f} ms of delay on the client's side; "
            "for exact figures run the client on a less busy machine or core."
        )
    elif late or stalled:
        statement = (
            f"The client was the bottleneck at this level: {numbers}. Its latencies include "
            "client delay and the load it offered fell short of the target; run fewer "
            "requests in flight, a lower rate, or the client on a faster or less busy machine."
        )
    else:
        statement = f"The client kept up: {numbers}."
    return ClientHealth(
        sched_lag_p50_ms=s50,
        sched_lag_p99_ms=s99,
        sched_lag_max_ms=max(sched_lags_s) * 1e3 if sched_lags_s else None,
        loop_lag_p50_ms=l50,
        loop_lag_p99_ms=l99,
        loop_lag_max_ms=max(loop_lags_s) * 1e3 if loop_lags_s else None,
        cpu_cores=cpu,
        client_bound=(late or stalled) and not busy_machine,
        statement=statement,
        machine_busy=busy_machine,
    )
