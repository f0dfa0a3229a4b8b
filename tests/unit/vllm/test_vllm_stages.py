"""The vllm backend's pure parts, without vLLM: clocks, stamps, outputs, option parsing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from open_autoglm.instrumented_servers._backend import EngineError, StageTimes
from open_autoglm.instrumented_servers.backends.vllm import _compat as compat
from open_autoglm.instrumented_servers.backends.vllm._backend import (
    _apply_stamps,
    _finish_reason,
    _parse_value,
)


@dataclass
class FakeStats:
    """The fields of vLLM's ``RequestStateStats`` the backend reads."""

    queued_ts: float = 0.0
    scheduled_ts: float = 0.0
    first_token_ts: float = 0.0
    last_token_ts: float = 0.0
    num_generation_tokens: int = 0
    num_preemptions: int = 0
    arrival_time: float = 0.0


@dataclass
class FakeCompletion:
    text: str
    token_ids: list[int]
    finish_reason: str | None = None


@dataclass
class FakeOutput:
    outputs: list[FakeCompletion]
    finished: bool = False
    metrics: FakeStats | None = None
    num_cached_tokens: int | None = None
    extra: dict[str, object] = field(default_factory=dict)


def test_engine_monotonic_stamps_land_on_our_perf_counter() -> None:
    before = time.perf_counter_ns()
    converted = compat.monotonic_to_perf_ns(time.monotonic())
    after = time.perf_counter_ns()
    assert before - 1_000_000 <= converted <= after + 1_000_000


def test_stamps_follow_vllms_own_formulas() -> None:
    stats = FakeStats(queued_ts=10.0, scheduled_ts=10.25, first_token_ts=11.0,
                      last_token_ts=12.5, num_generation_tokens=8, num_preemptions=1)  # fmt: skip
    stamps = compat.read_stamps(stats)
    assert stamps is not None
    stages = StageTimes(enqueued_ns=1, first_token_ns=2, finished_ns=3)
    _apply_stamps(stages, stamps)
    assert stages.scheduled_ns - stages.enqueued_ns == 250_000_000  # queue
    assert stages.first_token_ns - stages.scheduled_ns == 750_000_000  # prefill
    assert stages.finished_ns - stages.first_token_ns == 1_500_000_000  # decode
    assert stages.preemptions == 1


def test_stamps_not_yet_reached_keep_ours() -> None:
    stamps = compat.read_stamps(FakeStats(queued_ts=10.0))  # queued, never scheduled
    assert stamps is not None
    stages = StageTimes(enqueued_ns=5, first_token_ns=0)
    _apply_stamps(stages, stamps)
    assert (stages.enqueued_ns, stages.scheduled_ns) == (5, 0)


def test_no_stats_means_no_stamps() -> None:
    assert compat.read_stamps(None) is None
    assert compat.read_stamps(object()) is None


def test_a_delta_output_is_read_as_text_and_token_count() -> None:
    out = compat.read_output(
        FakeOutput([FakeCompletion(" hello there", [17, 42], "length")], finished=True,
                   metrics=FakeStats(queued_ts=1.0, scheduled_ts=2.0), num_cached_tokens=16)
    )  # fmt: skip
    assert (out.text, out.token_count, out.finished, out.finish_reason) == (
        " hello there", 2, True, "length",
    )  # fmt: skip
    assert out.cached_tokens == 16
    assert out.stamps is not None
    assert out.stamps.first_token_ns == 0


def test_finish_reasons_map_to_openais() -> None:
    assert _finish_reason("length") == "length"
    assert _finish_reason("stop") == "stop"
    with pytest.raises(EngineError, match="abort"):
        _finish_reason("abort")


@pytest.mark.parametrize(
    ("raw", "default", "expected"),
    [
        ("true", False, True),
        ("0.5", 0.9, 0.5),
        ("2", 1, 2),
        ("bfloat16", "auto", "bfloat16"),
        ("512", None, 512),
        ("http://127.0.0.1:4317", None, "http://127.0.0.1:4317"),
    ],
)
def test_engine_options_take_the_type_of_vllms_default(
    raw: str, default: object, expected: object
) -> None:
    assert _parse_value("key", raw, default) == expected


def test_a_bad_engine_option_value_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="vllm option tensor_parallel_size must be of type int"):
        _parse_value("tensor_parallel_size", "two", 1)
    with pytest.raises(ValueError, match="must be true or false"):
        _parse_value("enforce_eager", "maybe", False)
