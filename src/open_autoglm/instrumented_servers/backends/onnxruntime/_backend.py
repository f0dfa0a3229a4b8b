"""``onnxruntime``: a continuous-batching engine over a decoder-with-past ONNX model.

It runs in the shared continuous-batching shell (``instrumented_servers._batching``: the
waiting queue, admission, stage stamps, cancellation). The engine answers whether a request
fits (the KV-cache budget) and runs one step: it either prefills the admitted requests
(prompts of different lengths padded on the left and run together) and adds them to the
batch, or runs one decode step for the whole batch. onnxruntime runs in a worker thread, so
the event loop keeps serving. The incremental detokenizer is timed per token (the
``detokenize`` span).

The KV cache of the batch is one ``[batch, kv_heads, length, head_dim]`` array per layer and
kind; ``length`` is the longest sequence, shorter ones padded on the left and hidden by the
attention mask, so memory is ``batch × longest`` and the budget is checked that way.

With ``--target-tpot`` the cap on the batch adapts (``instrumented_servers._adaptive_batching``)
to the time between a running sequence's tokens, prefill steps that stall the batch included.

``tensorrt`` is the same engine with ``--device tensorrt`` (ORT's TensorRT provider, then CUDA).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter_ns
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from open_autoglm.instrumented_servers._adaptive_batching import AdaptiveBatchingConfig
from open_autoglm.instrumented_servers._backend import (
    ChatMessage,
    FinishReason,
    GenerationRequest,
    StageTimes,
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
from open_autoglm.instrumented_servers.backends.onnxruntime._prefix_cache import PrefixCache
from open_autoglm.instrumented_servers.backends.onnxruntime._session import (
    DEVICES,
    DecoderSession,
    Past,
    find_model_files,
)
from open_autoglm.instrumented_servers.backends.onnxruntime._text import (
    ChatTemplate,
    IncrementalDetokenizer,
    TextTokenizer,
    sample,
    token_logprob,
)

_log = logging.getLogger(__name__)

DEFAULT_MODEL: Final = "smollm2-135m"
_KNOWN_PRECISIONS: Final = {"int4": "onnx-int4", "fp32": "onnx-fp32"}
_DEFAULT_PREFIX_CACHE_MB: Final = 64.0
_IO_BINDING: Final[dict[str, bool | None]] = {"auto": None, "on": True, "off": False}


@dataclass(frozen=True, slots=True)
class OrtConfig:
    """Engine settings, from the common options plus ``--backend-option`` pairs."""

    model: str = DEFAULT_MODEL
    precision: str = "int4"  # for known models: which prepared variant to run
    device: str = "auto"
    max_batch_size: int = 8
    max_queue: int = 256
    max_model_len: int | None = None  # default: the model's own limit
    kv_cache_mb: float = 1024.0
    threads: int = 0  # intra-op threads; 0 lets onnxruntime choose
    #: KV cache kept on the session's device between steps: auto (GPU providers only), on, off.
    io_binding: str = "auto"
    #: Memory for reusable prompt prefixes (kept on the host); 0 turns prefix caching off.
    #: None: 64 MiB, but off with IO binding, where on an H200 the copies to and from the
    #: device cost more than the prefill they saved (benchmarks/bench_onnxruntime_gpu.py).
    prefix_cache_mb: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.precision not in _KNOWN_PRECISIONS:
            raise ValueError(
                f"onnxruntime option precision must be one of {sorted(_KNOWN_PRECISIONS)}"
            )
        if self.device not in DEVICES:
            raise ValueError(
                f"unknown device {self.device!r} for onnxruntime; "
                f"choose one of {', '.join(DEVICES)}"
            )
        for name in ("max_batch_size", "max_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"onnxruntime option {name} must be at least 1")
        if self.io_binding not in _IO_BINDING:
            raise ValueError(
                f"onnxruntime option io_binding must be one of {', '.join(_IO_BINDING)}"
            )
        if self.prefix_cache_mb is not None and self.prefix_cache_mb < 0:
            raise ValueError("onnxruntime option prefix_cache_mb must be 0 (off) or more")
        if self.kv_cache_mb <= 0:
            raise ValueError("onnxruntime option kv_cache_mb must be positive")

    @classmethod
    def from_options(cls, options: BackendOptions, default_device: str = "auto") -> OrtConfig:
        values: dict[str, Any] = {}
        parsers: Mapping[str, type] = {
            "precision": str,
            "kv_cache_mb": float,
            "threads": int,
            "io_binding": str,
            "prefix_cache_mb": float,
        }
        for key, raw in options.extra.items():
            parse = parsers.get(key)
            if parse is None:
                raise ValueError(
                    f"unknown onnxruntime option {key!r}; known: {', '.join(sorted(parsers))}"
                )
            try:
                values[key] = parse(raw)
            except ValueError:
                raise ValueError(f"onnxruntime option {key} must be a {parse.__name__}") from None
        for key in ("max_batch_size", "max_queue", "max_model_len"):
            given = getattr(options, key)
            if given is not None:
                values[key] = given
        device = options.device if options.device != "auto" else default_device
        return cls(model=options.model or DEFAULT_MODEL, device=device, seed=options.seed, **values)


@dataclass(eq=False, slots=True, kw_only=True)
class _Sequence(BatchSequence):
    prompt_ids: list[int]
    detok: IncrementalDetokenizer
    rng: np.random.Generator
    length: int = 0  # tokens in the cache for this sequence (prompt + generated so far)
    last_token: int = 0

    @property
    def reserve(self) -> int:
        return len(self.prompt_ids) + self.request.sampling.max_tokens


class _Batch:
    """The running sequences and their KV cache, rows in the same order.

    The cache stays wherever the session keeps it (host arrays, or device tensors with IO
    binding); only the attention mask, which the scheduler reads, is kept on the host.
    """

    def __init__(self, engine: DecoderSession) -> None:
        self.engine = engine
        self.rows: list[_Sequence] = []
        self.past: Past = []
        self.mask: npt.NDArray[np.int64] = np.zeros((0, 0), np.int64)

    def join(self, rows: list[_Sequence], past: Past, mask: npt.NDArray[np.int64]) -> None:
        if not self.rows:
            self.rows, self.past, self.mask = rows, past, mask
            return
        width = max(self.mask.shape[1], mask.shape[1])
        pad_old, pad_new = width - self.mask.shape[1], width - mask.shape[1]
        self.past = self.engine.join_past(self.past, pad_old, past, pad_new)
        self.mask = np.concatenate(
            [np.pad(self.mask, ((0, 0), (pad_old, 0))), np.pad(mask, ((0, 0), (pad_new, 0)))]
        )
        self.rows = self.rows + rows

    def keep(self, keep: list[int]) -> None:
        """Keep only the rows ``keep``; trim cache columns that every row has as padding."""
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.rows, self.past, self.mask = [], [], np.zeros((0, 0), np.int64)
            return
        index = np.asarray(keep, np.int64)
        mask = self.mask[index]
        first = int(np.argmax(mask.any(axis=0)))
        self.mask = np.ascontiguousarray(mask[:, first:])
        self.past = self.engine.select_past(self.past, index, first)
        self.rows = [self.rows[i] for i in keep]


class OnnxRuntimeBackend(ContinuousBatchingBackend[_Sequence]):
    """The engine in the shared continuous-batching shell: a step either prefills the
    admitted sequences (the running ones wait) or decodes the whole batch."""

    name = "onnxruntime"
    supports_logprobs = True  # log-softmax of the model's logits, before temperature
    accepts_token_ids = True

    def __init__(
        self,
        model_name: str,
        folder: Path,
        config: OrtConfig,
        adaptive: AdaptiveBatchingConfig | None = None,
    ) -> None:
        files = find_model_files(folder)
        self.engine = DecoderSession(
            files, config.device, config.threads, _IO_BINDING[config.io_binding]
        )
        limit = files.config.get("max_position_embeddings") or 2048
        super().__init__(
            model_name,
            int(config.max_model_len or limit),
            max_batch_size=config.max_batch_size,
            max_queue=config.max_queue,
            seed=config.seed,
            adaptive=adaptive,
        )
        self.config = config
        self.model_path = files.folder
        #: The execution provider the session runs on, e.g. ``CPUExecutionProvider``.
        self.execution_provider = self.engine.provider
        tok_cfg, gen_cfg = files.tokenizer_config, files.generation_config
        bos_id = gen_cfg.get("bos_token_id", files.config.get("bos_token_id"))
        self.tokenizer = TextTokenizer(files.tokenizer, bos_id)
        self.vocab_size = self.tokenizer.vocab_size
        self.chat = ChatTemplate(
            tok_cfg.get("chat_template"),
            _token_text(tok_cfg.get("bos_token")),
            _token_text(tok_cfg.get("eos_token")),
        )
        eos = gen_cfg.get("eos_token_id", files.config.get("eos_token_id"))
        self.eos_ids = frozenset(eos if isinstance(eos, list) else [] if eos is None else [eos])
        pad = gen_cfg.get("pad_token_id", files.config.get("pad_token_id"))
        self.pad_id = int(pad if pad is not None else min(self.eos_ids, default=0))
        self._kv_budget = int(config.kv_cache_mb * 2**20)
        #: Prompt prefixes to reuse, kept on the host (None: off). With IO binding, a prefill
        #: copies in the prefix it reuses and copies out only the columns it computed.
        cache_mb = config.prefix_cache_mb
        if cache_mb is None:
            cache_mb = 0.0 if self.engine.io_binding else _DEFAULT_PREFIX_CACHE_MB
        self.prefix_cache = PrefixCache(int(cache_mb * 2**20)) if cache_mb > 0 else None
        self._batch = _Batch(self.engine)
        self._executor: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="onnxruntime")
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        self._batch = _Batch(self.engine)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # ------------------------------------------------------------------ interface
    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        return self.chat.render(messages)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def runtime(self) -> dict[str, str]:
        return {
            "device": self.engine.device_type,
            "execution_provider": self.execution_provider,
            "kv_cache": self.engine.device_type if self.engine.io_binding else "host",
        }

    # ------------------------------------------------------------------ engine
    def tokenize(self, request: GenerationRequest) -> Prompt:
        given = request.prompt_token_ids
        ids = list(given) if given is not None else self.tokenizer.encode(request.prompt)
        return Prompt(len(ids), tuple(ids))

    def new_sequence(
        self, request: GenerationRequest, stages: StageTimes, prompt: Prompt, seed: int
    ) -> _Sequence:
        return _Sequence(
            request=request,
            stages=stages,
            prompt_ids=list(prompt.ids) or [self.pad_id],
            detok=IncrementalDetokenizer(self.tokenizer, request.sampling.stop),
            rng=np.random.default_rng(seed),
        )

    def fits(
        self, running: Sequence[_Sequence], admitted: Sequence[_Sequence], candidate: _Sequence
    ) -> bool:
        """The batch's KV cache is ``rows × longest reserve``: it must stay in the budget."""
        longest = max((s.reserve for s in (*running, *admitted, candidate)), default=0)
        rows = len(running) + len(admitted) + 1
        return rows * longest * self.engine.kv_bytes_per_token <= self._kv_budget

    def evict(self, keep: Sequence[int]) -> None:
        self._batch.keep(list(keep))

    async def step(
        self, running: Sequence[_Sequence], new: Sequence[_Sequence]
    ) -> StepResult[_Sequence]:
        loop = asyncio.get_running_loop()
        batch = self._batch
        if new:
            rows = list(new)
            inputs = self._prefill_inputs(rows)
            logits, past = await loop.run_in_executor(self._executor, self.engine.run, *inputs)
            self._store_prefixes(rows, past, inputs[1].shape[1])
            for seq in rows:
                seq.length = len(seq.prompt_ids)
            outputs = self._sample(rows, logits)
            batch.join(rows, past, inputs[1])
            return StepResult(outputs, decoded=False)
        inputs = self._decode_inputs()
        logits, past = await loop.run_in_executor(self._executor, self.engine.run, *inputs)
        batch.past, batch.mask = past, inputs[1]
        for seq in batch.rows:
            seq.length += 1
        return StepResult(self._sample(batch.rows, logits), decoded=True)

    def _prefill_inputs(
        self, new: list[_Sequence]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], Past]:
        """The prompts' uncached tokens, padded on the left, after the cached prefix.

        Every row of one prefill reuses the same number of cached tokens (the fewest any row
        found), so the batch's cache is never wider than its longest prompt, which is what
        the KV budget was checked against.
        """
        cache = self.prefix_cache
        hits = [cache.lookup(s.prompt_ids) if cache else (0, []) for s in new]
        reused = min(found for found, _ in hits)
        width = max(len(s.prompt_ids) for s in new) - reused
        ids = np.full((len(new), width), self.pad_id, np.int64)
        mask = np.zeros((len(new), reused + width), np.int64)
        mask[:, :reused] = 1
        positions = np.zeros((len(new), width), np.int64)
        for row, seq in enumerate(new):
            rest = seq.prompt_ids[reused:]
            ids[row, width - len(rest) :] = rest
            mask[row, reused + width - len(rest) :] = 1
            positions[row, width - len(rest) :] = np.arange(reused, len(seq.prompt_ids))
            seq.stages.cached_tokens = reused
        if not reused:
            return ids, mask, positions, self.engine.empty_past(len(new))
        past = [
            np.stack([tensors[i][:, :reused, :] for _, tensors in hits])
            for i in range(len(self.engine.past_names))
        ]
        return ids, mask, positions, past

    def _store_prefixes(self, new: list[_Sequence], past: Past, columns: int) -> None:
        """Keep the prompts' new blocks for later prefills. A cache that fails is turned off
        and logged; it never fails the requests whose prefill it was copying."""
        cache = self.prefix_cache
        if cache is None:
            return
        reused = new[0].stages.cached_tokens  # the same for every row of one prefill
        try:
            computed = self.engine.host_columns(past, reused)  # the columns this prefill wrote
            for row, seq in enumerate(new):
                first = columns - len(seq.prompt_ids) - reused  # token 0's column, uncached
                cache.store(seq.prompt_ids, [c[row] for c in computed], first, reused)
        except Exception:
            _log.exception("the prompt-prefix cache failed; it is off from now on")
            self.prefix_cache = None

    def _decode_inputs(
        self,
    ) -> tuple[
        npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], list[npt.NDArray[Any]]
    ]:
        rows = self._batch.rows
        ids = np.array([[s.last_token] for s in rows], np.int64)
        positions = np.array([[s.length] for s in rows], np.int64)
        mask = np.concatenate([self._batch.mask, np.ones((len(rows), 1), np.int64)], axis=1)
        return ids, mask, positions, self._batch.past

    def _sample(
        self, rows: Sequence[_Sequence], logits: npt.NDArray[np.float32]
    ) -> list[tuple[_Sequence, Output]]:
        """The next token of every active row: sampled, detokenized, checked for a stop."""
        outputs: list[tuple[_Sequence, Output]] = []
        for row, seq in enumerate(rows):
            if not seq.active:
                continue
            params = seq.request.sampling
            token = sample(logits[row], params, seq.rng)
            seq.last_token = token
            number = seq.generated + 1  # this token's
            reason: FinishReason | None = None
            if token in self.eos_ids and not params.ignore_eos:
                reason = "stop"
                text = seq.detok.flush()
            else:
                started = perf_counter_ns()
                text = seq.detok.add(token)
                seq.stages.detokenize_ns += perf_counter_ns() - started
                if seq.detok.stopped:
                    reason = "stop"
                elif number >= params.max_tokens or seq.length + 1 >= self.max_model_len:
                    reason = "length"
                    text += seq.detok.flush()
            logprob = (
                None
                if params.logprobs is None
                else token_logprob(logits[row], token, params.logprobs, self.tokenizer.token_text)
            )
            outputs.append((seq, Token(text, reason, logprob)))
        return outputs


def _token_text(value: object) -> str:
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return value if isinstance(value, str) else ""


class TensorRTBackend(OnnxRuntimeBackend):
    """The same engine on onnxruntime's TensorRT provider (``--device tensorrt``)."""

    name = "tensorrt"


def _build(
    options: BackendOptions, default_device: str, cls: type[OnnxRuntimeBackend]
) -> OnnxRuntimeBackend:
    from open_autoglm.instrumented_servers.backends.onnxruntime.models import resolve_model

    config = OrtConfig.from_options(options, default_device)
    target = options.target_tpot_ms
    adaptive = None if target is None else AdaptiveBatchingConfig(target)
    variant = _KNOWN_PRECISIONS[config.precision]
    folder = resolve_model(config.model, variant)  # type: ignore[arg-type]  # checked in OrtConfig
    served = options.served_model_name or (
        config.model if not Path(config.model).exists() else folder.name
    )
    return cls(served, folder, config, adaptive)


def build(options: BackendOptions) -> OnnxRuntimeBackend:
    return _build(options, "auto", OnnxRuntimeBackend)


def build_tensorrt(options: BackendOptions) -> OnnxRuntimeBackend:
    return _build(options, "tensorrt", TensorRTBackend)
