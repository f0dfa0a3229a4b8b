"""The continuous-batching shell that the ``sim`` and ``onnxruntime`` backends share.

One scheduler task owns a waiting queue and a running batch. At every step boundary it drops
the sequences that finished or whose client went away, admits waiting requests in arrival
order while the batch is under its cap (``max_batch_size``, or adaptive batching's cap with
``--target-tpot``) and the engine says they fit, runs one engine step, and stamps every stage
of :class:`~open_autoglm.instrumented_servers.StageTimes` (tokenize, enqueue, schedule, first
token, decode steps and batch sizes, finish). Closing a request's event stream cancels it:
it leaves the queue or the batch at the next step boundary.

An engine subclasses :class:`ContinuousBatchingBackend` and supplies only

* :meth:`~ContinuousBatchingBackend.tokenize` and
  :meth:`~ContinuousBatchingBackend.new_sequence` (its per-request state),
* :meth:`~ContinuousBatchingBackend.fits` ("does one more fit", e.g. a KV-cache budget),
* :meth:`~ContinuousBatchingBackend.step` ("run one step": prefill the admitted sequences
  and/or decode the running ones, and say what each produced),
* optionally :meth:`~ContinuousBatchingBackend.evict` (rows left the batch).

vLLM keeps its own scheduler and does not use this shell.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Generic, TypeVar

from open_autoglm.instrumented_servers._adaptive_batching import (
    AdaptiveBatchingConfig,
    BatchCapController,
)
from open_autoglm.instrumented_servers._backend import (
    Accepted,
    Backend,
    BackendLoad,
    ContextLengthError,
    EngineError,
    Finished,
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    QueueFullError,
    StageTimes,
    TokenDelta,
    TokenLogprob,
)

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prompt:
    """A tokenized prompt: ``tokens`` is what it costs (reported, checked against the
    context), ``ids`` the token ids for engines that run them (empty for ones that count)."""

    tokens: int
    ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Token:
    """What one step produced for one sequence: ``text`` ready to send (empty: held back, as
    a partial UTF-8 character or a possible stop sequence) and, on its last token, why it
    stopped."""

    text: str
    finish_reason: FinishReason | None = None
    #: this token's log probability, when the request asked for them
    logprob: TokenLogprob | None = None


#: What a step gives one sequence: a token, or an error that ends only that sequence.
Output = Token | EngineError


@dataclass(eq=False, slots=True, kw_only=True)
class BatchSequence:
    """One request in the shell; engines subclass it (``kw_only``) to add their state.

    ``generated`` counts the tokens delivered so far: an engine deciding on the token it is
    producing sees ``generated + 1`` as that token's number.
    """

    request: GenerationRequest
    stages: StageTimes
    out: asyncio.Queue[TokenDelta | Finished | EngineError] = field(default_factory=asyncio.Queue)
    generated: int = 0
    pending_tokens: int = 0  # tokens produced whose text is held back
    pending_logprobs: list[TokenLogprob] = field(default_factory=list)  # of those tokens
    cancelled: bool = False  # the consumer went away
    done: bool = False  # finished or failed

    @property
    def active(self) -> bool:
        return not (self.cancelled or self.done)


S = TypeVar("S", bound=BatchSequence)


@dataclass(frozen=True, slots=True)
class StepResult(Generic[S]):
    """One engine step: ``outputs`` for the sequences that got a token (active ones only),
    and ``decoded``: whether the running sequences took part (a decode step, or a step that
    decodes and prefills together) rather than waiting on a prefill of the new ones."""

    outputs: Sequence[tuple[S, Output]]
    decoded: bool


class ContinuousBatchingBackend(Backend, Generic[S]):
    """A backend whose engine runs a continuous batch; see the module docstring."""

    adaptive_batching = True

    def __init__(
        self,
        model_name: str,
        max_model_len: int,
        *,
        max_batch_size: int,
        max_queue: int,
        seed: int,
        adaptive: AdaptiveBatchingConfig | None = None,
    ) -> None:
        super().__init__(model_name, max_model_len)
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.seed = seed
        #: Adapts the batch cap to a TPOT target (``--target-tpot``); None: the cap is fixed.
        self.cap_controller = (
            None if adaptive is None else BatchCapController(adaptive, max_batch_size)
        )
        self._waiting: deque[S] = deque()
        self._running: list[S] = []
        self._last_token_ns = 0  # when the running batch last got a token (0: no batch yet)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._counter = 0

    # ------------------------------------------------------------------ engine hooks
    @abc.abstractmethod
    def tokenize(self, request: GenerationRequest) -> Prompt:
        """The prompt's tokens (the shell times this as the ``tokenize`` stage)."""

    @abc.abstractmethod
    def new_sequence(
        self, request: GenerationRequest, stages: StageTimes, prompt: Prompt, seed: int
    ) -> S:
        """The engine's state for an accepted request; ``seed`` seeds its sampling (the
        request's own seed, else one derived from the server's seed and a counter)."""

    def fits(self, running: Sequence[S], admitted: Sequence[S], candidate: S) -> bool:
        """Whether ``candidate`` fits next to ``running`` and those ``admitted`` this step.
        Asked only when the batch is not empty (a lone request always runs). Default: yes."""
        return True

    @abc.abstractmethod
    async def step(self, running: Sequence[S], new: Sequence[S]) -> StepResult[S]:
        """Run one step: prefill ``new`` (may be empty) and/or decode ``running``.

        Produce an output for every active sequence that got a token. Raising fails the
        sequences of this step: ``new`` when there were any, else the running batch.
        """

    def evict(self, keep: Sequence[int]) -> None:  # optional hook
        """Rows of the running batch left it; ``keep`` are the indices that stay, in order.
        Called only when some row left."""

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._schedule_loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for seq in [*self._running, *self._waiting]:
            seq.out.put_nowait(EngineError("server shutting down"))
        if self._running:
            self.evict([])
        self._running.clear()
        self._waiting.clear()

    # ------------------------------------------------------------------ interface
    def load(self) -> BackendLoad:
        controller = self.cap_controller
        return BackendLoad(
            queue_depth=len(self._waiting),
            running=len(self._running),
            batch_cap=None if controller is None else controller.cap,
        )

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        if self._task is None:
            raise EngineError(f"{self.name} backend is not started")
        stages = StageTimes()
        stages.tokenize_start_ns = perf_counter_ns()
        prompt = self.tokenize(request)
        stages.tokenize_end_ns = perf_counter_ns()
        stages.prompt_tokens = prompt.tokens
        max_tokens = request.sampling.max_tokens
        if prompt.tokens + max_tokens > self.max_model_len:
            raise ContextLengthError(prompt.tokens, max_tokens, self.max_model_len)
        if len(self._waiting) >= self.max_queue:
            raise QueueFullError(
                f"the waiting queue is full ({self.max_queue} requests); retry later"
            )
        self._counter += 1
        seed = request.sampling.seed
        seq = self.new_sequence(
            request, stages, prompt, seed if seed is not None else (self.seed << 32) + self._counter
        )
        stages.queue_depth_at_enqueue = len(self._waiting)
        stages.enqueued_ns = perf_counter_ns()
        self._waiting.append(seq)
        self._wake.set()
        try:
            yield Accepted(prompt_tokens=prompt.tokens, stages=stages)
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
    def _drop_inactive(self) -> None:
        running = self._running
        keep = [i for i, seq in enumerate(running) if seq.active]
        if len(keep) != len(running):
            self._running = [running[i] for i in keep]
            self.evict(keep)

    def _admit(self) -> list[S]:
        """Waiting requests under the batch cap that the engine says fit, in arrival order."""
        new: list[S] = []
        running = self._running
        controller = self.cap_controller
        cap = self.max_batch_size if controller is None else controller.cap
        while self._waiting and len(running) + len(new) < cap:
            seq = self._waiting[0]
            if seq.cancelled:
                self._waiting.popleft()
                continue
            if (running or new) and not self.fits(running, new, seq):
                break
            self._waiting.popleft()
            seq.stages.scheduled_ns = perf_counter_ns()
            if controller is not None:
                seq.stages.batch_cap = cap
            new.append(seq)
        return new

    async def _schedule_loop(self) -> None:
        while True:
            self._drop_inactive()
            if not self._running and not any(not s.cancelled for s in self._waiting):
                self._waiting.clear()
                self._wake.clear()
                await self._wake.wait()
                continue
            running = list(self._running)
            new = self._admit()
            try:
                result = await self.step(running, new)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the engine failed: fail the requests of this step
                _log.exception("%s step failed", self.name)
                for seq in new or running:
                    seq.done = True
                    seq.out.put_nowait(EngineError(f"{self.name} failed: {type(exc).__name__}"))
                continue  # failed new ones never joined the batch; failed running ones leave it
            self._after_step(running, new, result)

    def _after_step(self, running: list[S], new: list[S], result: StepResult[S]) -> None:
        now = perf_counter_ns()
        size = len(running) + len(new)
        if result.decoded:
            for seq in running:
                seq.stages.decode_steps += 1
                seq.stages.batch_size_sum += size
        for seq in new:
            seq.stages.prefill_batch_size = len(new)
            seq.stages.first_token_ns = now
        for seq, output in result.outputs:
            self._deliver(seq, output, now)
        controller = self.cap_controller
        if result.decoded and running:
            if controller is not None and self._last_token_ns:
                # since the batch's previous token: this step and any prefill in between
                controller.observe((now - self._last_token_ns) / 1e9, size)
            self._last_token_ns = now
        elif new and not running:  # a new batch: its clock starts at its first token
            self._last_token_ns = now
        self._running.extend(new)

    @staticmethod
    def _deliver(seq: BatchSequence, output: Output, now: int) -> None:
        if not seq.active:
            return
        if isinstance(output, EngineError):
            seq.done = True
            seq.out.put_nowait(output)
            return
        seq.generated += 1
        seq.pending_tokens += 1
        if output.logprob is not None:
            seq.pending_logprobs.append(output.logprob)
        reason = output.finish_reason
        if output.text or reason is not None:
            logprobs = tuple(seq.pending_logprobs)
            seq.out.put_nowait(TokenDelta(output.text, seq.pending_tokens, logprobs))
            seq.pending_tokens = 0
            seq.pending_logprobs.clear()
        if reason is not None:
            seq.done = True  # leaves the batch; the consumer still drains its queue
            seq.stages.finished_ns = now
            seq.stages.output_tokens = seq.generated
            seq.out.put_nowait(Finished(reason, seq.stages))
