"""``sim``: a labelled simulator of a continuous-batching engine, for tests and demos.

It is not a measurement of any real engine. It tokenizes honestly (:class:`SimpleTokenizer`),
keeps a waiting queue and a running batch of at most ``max_batch_size`` sequences, and spends
simulated time per engine step::

    step = decode_base + decode_per_seq * batch + prefill_per_token * new_prompt_tokens

so above its capacity the queue grows and so does queue time. All costs may be zero (the
load-generator benchmarks use that). With ``--target-tpot`` the batch cap adapts to the
measured step time (``instrumented_servers._adaptive_batching``); with no prefill cost it
should settle at the largest ``cap`` with ``decode_base + decode_per_seq * cap <= target``.
Fault knobs: ``error_rate`` fails a request at a random token, ``stall_rate``/``stall_ms``
pause a whole step (a GC pause, a slow kernel).

Log probabilities are those of the simulator's own sampler: every output token is one word of
``_WORDS`` drawn uniformly, so each has logprob ``-ln(len(_WORDS))``; the alternatives are the
words after it in the list. They describe the simulator, not any language model.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections import deque
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from time import perf_counter_ns
from typing import Final

from open_autoglm.instrumented_servers._adaptive_batching import (
    AdaptiveBatchingConfig,
    BatchCapController,
)
from open_autoglm.instrumented_servers._backend import (
    Accepted,
    Backend,
    BackendLoad,
    ChatMessage,
    ContextLengthError,
    EngineError,
    Finished,
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    ImageInput,
    QueueFullError,
    StageTimes,
    TokenDelta,
    TokenLogprob,
)
from open_autoglm.instrumented_servers.backends import BackendOptions
from open_autoglm.instrumented_servers.backends._simple_tokenizer import SimpleTokenizer

DEFAULT_MODEL: Final = "sim-llm"
_WORDS: Final = (
    "the of and to in is that for it as with was on be by at this are from or an "
    "have not they which one you were all we when there can more been has if will "
    "their time would into so some her what up out about other than then them these "
    "two may first like its model token batch queue latency trace span decode "
    "prefill cache server request"
).split()
_WORD_LOGPROB: Final = -math.log(len(_WORDS))  # the sampler draws each word uniformly
_IMAGE_PATCH: Final = 28
_IMAGE_TOKENS_UNKNOWN_SIZE: Final = 256


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Cost model and limits. Times in milliseconds, as given by ``--backend-option``."""

    max_batch_size: int = 16
    max_queue: int = 1024
    max_model_len: int = 4096
    prefill_ms_per_token: float = 1.5
    decode_base_ms: float = 10.0
    decode_per_seq_ms: float = 2.5
    natural_len_mean: float = 128.0
    error_rate: float = 0.0
    stall_rate: float = 0.0
    stall_ms: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_queue", "max_model_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"sim option {name} must be at least 1")
        for name in ("prefill_ms_per_token", "decode_base_ms", "decode_per_seq_ms", "stall_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"sim option {name} must not be negative")
        for name in ("error_rate", "stall_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"sim option {name} must be between 0 and 1")
        if self.natural_len_mean <= 0:
            raise ValueError("sim option natural_len_mean must be positive")

    @classmethod
    def from_options(cls, options: BackendOptions) -> SimConfig:
        """Build from the common options plus ``extra`` (``cost=zero`` zeroes every cost)."""
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, float | int] = {}
        extra: Mapping[str, str] = options.extra
        for key, raw in extra.items():
            if key == "cost":
                if raw != "zero":
                    raise ValueError("sim option cost accepts only 'zero'")
                values.update(prefill_ms_per_token=0.0, decode_base_ms=0.0, decode_per_seq_ms=0.0)
                continue
            if key not in known:
                raise ValueError(
                    f"unknown sim option {key!r}; known: cost, {', '.join(sorted(known))}"
                )
            try:
                values[key] = int(raw) if known[key] == "int" else float(raw)
            except ValueError:
                raise ValueError(f"sim option {key} must be a number, got {raw!r}") from None
        for key in ("max_batch_size", "max_queue", "max_model_len"):
            given = getattr(options, key)
            if given is not None:
                values[key] = given
        values.setdefault("seed", options.seed)
        return cls(**values)  # type: ignore[arg-type]  # keys checked against fields above


@dataclass(eq=False, slots=True)
class _Sequence:
    request: GenerationRequest
    stages: StageTimes
    rng: random.Random
    target_tokens: int
    finish_reason: FinishReason
    fail_at: int | None
    out: asyncio.Queue[TokenDelta | Finished | EngineError] = field(default_factory=asyncio.Queue)
    generated: int = 0
    cancelled: bool = False


def image_tokens(image: ImageInput) -> int:
    """Tokens an image costs: one per 28×28 patch, as in common vision encoders."""
    if image.width is None or image.height is None:
        return _IMAGE_TOKENS_UNKNOWN_SIZE
    return math.ceil(image.width / _IMAGE_PATCH) * math.ceil(image.height / _IMAGE_PATCH)


class SimBackend(Backend):
    name = "sim"
    simulated = True
    accepts_images = True  # counts one token per 28x28 patch
    adaptive_batching = True
    supports_logprobs = True
    accepts_token_ids = True
    vocab_size = SimpleTokenizer.vocab_size

    def __init__(
        self, model_name: str, config: SimConfig, adaptive: AdaptiveBatchingConfig | None = None
    ) -> None:
        super().__init__(model_name, config.max_model_len)
        self.config = config
        #: Adapts the batch cap to a TPOT target (``--target-tpot``); None: the cap is fixed.
        self.cap_controller = (
            None if adaptive is None else BatchCapController(adaptive, config.max_batch_size)
        )
        self._step_end_ns = 0
        self.tokenizer = SimpleTokenizer()
        self._waiting: deque[_Sequence] = deque()
        self._running: list[_Sequence] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._fault_rng = random.Random(config.seed)
        self._counter = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._schedule_loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for seq in [*self._running, *self._waiting]:
            seq.out.put_nowait(EngineError("server shutting down"))
        self._running.clear()
        self._waiting.clear()

    # ------------------------------------------------------------------ interface
    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        parts = []
        for message in messages:
            images = "<image>" * len(message.images)
            parts.append(f"<|{message.role}|>\n{images}{message.text}\n")
        parts.append("<|assistant|>\n")
        return "".join(parts)

    def count_tokens(self, text: str) -> int:
        return self.tokenizer.count(text)

    def load(self) -> BackendLoad:
        controller = self.cap_controller
        return BackendLoad(
            queue_depth=len(self._waiting),
            running=len(self._running),
            batch_cap=None if controller is None else controller.cap,
        )

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        if self._task is None:
            raise EngineError("sim backend is not started")
        stages = StageTimes()
        stages.tokenize_start_ns = perf_counter_ns()
        ids = request.prompt_token_ids
        prompt_tokens = len(ids) if ids is not None else self.tokenizer.count(request.prompt)
        prompt_tokens += sum(image_tokens(image) for image in request.images)
        stages.tokenize_end_ns = perf_counter_ns()
        stages.prompt_tokens = prompt_tokens
        sampling = request.sampling
        if prompt_tokens + sampling.max_tokens > self.max_model_len:
            raise ContextLengthError(prompt_tokens, sampling.max_tokens, self.max_model_len)
        if len(self._waiting) >= self.config.max_queue:
            raise QueueFullError(
                f"the waiting queue is full ({self.config.max_queue} requests); retry later"
            )
        seq = self._new_sequence(request, stages)
        stages.queue_depth_at_enqueue = len(self._waiting)
        stages.enqueued_ns = perf_counter_ns()
        self._waiting.append(seq)
        self._wake.set()
        try:
            yield Accepted(prompt_tokens=prompt_tokens, stages=stages)
            while True:
                item = await seq.out.get()
                if isinstance(item, EngineError):
                    raise item
                yield item
                if isinstance(item, Finished):
                    return
        finally:
            seq.cancelled = True

    # ------------------------------------------------------------------ scheduler
    def _new_sequence(self, request: GenerationRequest, stages: StageTimes) -> _Sequence:
        self._counter += 1
        seed = request.sampling.seed
        rng = random.Random(seed if seed is not None else (self.config.seed << 32) + self._counter)
        max_tokens = request.sampling.max_tokens
        target = max_tokens
        reason: FinishReason = "length"
        if not request.sampling.ignore_eos:
            natural = 1 + int(rng.expovariate(1.0 / self.config.natural_len_mean))
            if natural < max_tokens:
                target, reason = natural, "stop"
        fail_at = None
        if self.config.error_rate and self._fault_rng.random() < self.config.error_rate:
            fail_at = self._fault_rng.randrange(target)
        return _Sequence(request, stages, rng, target, reason, fail_at)

    async def _schedule_loop(self) -> None:
        cfg = self.config
        while True:
            if not self._running and not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            controller = self.cap_controller
            cap = cfg.max_batch_size if controller is None else controller.cap
            new: list[_Sequence] = []
            while self._waiting and len(self._running) + len(new) < cap:
                seq = self._waiting.popleft()
                if not seq.cancelled:
                    seq.stages.scheduled_ns = perf_counter_ns()
                    if controller is not None:
                        seq.stages.batch_cap = cap
                    new.append(seq)
            batch = len(self._running) + len(new)
            cost_ms = cfg.prefill_ms_per_token * sum(s.stages.prompt_tokens for s in new)
            if batch:
                cost_ms += cfg.decode_base_ms + cfg.decode_per_seq_ms * batch
            if cfg.stall_rate and self._fault_rng.random() < cfg.stall_rate:
                cost_ms += cfg.stall_ms
            await asyncio.sleep(cost_ms / 1000.0)
            now = perf_counter_ns()
            if controller is not None and self._running:
                # the running sequences' previous token came at the end of the previous step
                controller.observe((now - self._step_end_ns) / 1e9, batch)
            self._step_end_ns = now
            for seq in self._running:
                seq.stages.decode_steps += 1
                seq.stages.batch_size_sum += batch
                self._emit(seq, now)
            for seq in new:
                seq.stages.prefill_batch_size = len(new)
                seq.stages.first_token_ns = now
                self._emit(seq, now)
            self._running.extend(new)
            self._running = [s for s in self._running if not s.cancelled]

    def _emit(self, seq: _Sequence, now: int) -> None:
        if seq.cancelled:
            return
        if seq.fail_at is not None and seq.generated >= seq.fail_at:
            seq.cancelled = True
            seq.out.put_nowait(EngineError("simulated engine fault (error_rate)"))
            return
        seq.generated += 1
        word = seq.rng.choice(_WORDS)
        top = seq.request.sampling.logprobs
        if top is None:
            seq.out.put_nowait(TokenDelta(" " + word))
        else:
            seq.out.put_nowait(TokenDelta(" " + word, 1, (_logprob(word, top),)))
        if seq.generated >= seq.target_tokens:
            seq.cancelled = True  # leaves the batch; the consumer still drains its queue
            seq.stages.finished_ns = now
            seq.stages.output_tokens = seq.generated
            seq.out.put_nowait(Finished(seq.finish_reason, seq.stages))


def _logprob(word: str, top: int) -> TokenLogprob:
    start = _WORDS.index(word)
    alternatives = [_WORDS[(start + i) % len(_WORDS)] for i in range(top)]
    return TokenLogprob(
        " " + word, _WORD_LOGPROB, tuple((" " + w, _WORD_LOGPROB) for w in alternatives)
    )


def build(options: BackendOptions) -> SimBackend:
    target = options.target_tpot_ms
    return SimBackend(
        options.served_model_name or options.model or DEFAULT_MODEL,
        SimConfig.from_options(options),
        None if target is None else AdaptiveBatchingConfig(target),
    )
