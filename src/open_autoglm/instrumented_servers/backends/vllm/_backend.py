"""``vllm``: the real vLLM engine in-process (``AsyncLLM``), with per-stage spans.

vLLM's own tracing emits one ``llm_request`` span with queue, prefill and decode only as
attributes, and its metrics carry no exemplars. This backend tokenizes the prompt itself (the
``tokenize`` stage), hands vLLM the token ids, streams vLLM's detokenized deltas, and turns
vLLM's per-request stamps (``RequestStateStats``) into the server's ``queue``, ``prefill`` and
``decode`` stages, with the formulas vLLM itself uses::

    queue   = scheduled_ts   - queued_ts
    prefill = first_token_ts - scheduled_ts
    decode  = last_token_ts  - first_token_ts

The W3C trace headers of the server span go to vLLM, so with ``otlp_traces_endpoint`` set
vLLM's ``llm_request`` span lands in the same trace. vLLM's ``vllm:*`` metrics are offered to
the server's ``/metrics`` through :meth:`VllmBackend.metrics_collectors`.

Engine settings: the common options (``--max-model-len``, ``--max-batch-size`` as
``max_num_seqs``, ``--seed``, ``--device``) plus any ``AsyncEngineArgs`` field as
``--backend-option`` (``dtype=bfloat16``, ``enforce_eager=true``,
``gpu_memory_utilization=0.9``, ``tensor_parallel_size=2``, ``otlp_traces_endpoint=URL``, ...),
and three of our own: ``otlp_traces_protocol`` (``grpc`` or ``http/protobuf``, vLLM's exporter),
``download`` (``true`` lets vLLM fetch a Hugging Face model that is not in the local cache) and
``max_queue`` (as ``--max-queue``). Every vLLM interface used is in :mod:`._compat`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns
from typing import Any, Final

from prometheus_client.registry import Collector

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
    QueueFullError,
    StageTimes,
    TokenDelta,
)
from open_autoglm.instrumented_servers.backends import BackendOptions
from open_autoglm.instrumented_servers.backends.vllm import _compat as compat

_log = logging.getLogger(__name__)

DEFAULT_MODEL: Final = "smollm2-135m"
_OWN_OPTIONS: Final = ("download", "max_queue", "otlp_traces_protocol")
_PROTOCOLS: Final = ("grpc", "http/protobuf")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
#: Settings a CPU build needs to start in reasonable time, unless given (the engine's
#: torch.compile and CUDA-graph paths are for GPUs).
_CPU_DEFAULTS: Final[Mapping[str, object]] = {"enforce_eager": True, "dtype": "bfloat16"}


def _parse_bool(key: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"vllm option {key} must be true or false, got {raw!r}")


def _parse_value(key: str, raw: str, default: object) -> object:
    """``raw`` as the type of the ``AsyncEngineArgs`` field's default."""
    if isinstance(default, bool):
        return _parse_bool(key, raw)
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        kind = type(default).__name__
        raise ValueError(f"vllm option {key} must be of type {kind}, got {raw!r}") from None
    if default is not None:
        return raw
    # No default to go by (None): numbers as numbers, booleans as booleans, else text.
    low = raw.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for parse in (int, float):
        try:
            return parse(raw)
        except ValueError:
            pass
    return raw


