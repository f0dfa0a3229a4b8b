"""``sim``: a labelled simulator of a continuous-batching engine, for tests and demos.

It is not a measurement of any real engine. It tokenizes honestly (:class:`SimpleTokenizer`),
runs in the shared continuous-batching shell (``instrumented_servers._batching``: a waiting
queue, a running batch of at most ``max_batch_size`` sequences), and spends
simulated time per engine step::

    step = decode_base + decode_per_seq * batch + prefill_per_token * new_prompt_tokens

so above its capacity the queue grows and so does queue time. All costs may be zero (the
load-generator benchmarks use that). With ``--target-tpot`` the batch cap adapts to the
measured step time (``instrumented_servers._adaptive_batching``); with no prefill cost it
should settle at the largest ``cap`` with ``decode_base + decode_per_seq * cap <= target``.
Fault knobs: ``error_rate`` fails a request at a random token, ``stall_rate``/``stall_ms``
pause a whole step (a GC pause, a slow kernel). ``prepare_mb`` stands in for a model's
preparation: at start it allocates that many MiB, touches every page, and frees them, as a
GGUF-to-ONNX conversion does inside the onnxruntime server (a test of peak-memory reporting;
nothing is prepared).

Log probabilities are those of the simulator's own sampler: every output token is one word of
``_WORDS`` drawn uniformly, so each has logprob ``-ln(len(_WORDS))``; the alternatives are the
words after it in the list. They describe the simulator, not any language model.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Final

from open_autoglm.instrumented_servers._adaptive_batching import AdaptiveBatchingConfig
from open_autoglm.instrumented_servers._backend import (
    ChatMessage,
    EngineError,
    FinishReason,
    GenerationRequest,
    ImageInput,
    StageTimes,
    TokenLogprob,
)
from open_autoglm.instrumented_servers._batching import (
    BatchSequence,
    ContinuousBatchingBackend,
    Output,
    Prompt,
    StepResult,
    Token,
)
from open_autoglm.instrumented_servers.backends import BackendOptions
from open_autoglm.instrumented_servers.backends.sim._tokenizer import SimpleTokenizer

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
    prepare_mb: float = 0.0  # a simulated model preparation: MiB allocated and freed at start
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_queue", "max_model_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"sim option {name} must be at least 1")
        for name in ("prefill_ms_per_token", "decode_base_ms", "decode_per_seq_ms", "stall_ms",
                     "prepare_mb"):  # fmt: skip
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


@dataclass(eq=False, slots=True, kw_only=True)
class _SimSequence(BatchSequence):
    rng: random.Random
    target_tokens: int
    finish_reason: FinishReason
    fail_at: int | None


def image_tokens(image: ImageInput) -> int:
    """Tokens an image costs: one per 28×28 patch, as in common vision encoders."""
    if image.width is None or image.height is None:
        return _IMAGE_TOKENS_UNKNOWN_SIZE
    return math.ceil(image.width / _IMAGE_PATCH) * math.ceil(image.height / _IMAGE_PATCH)


class SimBackend(ContinuousBatchingBackend[_SimSequence]):
    """The simulator in the shared continuous-batching shell: one step prefills the admitted
    sequences and decodes the running ones together, in simulated time."""

    name = "sim"
    simulated = True
    accepts_images = True  # counts one token per 28x28 patch
    supports_logprobs = True
    accepts_token_ids = True
    vocab_size = SimpleTokenizer.vocab_size

    def __init__(
        self, model_name: str, config: SimConfig, adaptive: AdaptiveBatchingConfig | None = None
    ) -> None:
        super().__init__(
            model_name,
            config.max_model_len,
            max_batch_size=config.max_batch_size,
            max_queue=config.max_queue,
            seed=config.seed,
            adaptive=adaptive,
        )
        self.config = config
        self.tokenizer = SimpleTokenizer()
        self._fault_rng = random.Random(config.seed)

    async def start(self) -> None:
        if self.config.prepare_mb > 0:
            _simulate_preparation(int(self.config.prepare_mb * 2**20))
        await super().start()

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

    # ------------------------------------------------------------------ engine
    def tokenize(self, request: GenerationRequest) -> Prompt:
        ids = request.prompt_token_ids
        tokens = len(ids) if ids is not None else self.tokenizer.count(request.prompt)
        return Prompt(tokens + sum(image_tokens(image) for image in request.images))

    def new_sequence(
        self, request: GenerationRequest, stages: StageTimes, prompt: Prompt, seed: int
    ) -> _SimSequence:
        rng = random.Random(seed)
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
        return _SimSequence(
            request=request,
            stages=stages,
            rng=rng,
            target_tokens=target,
            finish_reason=reason,
            fail_at=fail_at,
        )

    async def step(
        self, running: Sequence[_SimSequence], new: Sequence[_SimSequence]
    ) -> StepResult[_SimSequence]:
        cfg = self.config
        batch = len(running) + len(new)
        cost_ms = cfg.prefill_ms_per_token * sum(s.stages.prompt_tokens for s in new)
        if batch:
            cost_ms += cfg.decode_base_ms + cfg.decode_per_seq_ms * batch
        if cfg.stall_rate and self._fault_rng.random() < cfg.stall_rate:
            cost_ms += cfg.stall_ms
        await asyncio.sleep(cost_ms / 1000.0)
        outputs = [(seq, self._next_token(seq)) for seq in (*running, *new) if seq.active]
        return StepResult(outputs, decoded=True)

    @staticmethod
    def _next_token(seq: _SimSequence) -> Output:
        if seq.fail_at is not None and seq.generated >= seq.fail_at:
            return EngineError("simulated engine fault (error_rate)")
        word = seq.rng.choice(_WORDS)
        top = seq.request.sampling.logprobs
        reason = seq.finish_reason if seq.generated + 1 >= seq.target_tokens else None
        return Token(" " + word, reason, None if top is None else _logprob(word, top))


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


def _simulate_preparation(size: int) -> None:
    """Allocate ``size`` bytes, make every page resident, free them (``prepare_mb``)."""
    block = bytearray(size)
    block[::4096] = b"\x01" * len(range(0, size, 4096))
    del block
