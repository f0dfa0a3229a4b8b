"""The simulator: honest token counts, batching, queueing above capacity, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from open_autoglm.instrumented_servers import (
    Accepted,
    BackendOptions,
    ContextLengthError,
    Finished,
    GenerationRequest,
    QueueFullError,
    SamplingParams,
    TokenDelta,
)
from open_autoglm.instrumented_servers.backends.sim._backend import SimBackend, SimConfig
from open_autoglm.instrumented_servers.backends.sim._tokenizer import SimpleTokenizer


def make(**extra: str) -> SimBackend:
    return SimBackend("m", SimConfig.from_options(BackendOptions("sim", extra=extra)))


def request(i: int, max_tokens: int = 4, prompt: str = "a b c d") -> GenerationRequest:
    return GenerationRequest(f"r{i}", prompt, SamplingParams(max_tokens, ignore_eos=True))


async def run(backend: SimBackend, req: GenerationRequest) -> tuple[list[str], Finished]:
    texts: list[str] = []
    async for event in backend.generate(req):
        if isinstance(event, TokenDelta):
            texts.append(event.text)
        elif isinstance(event, Finished):
            return texts, event
    raise AssertionError("no Finished event")


def test_tokenizer_counts_words_and_punctuation() -> None:
    tok = SimpleTokenizer()
    assert tok.pieces("Hello, world!") == ["Hello", ",", " world", "!"]
    assert tok.count("") == 0
    assert len(tok.encode("a b c")) == tok.count("a b c") == 3


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_batch_size", "0"), ("error_rate", "2"), ("decode_base_ms", "-1"), ("bogus", "1"),
     ("decode_base_ms", "fast"), ("cost", "cheap")],
)  # fmt: skip
def test_bad_options_are_refused(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=key):
        SimConfig.from_options(BackendOptions("sim", extra={key: value}))


async def test_stage_stamps_are_ordered() -> None:
    backend = make(cost="zero")
    await backend.start()
    try:
        texts, done = await run(backend, request(0, max_tokens=5))
    finally:
        await backend.stop()
    s = done.stages
    assert len(texts) == 5
    assert s.prompt_tokens == 4
    assert s.tokenize_start_ns <= s.tokenize_end_ns <= s.enqueued_ns <= s.scheduled_ns
    assert s.scheduled_ns <= s.first_token_ns <= s.finished_ns
    assert s.decode_steps == 4
    assert s.output_tokens == 5


async def test_concurrent_requests_share_a_batch() -> None:
    backend = make(cost="zero", decode_base_ms="2")
    await backend.start()
    try:
        results = await asyncio.gather(*(run(backend, request(i, 6)) for i in range(4)))
    finally:
        await backend.stop()
    assert {done.stages.prefill_batch_size for _, done in results} == {4}
    assert all(done.stages.mean_batch_size == 4 for _, done in results)


async def test_queue_time_grows_above_capacity() -> None:
    """Batch of 2, eight requests: later ones wait for earlier ones to finish."""
    backend = make(cost="zero", decode_base_ms="2", max_batch_size="2")
    await backend.start()
    try:
        results = await asyncio.gather(*(run(backend, request(i, 5)) for i in range(8)))
    finally:
        await backend.stop()
    queue_ms = [(d.stages.scheduled_ns - d.stages.enqueued_ns) / 1e6 for _, d in results]
    assert max(queue_ms[:2]) < 2.0
    assert min(queue_ms[6:]) > 20.0  # three full generations of 5 steps × 2 ms ahead of them
    assert max(d.stages.queue_depth_at_enqueue for _, d in results) >= 5


async def test_closing_the_stream_frees_the_slot() -> None:
    backend = make(cost="zero", decode_base_ms="2", max_batch_size="1")
    await backend.start()
    try:
        stream = backend.generate(request(0, max_tokens=1000))
        assert isinstance(await anext(stream), Accepted)
        assert isinstance(await anext(stream), TokenDelta)
        await stream.aclose()
        # the next request gets the only slot without waiting for 1000 tokens
        _, done = await asyncio.wait_for(run(backend, request(1, 3)), timeout=5)
    finally:
        await backend.stop()
    assert done.stages.output_tokens == 3
    assert backend.load().running == 0


async def test_limits_raise_before_anything_is_queued() -> None:
    backend = make(cost="zero", max_model_len="16", max_queue="1")
    await backend.start()
    try:
        with pytest.raises(ContextLengthError):
            await anext(backend.generate(request(0, max_tokens=15)))
        first = backend.generate(request(1, max_tokens=2))
        await anext(first)  # queued
        with pytest.raises(QueueFullError):
            await anext(backend.generate(request(2, max_tokens=2)))
        await first.aclose()
    finally:
        await backend.stop()
