"""The tail sampler's decisions on crafted request sequences (a fake clock, no sockets)."""

from __future__ import annotations

import random

import pytest

from open_autoglm.telemetry import SamplingConfig, TailSampler


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(
    sampler: TailSampler,
    clock: Clock,
    rate: float,
    seconds: float,
    rng: random.Random,
    spans: int = 5,
    duration_s: float = 0.01,
) -> tuple[int, int]:
    """``rate`` ordinary requests/s for ``seconds``: (requests, kept)."""
    kept = total = 0
    end = clock.now + seconds
    while clock.now < end:
        clock.now += 1 / rate
        total += 1
        kept += sampler.decide(rng.getrandbits(128), spans, duration_s, error=False).keep
    return total, kept


def test_without_a_budget_every_request_is_kept() -> None:
    sampler = TailSampler(SamplingConfig())
    rng = random.Random(1)
    decisions = [sampler.decide(rng.getrandbits(128), 5, 0.01, False) for _ in range(1000)]
    assert all(d.keep and d.ratio == 1.0 for d in decisions)
    assert sampler.sampled_out == 0


def test_kept_spans_follow_the_budget_as_load_steps_up_and_down() -> None:
    clock, rng = Clock(), random.Random(2)
    sampler = TailSampler(SamplingConfig(budget_spans_per_s=1000, slow_s=10.0), clock)
    total_low, kept_low = _run(sampler, clock, rate=100, seconds=5, rng=rng)  # 500 spans/s
    assert kept_low == total_low  # under the budget: all kept
    _run(sampler, clock, rate=2000, seconds=3, rng=rng)  # settle at 10,000 spans/s offered
    _, kept = _run(sampler, clock, rate=2000, seconds=10, rng=rng)
    assert kept * 5 / 10 == pytest.approx(1000, rel=0.1)  # exported spans/s at the budget
    assert sampler.ratio() == pytest.approx(0.1, rel=0.15)
    _run(sampler, clock, rate=100, seconds=5, rng=rng)  # load falls: the ratio comes back
    assert sampler.ratio() == 1.0


def test_errors_and_slow_requests_are_always_kept() -> None:
    clock, rng = Clock(), random.Random(3)
    sampler = TailSampler(SamplingConfig(budget_spans_per_s=50, slow_s=0.5), clock)
    _run(sampler, clock, rate=1000, seconds=3, rng=rng)  # ratio driven near 1 %
    assert sampler.ratio() < 0.05
    for _ in range(200):
        clock.now += 0.001
        error = sampler.decide(rng.getrandbits(128), 5, 0.01, error=True)
        slow = sampler.decide(rng.getrandbits(128), 5, 0.6, error=False)
        assert (error.keep, error.ratio, error.reason) == (True, 1.0, "error")
        assert (slow.keep, slow.ratio, slow.reason) == (True, 1.0, "slow")


def test_forced_requests_use_up_the_budget_first() -> None:
    clock, rng = Clock(), random.Random(4)
    sampler = TailSampler(SamplingConfig(budget_spans_per_s=500, slow_s=10.0), clock)
    for _ in range(3000):  # 1000 errors/s of 1 span = 1000 spans/s, over the budget alone
        clock.now += 0.001
        sampler.decide(rng.getrandbits(128), 1, 0.01, error=True)
    decision = sampler.decide(rng.getrandbits(128), 5, 0.01, error=False)
    assert decision.ratio == 0.0
    assert not decision.keep


def test_running_p95_marks_the_slowest_twentieth_as_slow() -> None:
    clock, rng = Clock(), random.Random(5)
    sampler = TailSampler(SamplingConfig(budget_spans_per_s=10), clock)
    for i in range(2000):
        clock.now += 0.001
        sampler.decide(rng.getrandbits(128), 5, 0.010 + (0.1 if i % 20 == 0 else 0.0), False)
    assert 0.010 <= sampler.slow_threshold_s <= 0.110
    slow = sampler.decide(rng.getrandbits(128), 5, 0.2, False)
    assert slow.reason == "slow"
    assert slow.keep


def test_the_draw_is_consistent_for_a_trace_id() -> None:
    clock = Clock()
    config = SamplingConfig(budget_spans_per_s=100, slow_s=10.0)
    a, b = TailSampler(config, clock), TailSampler(config, clock)
    rng = random.Random(6)
    ids = [rng.getrandbits(128) for _ in range(5000)]
    for trace_id in ids:
        clock.now += 0.001
        assert a.decide(trace_id, 5, 0.01, False).keep == b.decide(trace_id, 5, 0.01, False).keep


@pytest.mark.parametrize(
    "kwargs", [{"budget_spans_per_s": 0}, {"slow_s": -1.0}, {"slow_quantile": 1.0}]
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        SamplingConfig(**kwargs)  # type: ignore[arg-type]


def test_a_latency_ramp_does_not_make_every_request_slow() -> None:
    clock, rng = Clock(), random.Random(8)
    sampler = TailSampler(SamplingConfig(budget_spans_per_s=1e9), clock)
    slow = 0
    for i in range(5000):  # durations climb 10x over the run, with 20 % noise
        clock.now += 0.001
        duration = 0.01 * (1 + 9 * i / 5000) * rng.uniform(0.9, 1.1)
        slow += sampler.decide(rng.getrandbits(128), 5, duration, False).reason == "slow"
    assert 0.02 < slow / 5000 < 0.10  # about the 5 % a p95 means, not most of them