@dataclass(frozen=True, slots=True)
class VllmConfig:
    """What the engine is built from; checked when built (before the slow engine start)."""

    model: str
    served_model_name: str
    #: Keyword arguments of ``AsyncEngineArgs``.
    engine_args: Mapping[str, object] = field(default_factory=dict)
    max_queue: int = 1024
    otlp_traces_protocol: str | None = None
    device: str = "cuda"  # what this vLLM build runs on (its platform)

    @classmethod
    def from_options(cls, options: BackendOptions) -> VllmConfig:
        compat.vllm_version()  # a clear error when vLLM is missing
        fields = compat.engine_arg_defaults()
        engine_args: dict[str, object] = {}
        download = False
        max_queue = options.max_queue or 1024
        protocol: str | None = None
        for key, raw in options.extra.items():
            if key == "download":
                download = _parse_bool(key, raw)
            elif key == "max_queue":
                try:
                    max_queue = int(raw)
                except ValueError:
                    raise ValueError(
                        f"vllm option max_queue must be of type int, got {raw!r}"
                    ) from None
            elif key == "otlp_traces_protocol":
                if raw not in _PROTOCOLS:
                    raise ValueError(
                        f"vllm option otlp_traces_protocol must be one of {', '.join(_PROTOCOLS)}"
                    )
                protocol = raw
            elif key in ("model", "served_model_name", "tokenizer"):
                raise ValueError(f"set the vllm {key} with --model / --served-model-name")
            elif key in fields:
                engine_args[key] = _parse_value(key, raw, fields[key])
            else:
                raise ValueError(
                    f"unknown vllm option {key!r}: give a field of vLLM's AsyncEngineArgs "
                    f"(e.g. dtype, enforce_eager, gpu_memory_utilization, tensor_parallel_size, "
                    f"otlp_traces_endpoint) or one of {', '.join(_OWN_OPTIONS)}"
                )
        if max_queue < 1:
            raise ValueError("vllm option max_queue must be at least 1")
        device = compat.platform_device()
        if options.device not in ("auto", device):
            raise ValueError(
                f"this vLLM build runs on {device}; --device {options.device} is not available"
            )
        if device == "cpu":
            for key, value in _CPU_DEFAULTS.items():
                engine_args.setdefault(key, value)
        model = options.model or DEFAULT_MODEL
        folder = resolve_vllm_model(model, allow_download=download)
        served = options.served_model_name or (
            folder.name if Path(model).expanduser().exists() else model
        )
        engine_args.update(model=str(folder), served_model_name=[served], seed=options.seed)
        if options.max_model_len is not None:
            engine_args["max_model_len"] = options.max_model_len
        if options.max_batch_size is not None:
            engine_args["max_num_seqs"] = options.max_batch_size
        return cls(str(folder), served, engine_args, max_queue, protocol, device)


def resolve_vllm_model(name_or_path: str, *, allow_download: bool = False) -> Path:
    """The folder (or Hugging Face id) vLLM loads for ``--model``.

    An existing folder as given; a known model (``smollm2-135m``) as its prepared Hugging Face
    folder, prepared now when missing; a Hugging Face id from the local cache, or passed on
    as is when ``allow_download``. Anything else is a :class:`ValueError` with one clear line.
    """
    from open_autoglm.instrumented_servers.models import (
        KNOWN_MODELS,
        ModelPreparationError,
        resolve_model,
    )

    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"model folder {path} has no config.json (a Hugging Face folder)")
        return path
    if name_or_path.lower() in KNOWN_MODELS:
        try:
            return resolve_model(name_or_path, "hf")
        except ModelPreparationError as exc:
            raise ValueError(str(exc)) from exc
    cached = _hf_cache_snapshot(name_or_path)
    if cached is not None:
        return cached
    if allow_download:
        return Path(name_or_path)
    raise ValueError(
        f"model {name_or_path!r} is not a folder, a known model "
        f"({', '.join(sorted(KNOWN_MODELS))}) or in the Hugging Face cache; download it first "
        f"(huggingface-cli download {name_or_path}), or pass --backend-option download=true"
    )


