"""The engine-neutral backend interface.

A backend turns a prompt into tokens and stamps the stages it went through; the server, not
the backend, turns those stamps into spans and metrics. Stamps are ``time.perf_counter_ns()``
values; the server converts them to wall-clock time with one anchor per process.

Closing the async generator returned by :meth:`Backend.generate` (``aclose()``, as happens
when the client disconnects) cancels the generation: the backend frees its slot in a
``finally`` block.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from prometheus_client.registry import Collector

from open_autoglm.instrumented_servers._errors import ServerError

FinishReason = Literal["stop", "length"]


class BackendError(ServerError):
    """Base of the errors a backend raises; the server maps each to an HTTP status."""


class QueueFullError(BackendError):
    """The waiting queue is at capacity: the server answers 429 with ``Retry-After``."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ContextLengthError(BackendError):
    """Prompt plus requested output do not fit the model's context: a 400."""

    def __init__(
        self, prompt_tokens: int, max_tokens: int, limit: int, *, at_least: bool = False
    ) -> None:
        """``at_least``: ``prompt_tokens`` counts part of the prompt (a lower bound)."""
        more = "more than " if at_least else ""
        super().__init__(
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{more}{prompt_tokens + max_tokens} tokens ({more}{prompt_tokens} in the prompt, "
            f"{max_tokens} for the completion). Please reduce the prompt or max_tokens."
        )
        self.prompt_tokens = prompt_tokens
        self.limit = limit


class EngineError(BackendError):
    """The engine failed while generating: a 500 before the first byte, an SSE error after."""


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    #: Log probabilities wanted: None for none, else how many alternatives per token (0-20)
    #: beside the sampled token. Only for backends with ``supports_logprobs``.
    logprobs: int | None = None


@dataclass(frozen=True, slots=True)
class ImageInput:
    """One decoded image of a multimodal request (bytes as sent, size where readable)."""

    data: bytes
    mime_type: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str
    text: str
    images: tuple[ImageInput, ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    request_id: str
    prompt: str
    sampling: SamplingParams
    #: The prompt as token ids (``/v1/completions`` with a token-id prompt; ``prompt`` is then
    #: empty). Only for backends with ``accepts_token_ids``; the server checked the range.
    prompt_token_ids: tuple[int, ...] | None = None
    images: tuple[ImageInput, ...] = ()
    #: W3C trace headers of the server span, for engines with tracing of their own (vLLM).
    trace_headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StageTimes:
    """What the backend saw of one request. ``*_ns`` are ``perf_counter_ns()`` stamps."""

    tokenize_start_ns: int = 0
    tokenize_end_ns: int = 0
    enqueued_ns: int = 0
    scheduled_ns: int = 0
    first_token_ns: int = 0
    finished_ns: int = 0
    detokenize_ns: int = 0  # total time spent detokenizing, where the backend measures it
    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    decode_steps: int = 0
    queue_depth_at_enqueue: int = 0
    prefill_batch_size: int = 0
    batch_size_sum: int = 0  # sum over decode steps of the running batch size
    preemptions: int = 0
    batch_cap: int | None = None  # adaptive batching's cap when the request was scheduled

    @property
    def mean_batch_size(self) -> float:
        return self.batch_size_sum / self.decode_steps if self.decode_steps else 0.0


@dataclass(frozen=True, slots=True)
class Accepted:
    """First event: the prompt is tokenized, fits, and is queued.

    ``stages`` is the record the backend keeps filling while it generates; the server reads it
    at the end, also when the generation was cut short (stop sequence, client disconnect).
    """

    prompt_tokens: int
    stages: StageTimes


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One sampled token: its text, its natural-log probability, and the ``top`` most likely
    tokens of that step as (text, logprob), most likely first."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class TokenDelta:
    """New output: ``text`` decodes ``token_count`` tokens (one step, usually one token);
    ``logprobs`` has one entry per token when the request asked for them."""

    text: str
    token_count: int = 1
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class Finished:
    """Last event: why generation stopped, and the stage stamps."""

    finish_reason: FinishReason
    stages: StageTimes


GenerationEvent = Accepted | TokenDelta | Finished


@dataclass(frozen=True, slots=True)
class BackendLoad:
    queue_depth: int
    running: int
    #: The adaptive batch cap now (``--target-tpot``); None where the cap is fixed.
    batch_cap: int | None = None


class Backend(abc.ABC):
    """One inference engine behind the server."""

    #: Short engine name: ``sim``, ``onnxruntime``, ``vllm``, ``tensorrt``.
    name: ClassVar[str]
    #: True for simulators; every span and report says so.
    simulated: ClassVar[bool] = False
    #: True for engines with tracing of their own that want ``GenerationRequest.trace_headers``.
    wants_trace_headers: ClassVar[bool] = False
    #: True for backends that take images (``GenerationRequest.images``); for the others the
    #: server answers a request with images with a 400 instead of dropping the images.
    accepts_images: ClassVar[bool] = False
    #: True for engines whose scheduler honours ``--target-tpot`` (adaptive batching).
    adaptive_batching: ClassVar[bool] = False
    #: True for engines that fill ``TokenDelta.logprobs`` when ``SamplingParams.logprobs`` is
    #: set; for the others a request for log probabilities is a 400.
    supports_logprobs: ClassVar[bool] = False
    #: True for engines that take ``GenerationRequest.prompt_token_ids``; for the others a
    #: token-id prompt is a 400.
    accepts_token_ids: ClassVar[bool] = False
    #: Token ids run from 0 to ``vocab_size - 1`` (checked on token-id prompts); None: unknown.
    vocab_size: int | None = None

    def __init__(self, model_name: str, max_model_len: int) -> None:
        self.model_name = model_name
        self.max_model_len = max_model_len

    async def start(self) -> None:  # noqa: B027  # optional hook, empty by default
        """Load the model, start schedulers. Called once, inside the server's event loop."""

    async def stop(self) -> None:  # noqa: B027  # optional hook, empty by default
        """Stop schedulers and release the engine."""

    @abc.abstractmethod
    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        """Apply the model's chat template and return the prompt text."""

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the model's tokenizer."""

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        """Yield :class:`Accepted`, then :class:`TokenDelta` events, then :class:`Finished`.

        Raises :class:`QueueFullError` or :class:`ContextLengthError` before ``Accepted``,
        :class:`EngineError` at any point.
        """

    @abc.abstractmethod
    def load(self) -> BackendLoad:
        """Queue depth and running batch size now (read by ``/metrics``)."""

    def runtime(self) -> dict[str, str]:
        """Where the engine really runs, e.g. ``{"device": "cuda", "execution_provider":
        "CUDAExecutionProvider"}``: in ``/health``, ``/v1/models``, the span resource and
        reports. Empty when there is nothing to say (the simulator)."""
        return {}

    def metrics_collectors(self) -> Sequence[Collector]:
        """Prometheus collectors of the engine's own metrics (vLLM's ``vllm:*``), to serve on
        ``/metrics`` next to the server's; read at scrape time. None by default."""
        return ()
