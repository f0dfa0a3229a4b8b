"""The OpenAI-compatible FastAPI app around one backend."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from time import perf_counter_ns
from typing import TypeVar

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from open_autoglm.instrumented_servers._backend import (
    Accepted,
    Backend,
    ContextLengthError,
    EngineError,
    GenerationRequest,
    ImageInput,
    QueueFullError,
    SamplingParams,
)
from open_autoglm.instrumented_servers._config import ServerConfig
from open_autoglm.instrumented_servers._content_capture import (
    chat_input_messages,
    prompt_input_messages,
)
from open_autoglm.instrumented_servers._errors import APIError, status_error_type
from open_autoglm.instrumented_servers._generation import (
    OPERATIONS,
    Generation,
    ResponseShape,
    created_now,
    new_response_id,
)
from open_autoglm.instrumented_servers._protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    _Sampling,
    decode_messages,
    model_card,
    parse_body,
    unsupported_parameter,
)
from open_autoglm.instrumented_servers._request_telemetry import RequestTelemetry, ServedRequest
from open_autoglm.telemetry import (
    ExportMetrics,
    GpuProbe,
    ServerMetrics,
    ServerSpanMiddleware,
    Tracing,
    outlet_for,
)

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
#: Characters per token of context in the prefix that :meth:`_Service.check_context` counts:
#: English text averages 4-5 characters per token, so a prompt over the context almost always
#: shows it in its first ``8 * max_model_len`` characters.
_PREFIX_CHARS_PER_TOKEN = 8


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body is larger than {limit} bytes", code="body_too_large")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise APIError(
                    413, f"request body is larger than {limit} bytes", code="body_too_large"
                )
            chunks.append(chunk)
    except ClientDisconnect:  # gone, or cut off by the body read timeout (_read_timeouts)
        raise APIError(
            408, "the request body was not received in full", code="request_timeout"
        ) from None
    return b"".join(chunks)


class _Service:
    """Request handling of one app: validation, backend call, response, telemetry."""

    def __init__(
        self,
        backend: Backend,
        config: ServerConfig,
        metrics: ServerMetrics,
        tracer_provider: TracerProvider | None,
    ) -> None:
        self.backend = backend
        self.config = config
        self.metrics = metrics
        self.created = created_now()
        self.telemetry = RequestTelemetry(tracer_provider, metrics, backend.name, backend.simulated)
        # One worker thread for large bodies: their parsing holds the GIL in long C calls, so
        # more threads would only queue the event loop behind more of them (GIL-bound anyway).
        self._large_bodies = anyio.CapacityLimiter(1)

    def check_common(self, body: _Sampling) -> None:
        if body.model != self.backend.model_name:
            raise APIError(
                404,
                f"The model `{body.model}` does not exist; this server serves "
                f"`{self.backend.model_name}`.",
                type="not_found_error",
                param="model",
                code="model_not_found",
            )
        if body.n != 1:
            raise APIError(400, "only n=1 is supported", param="n")
        unsupported_parameter(body)

    def wanted_logprobs(self, body: ChatCompletionRequest | CompletionRequest) -> int | None:
        wanted = body.wanted_logprobs
        if wanted is not None and not self.backend.supports_logprobs:
            raise APIError(
                400,
                f"the {self.backend.name} backend does not return log probabilities",
                param="logprobs",
                code="unsupported_parameter",
            )
        return wanted

    async def off_loop(self, big: bool, fn: Callable[..., _T], *args: object) -> _T:
        """``fn(*args)`` in a worker thread for a large body, else here.

        Parsing, decoding and tokenising are linear in the body's size: for bodies of
        :attr:`ServerConfig.off_loop_body_bytes` or more they run off the event loop, so
        ``/health``, ``/metrics`` and the streams of other requests keep their latency."""
        if big:
            return await anyio.to_thread.run_sync(partial(fn, *args), limiter=self._large_bodies)
        return fn(*args)

    async def resolve_max_tokens(
        self, requested: int | None, default: int | None, prompt: str | tuple[int, ...], big: bool
    ) -> int:
        limit = self.backend.max_model_len
        if requested is None:
            counted = (
                len(prompt)
                if isinstance(prompt, tuple)
                else await self.off_loop(big, self.backend.count_tokens, prompt)
            )
            requested = default or limit - counted
            if requested < 1:
                raise APIError(400, "the prompt fills the model's context", param="messages",
                               code="context_length_exceeded")  # fmt: skip
            return requested
        if requested < 1:
            raise APIError(400, "max_tokens must be at least 1", param="max_tokens")
        if requested > limit:
            raise APIError(
                400, f"max_tokens must be at most {limit}, the model's context length",
                param="max_tokens",
            )  # fmt: skip
        return requested

    async def completions(self, request: Request) -> Response:
        arrival = perf_counter_ns()
        raw = await _read_body(request, self.config.max_body_bytes)
        big = len(raw) >= self.config.off_loop_body_bytes
        body = await self.off_loop(big, parse_body, CompletionRequest, raw)
        self.check_common(body)
        prompt = body.prompt_text()
        if not prompt:
            raise APIError(400, "prompt must not be empty", param="prompt")
        if isinstance(prompt, tuple):
            self.check_token_ids(prompt)
        max_tokens = await self.resolve_max_tokens(
            body.max_tokens, self.config.default_completion_tokens, prompt, big
        )
        record = ServedRequest(OPERATIONS[False], body.model, arrival, max_tokens, body.stream)
        if self.config.capture_content:
            text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
            record.input_messages = prompt_input_messages(text)
            record.output_text = []
        return await self.generate(body, prompt, (), max_tokens, record, chat=False, big=big)

    def check_token_ids(self, ids: tuple[int, ...]) -> None:
        backend = self.backend
        if not backend.accepts_token_ids:
            raise APIError(
                400,
                f"the {backend.name} backend takes text prompts only, not token ids",
                param="prompt",
                code="unsupported_parameter",
            )
        vocab = backend.vocab_size
        bad = next((i for i in ids if i < 0 or (vocab is not None and i >= vocab)), None)
        if bad is not None:
            raise APIError(
                400,
                f"token id {bad} is out of the vocabulary"
                + (f" (0 to {vocab - 1})" if vocab is not None else " (ids are >= 0)"),
                param="prompt",
            )

    async def chat_completions(self, request: Request) -> Response:
        arrival = perf_counter_ns()
        raw = await _read_body(request, self.config.max_body_bytes)
        big = len(raw) >= self.config.off_loop_body_bytes
        body = await self.off_loop(big, parse_body, ChatCompletionRequest, raw)
        self.check_common(body)
        record = ServedRequest(OPERATIONS[True], body.model, arrival, 0, body.stream)
        started = perf_counter_ns()
        messages, image_bytes = await self.off_loop(big, decode_messages, body.messages)
        images: tuple[ImageInput, ...] = tuple(im for m in messages for im in m.images)
        if images and not self.backend.accepts_images:
            raise APIError(
                400,
                f"the {self.backend.name} backend serves a text-only model; remove the "
                "image_url parts",
                param="messages",
                code="images_not_supported",
            )
        if images:
            record.preprocess = (started, perf_counter_ns())
            record.image_count = len(images)
            record.image_bytes = image_bytes
            record.image_pixels = sum((im.width or 0) * (im.height or 0) for im in images)
        if not any(m.text or m.images for m in messages):
            raise APIError(400, "messages must not all be empty", param="messages")
        if self.config.capture_content:
            record.input_messages = chat_input_messages(messages)
            record.output_text = []
        prompt = await self.off_loop(big, self.backend.render_chat, messages)
        record.max_tokens = await self.resolve_max_tokens(
            body.requested_max_tokens(), None, prompt, big
        )
        return await self.generate(
            body, prompt, images, record.max_tokens, record, chat=True, big=big
        )

    async def check_context(self, prompt: str, max_tokens: int) -> None:
        """For a large body, the context check before the backend tokenises the whole prompt
        on the event loop. Raises :class:`ContextLengthError` as the backend would.

        First a prefix of the prompt, cut before a whitespace character and
        :data:`_PREFIX_CHARS_PER_TOKEN` characters per token of context long, is counted here:
        its tokens are a lower bound of the prompt's for tokenizers that split at whitespace
        (the simulator's, byte-level BPE, SentencePiece), so a prompt far over the context is
        refused at the cost of a few thousand tokens. Otherwise the whole text is counted in
        a worker thread (images add tokens on top: still a lower bound)."""
        limit = self.backend.max_model_len
        room = limit - max_tokens
        cut = prompt.rfind(" ", 0, _PREFIX_CHARS_PER_TOKEN * limit)
        if cut > 0:
            at_least = self.backend.count_tokens(prompt[:cut])
            if at_least > room:
                raise ContextLengthError(at_least, max_tokens, limit, at_least=True)
        tokens = await self.off_loop(True, self.backend.count_tokens, prompt)
        if tokens > room:
            raise ContextLengthError(tokens, max_tokens, limit)

    async def generate(
        self,
        body: ChatCompletionRequest | CompletionRequest,
        prompt: str | tuple[int, ...],
        images: tuple[ImageInput, ...],
        max_tokens: int,
        record: ServedRequest,
        *,
        chat: bool,
        big: bool = False,
    ) -> Response:
        span = trace.get_current_span()
        headers: dict[str, str] = {}
        if self.backend.wants_trace_headers:
            propagate.inject(headers)
        response_id = new_response_id(chat)
        stops = body.stop_sequences()
        logprobs = self.wanted_logprobs(body)
        generation_request = GenerationRequest(
            request_id=response_id,
            prompt=prompt if isinstance(prompt, str) else "",
            prompt_token_ids=prompt if isinstance(prompt, tuple) else None,
            sampling=SamplingParams(
                max_tokens=max_tokens,
                temperature=1.0 if body.temperature is None else body.temperature,
                top_p=1.0 if body.top_p is None else body.top_p,
                seed=body.seed,
                stop=stops,
                ignore_eos=body.ignore_eos,
                logprobs=logprobs,
            ),
            images=images,
            trace_headers=headers,
        )
        events = self.backend.generate(generation_request)
        try:
            if big and isinstance(prompt, str):
                await self.check_context(prompt, max_tokens)
            first = await anext(events)
        except QueueFullError as exc:
            record.error_type = type(exc).__name__
            self.telemetry.finish(span, record)
            retry = str(max(1, round(exc.retry_after_s)))
            raise APIError(429, str(exc), type="rate_limit_error", code="queue_full",
                           headers={"Retry-After": retry}, counted=True) from exc  # fmt: skip
        except ContextLengthError as exc:
            record.error_type = type(exc).__name__
            self.telemetry.finish(span, record)
            raise APIError(400, str(exc), param="messages" if chat else "prompt",
                           code="context_length_exceeded", counted=True) from exc  # fmt: skip
        except (EngineError, StopAsyncIteration) as exc:
            record.error_type = type(exc).__name__
            self.telemetry.finish(span, record)
            raise APIError(500, f"engine failed: {exc}", type="server_error",
                           code="engine_error", counted=True) from exc  # fmt: skip
        if not isinstance(first, Accepted):
            await events.aclose()
            raise APIError(500, "backend broke its protocol", type="server_error")
        shape = ResponseShape(
            chat=chat,
            response_id=response_id,
            created=created_now(),
            model=body.model,
            stops=stops,
            include_usage=body.include_usage,
            logprobs=logprobs is not None,
        )
        generation = Generation(events, first, shape, record, span, self.telemetry)
        if body.stream:
            return generation.streaming_response()
        return await generation.respond()


def create_app(
    backend: Backend,
    *,
    tracer_provider: TracerProvider | None = None,
    tracing: Tracing | None = None,
    registry: CollectorRegistry | None = None,
    config: ServerConfig | None = None,
    gpu: GpuProbe | None = None,
) -> FastAPI:
    """The app serving ``backend``. The caller owns ``tracing`` / ``tracer_provider`` (and
    shuts it down).

    With ``tracing`` (:func:`~open_autoglm.telemetry.make_tracing`, what ``serve`` builds) or a
    :class:`~open_autoglm.telemetry.TrackingTracerProvider`, each request's SERVER span comes
    from the lean :class:`~open_autoglm.telemetry.ServerSpanMiddleware` and its stage spans
    are exported with it, after the tail sampler's decision; export counters join
    ``/metrics``. Any other provider gets the SDK path (the FastAPI instrumentation). Neither:
    tracing off entirely (no spans, no exemplars), the baseline of the overhead benchmark.
    """
    config = config or ServerConfig()
    registry = registry if registry is not None else CollectorRegistry()
    if tracing is not None:
        tracer_provider = tracing.provider
        registry.register(ExportMetrics(tracing.exporter, tracing.outlet.sampler))
    metrics = ServerMetrics(registry, backend.model_name, backend.name, backend.load, gpu)
    for collector in backend.metrics_collectors():  # the engine's own metrics (vllm:*)
        registry.register(collector)
    service = _Service(backend, config, metrics, tracer_provider)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await backend.start()
        metrics.memory.loaded()  # the model is ready: its load peak apart from serving's
        try:
            yield
        finally:
            await backend.stop()

    app = FastAPI(
        title="Open-AutoGLM instrumented server",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> Response:
        if exc.status >= 400 and not exc.counted:
            metrics.error(str(exc.status))
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return APIError(
            exc.status_code, str(exc.detail), type=status_error_type(exc.status_code)
        ).response()

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await service.completions(request)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await service.chat_completions(request)

    @app.get("/v1/models")
    async def models() -> JSONResponse:
        return JSONResponse(
            {
                "object": "list",
                "data": [model_card(backend.model_name, service.created, backend.runtime())],
            }
        )

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse(
            {"status": "ok", "backend": backend.name, "model": backend.model_name,
             "simulated": backend.simulated, "runtime": backend.runtime()}
        )  # fmt: skip

    @app.get("/metrics")
    async def prometheus_metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), media_type=content_type)

    if tracer_provider is None:
        return app
    outlet = tracing.outlet if tracing is not None else outlet_for(tracer_provider)
    if outlet is not None:
        excluded = () if config.trace_probes else ("/metrics", "/health")
        app.add_middleware(
            ServerSpanMiddleware,
            outlet=outlet,
            routes=("/v1/chat/completions", "/v1/completions", "/v1/models", "/metrics",
                    "/health"),
            excluded_paths=excluded,
        )  # fmt: skip
        return app
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        excluded_urls=None if config.trace_probes else "metrics,health",
        exclude_spans=["receive", "send"],
    )
    return app