def _hf_cache_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of a Hugging Face model id, without network access."""
    if repo_id.count("/") != 1:
        return None
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, a bad id: not in the cache
        return None
    return folder if (folder / "config.json").is_file() else None


@dataclass(eq=False, slots=True)
class _Flight:
    """One request inside the engine, as this backend sees it."""

    stages: StageTimes
    producing: bool = False


class VllmBackend(Backend):
    name = "vllm"
    wants_trace_headers = True

    def __init__(self, config: VllmConfig) -> None:
        max_len = config.engine_args.get("max_model_len")
        super().__init__(config.served_model_name, int(max_len) if isinstance(max_len, int) else 0)
        self.config = config
        self._engine: Any = None
        self._tokenizer: Any = None
        self._tracing = False
        self._flights: dict[str, _Flight] = {}
        self._collector = compat.VllmMetricsCollector()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._engine is not None:
            return
        started = perf_counter_ns()
        try:
            self._engine = compat.build_engine(
                self.config.engine_args, self.config.otlp_traces_protocol
            )
        except Exception as exc:
            raise EngineError(f"vLLM failed to start: {type(exc).__name__}: {exc}") from exc
        self._tokenizer = await compat.engine_tokenizer(self._engine)
        self.max_model_len = compat.engine_max_model_len(self._engine) or self.max_model_len
        self._tracing = compat.tracing_enabled(self._engine)
        _log.info(
            "vLLM %s ready in %.1f s: %s, max_model_len %d",
            compat.vllm_version(), (perf_counter_ns() - started) / 1e9,
            self.config.model, self.max_model_len,
        )  # fmt: skip

    async def stop(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.to_thread(compat.shutdown_engine, engine)

    # ------------------------------------------------------------------ interface
    def metrics_collectors(self) -> Sequence[Collector]:
        """vLLM's own ``vllm:*`` metrics, for the server's ``/metrics``."""
        return (self._collector,)

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        return compat.render_chat(self._require_tokenizer(), [(m.role, m.text) for m in messages])

    def count_tokens(self, text: str) -> int:
        return len(compat.encode(self._require_tokenizer(), text))

    def _require_tokenizer(self) -> Any:
        if self._tokenizer is None:
            raise EngineError("vllm backend is not started")
        return self._tokenizer

    def runtime(self) -> dict[str, str]:
        return {"device": self.config.device}

    def load(self) -> BackendLoad:
        reported = compat.read_load()
        if reported is not None:
            return BackendLoad(queue_depth=reported[0], running=reported[1])
        producing = sum(f.producing for f in self._flights.values())
        return BackendLoad(queue_depth=len(self._flights) - producing, running=producing)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        engine = self._engine
        if engine is None:
            raise EngineError("vllm backend is not started")
        if request.images:
            raise EngineError("the vllm backend serves text only; this request has images")
        stages = StageTimes()
        stages.tokenize_start_ns = perf_counter_ns()
        ids = compat.encode(self._tokenizer, request.prompt)
        stages.tokenize_end_ns = perf_counter_ns()
        stages.prompt_tokens = len(ids)
        sampling = request.sampling
        if len(ids) + sampling.max_tokens > self.max_model_len:
            raise ContextLengthError(len(ids), sampling.max_tokens, self.max_model_len)
        waiting = sum(not f.producing for f in self._flights.values())
        if waiting >= self.config.max_queue:
            raise QueueFullError(
                f"the waiting queue is full ({self.config.max_queue} requests); retry later"
            )
        flight = _Flight(stages)
        stages.queue_depth_at_enqueue = waiting
        params = compat.sampling_params(sampling, None)
        headers = request.trace_headers if self._tracing else None
        outputs = compat.generate(
            engine, compat.token_prompt(ids, request.prompt), params, request.request_id, headers
        )
        self._flights[request.request_id] = flight
        finished = False
        stages.enqueued_ns = perf_counter_ns()  # replaced by vLLM's queued_ts when reported
        try:
            yield Accepted(prompt_tokens=len(ids), stages=stages)
            async for output in outputs:
                delta = compat.read_output(output)
                now = perf_counter_ns()
                if delta.token_count:
                    if not flight.producing:
                        flight.producing = True
                        stages.first_token_ns = now
                        stages.cached_tokens = delta.cached_tokens
                    else:
                        stages.decode_steps += 1
                        stages.batch_size_sum += sum(f.producing for f in self._flights.values())
                    stages.output_tokens += delta.token_count
                _apply_stamps(stages, delta.stamps)
                if delta.text or delta.token_count:
                    yield TokenDelta(delta.text, delta.token_count)
                if delta.finished:
                    finished = True
                    if not (delta.stamps and delta.stamps.last_token_ns):
                        stages.finished_ns = now
                    yield Finished(_finish_reason(delta.finish_reason), stages)
                    return
            raise EngineError("vLLM ended the stream without finishing the request")
        except EngineError:
            raise
        except Exception as exc:
            if compat.is_client_error(exc):
                raise EngineError(f"vLLM rejected the request: {exc}") from exc
            raise EngineError(f"vLLM failed: {type(exc).__name__}") from exc
        finally:
            self._flights.pop(request.request_id, None)
            if not finished:
                stages.finished_ns = perf_counter_ns()
            if not stages.scheduled_ns and stages.first_token_ns:
                stages.scheduled_ns = stages.enqueued_ns  # no engine stamps: queue unmeasured
            await outputs.aclose()  # vLLM aborts the request when its generator is closed


def _finish_reason(reason: str | None) -> FinishReason:
    if reason == "length":
        return "length"
    if reason in ("abort", "error"):
        raise EngineError(f"vLLM ended the request ({reason})")
    return "stop"


def _apply_stamps(stages: StageTimes, stamps: compat.EngineStamps | None) -> None:
    """Take vLLM's own stamps where it reported them (stats on, the default).

    vLLM updates them as the request advances, so a request cut short keeps those it reached.
    """
    if stamps is None:
        return
    if stamps.queued_ns and stamps.scheduled_ns:
        stages.enqueued_ns = stamps.queued_ns
        stages.scheduled_ns = stamps.scheduled_ns
    if stamps.first_token_ns:
        stages.first_token_ns = stamps.first_token_ns
    if stamps.last_token_ns:
        stages.finished_ns = stamps.last_token_ns
    stages.preemptions = stamps.preemptions


def build(options: BackendOptions) -> VllmBackend:
    return VllmBackend(VllmConfig.from_options(options))


__all__ = ["VllmBackend", "VllmConfig", "build", "resolve_vllm_model"]
