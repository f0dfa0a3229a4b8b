"""The continuous-batching shell with a small engine of its own: what a new batching backend
gets for free (queue, admission, stage stamps, cancellation, failures)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from open_autoglm.instrumented_servers import (
    Accepted,
    ChatMessage,
    ContextLengthError,
    EngineError,
    Finished,
    GenerationRequest,
    QueueFullError,
    SamplingParams,
    StageTimes,
    TokenDelta,
)
from open_autoglm.instrumented_servers._batching import (
    BatchSequence,
    ContinuousBatchingBackend,
    Prompt,
    StepResult,
    Token,
)


@dataclass(eq=False, slots=True, kw_only=True)
class _Seq(BatchSequence):
    size: int


class CountingEngine(ContinuousBatchingBackend[_Seq]):
    """Prefills on its own steps, then decodes ``tokN`` tokens; one word = one token.

    ``budget`` caps the summed prompt sizes in the batch; ``fail_on_step`` raises there.
    """

    name = "counting"

    def __init__(self, max_batch_size: int = 2, max_queue: int = 8, budget: int = 10**6) -> None:
        super().__init__(
            "counting-llm", 64, max_batch_size=max_batch_size, max_queue=max_queue, seed=0
        )
        self.budget = budget
        self.steps: list[tuple[int, int]] = []  # (running, new) per step
        self.evicted: list[list[int]] = []
        self.fail_on_step: int | None = None
        self.gate = asyncio.Event()
        self.gate.set()

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        return " ".join(m.text for m in messages)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def tokenize(self, request: GenerationRequest) -> Prompt:
        return Prompt(len(request.prompt.split()))

    def new_sequence(
        self, request: GenerationRequest, stages: StageTimes, prompt: Prompt, seed: int
    ) -> _Seq:
        return _Seq(request=request, stages=stages, size=prompt.tokens)

    def fits(self, running: Sequence[_Seq], admitted: Sequence[_Seq], candidate: _Seq) -> bool:
        return sum(s.size for s in (*running, *admitted, candidate)) <= self.budget

    def evict(self, keep: Sequence[int]) -> None:
        self.evicted.append(list(keep))

    async def step(self, running: Sequence[_Seq], new: Sequence[_Seq]) -> StepResult[_Seq]:
        await self.gate.wait()
        self.steps.append((len(running), len(new)))
        if self.fail_on_step == len(self.steps):
            raise RuntimeError("kernel fault")
        rows = new or running
        outputs = []
        for seq in rows:
            if seq.active:
                n = seq.generated + 1
                done = n >= seq.request.sampling.max_tokens
                outputs.append((seq, Token(f" tok{n}", "length" if done else None)))
        return StepResult(outputs, decoded=not new)


def _request(i: int, words: int = 2, max_tokens: int = 3) -> GenerationRequest:
    return GenerationRequest(f"r{i}", " ".join(["w"] * words), SamplingParams(max_tokens))


async def _collect(engine: CountingEngine, request: GenerationRequest) -> tuple[str, StageTimes]:
    text, stages = "", None
    async for event in engine.generate(request):
        if isinstance(event, TokenDelta):
            text += event.text
        elif isinstance(event, Finished):
            stages = event.stages
    assert stages is not None
    return text, stages


async def test_admits_under_the_cap_and_stamps_every_stage() -> None:
    engine = CountingEngine(max_batch_size=2)
    await engine.start()
    try:
        results = await asyncio.gather(*(_collect(engine, _request(i)) for i in range(3)))
    finally:
        await engine.stop()
    assert [text for text, _ in results] == [" tok1 tok2 tok3"] * 3
    assert max(r + n for r, n in engine.steps) <= 2  # the cap held on every step
    first, _, third = (stages for _, stages in results)
    assert first.prefill_batch_size == 2
    assert third.prefill_batch_size == 1
    assert third.queue_depth_at_enqueue == 2
    for stages in (first, third):
        assert 0 < stages.tokenize_start_ns <= stages.tokenize_end_ns <= stages.enqueued_ns
        assert stages.enqueued_ns <= stages.scheduled_ns <= stages.first_token_ns
        assert stages.first_token_ns <= stages.finished_ns
        assert stages.prompt_tokens == 2
        assert stages.output_tokens == 3
        assert stages.decode_steps == 2  # the first token came from prefill
    assert first.batch_size_sum == 4  # two decode steps at batch size 2
    assert third.scheduled_ns >= first.finished_ns  # it waited for a slot
    assert engine.load().running == 0
    assert engine.load().queue_depth == 0


async def test_engine_fit_decides_admission_but_a_lone_request_always_runs() -> None:
    engine = CountingEngine(max_batch_size=4, budget=5)
    await engine.start()
    try:
        await asyncio.gather(*(_collect(engine, _request(i, words=3)) for i in range(2)))
        alone = await _collect(engine, _request(9, words=20, max_tokens=1))
    finally:
        await engine.stop()
    assert (0, 2) not in engine.steps  # 3 + 3 words is over the budget of 5
    assert alone[0] == " tok1"


async def test_cancelled_request_leaves_the_batch_and_frees_its_slot() -> None:
    engine = CountingEngine(max_batch_size=1)
    await engine.start()
    try:
        events = engine.generate(_request(0, max_tokens=50))
        assert isinstance(await anext(events), Accepted)
        assert isinstance(await anext(events), TokenDelta)
        await events.aclose()  # the client went away
        text, _ = await asyncio.wait_for(_collect(engine, _request(1)), timeout=5)
    finally:
        await engine.stop()
    assert text == " tok1 tok2 tok3"
    assert engine.evicted == [[], []]  # the cancelled row left its batch, then the finished one


async def test_a_failing_step_fails_only_its_requests() -> None:
    engine = CountingEngine(max_batch_size=1)
    engine.fail_on_step = 2  # the first decode step of the first request
    await engine.start()
    try:
        with pytest.raises(EngineError, match="counting failed: RuntimeError"):
            await _collect(engine, _request(0))
        text, _ = await _collect(engine, _request(1))
    finally:
        await engine.stop()
    assert text == " tok1 tok2 tok3"


async def test_queue_and_context_limits_answer_before_accepting() -> None:
    engine = CountingEngine(max_batch_size=1, max_queue=1)
    await engine.start()
    engine.gate.clear()  # hold the engine: requests stay where they are
    try:
        running = engine.generate(_request(0))
        assert isinstance(await anext(running), Accepted)
        await asyncio.sleep(0)  # the scheduler admits it and waits on the gate
        waiting = engine.generate(_request(1))
        assert isinstance(await anext(waiting), Accepted)
        with pytest.raises(QueueFullError, match="queue is full"):
            await anext(engine.generate(_request(2)))
        with pytest.raises(ContextLengthError):
            await anext(engine.generate(_request(3, words=60, max_tokens=10)))
        assert engine.load().queue_depth == 1
        await running.aclose()
        await waiting.aclose()
    finally:
        engine.gate.set()
        await engine.stop()


async def test_not_started_is_an_engine_error() -> None:
    engine = CountingEngine()
    with pytest.raises(EngineError, match="counting backend is not started"):
        await anext(engine.generate(_request(0)))
