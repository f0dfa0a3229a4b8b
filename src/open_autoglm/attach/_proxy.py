"""A tracing proxy for any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, Ollama...).

Every request is forwarded to the upstream as it came (method, path, query, body, headers --
``authorization`` included, never recorded) and the response comes back chunk by chunk as the
upstream sends it, unbuffered. Around it the proxy records, without touching the upstream:

* a SERVER span that continues the caller's ``traceparent`` (made by
  :class:`~open_autoglm.telemetry._asgi.ServerSpanMiddleware`); its own context goes upstream
  in ``traceparent``, so a traced upstream (vLLM's ``llm_request``) nests under it;
* children ``upstream.headers`` (request sent -> response headers), ``upstream.first_output``
  (-> first chunk carrying output) and ``upstream.streaming`` (-> end of the response);
* GenAI attributes from the request body and the response's ``usage``; errors by type;
* the server's Prometheus metrics (the same histograms and ``trace_id`` exemplars as
  ``open-autoglm serve``) on ``/metrics``, the one path the proxy answers itself.

An upstream that refuses, resets or stalls gives the client an OpenAI-style error (502/504
before the response started; an error event in a stream that had started) and a span with
``error.type``; the proxy itself carries on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import orjson
from opentelemetry import propagate, trace
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import choose_encoder

from open_autoglm.attach._config import ProxyConfig
from open_autoglm.attach._genai import (
    GENERATION_PATHS,
    PROXY_BACKEND,
    ProxyRequest,
    request_of,
    response_attributes,
)
from open_autoglm.attach._stream_watch import JsonWatcher, ResponseFacts, SseWatcher
from open_autoglm.telemetry import (
    ExportMetrics,
    RequestSpan,
    ServerMetrics,
    ServerSpanMiddleware,
    Tracing,
    wall_ns,
)
from open_autoglm.telemetry import names as n

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger(__name__)

_HOP_BY_HOP: Final = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
        b"trailer", b"transfer-encoding", b"upgrade", b"host", b"content-length",
        b"traceparent", b"tracestate",
    }
)  # fmt: skip


def _error_body(message: str, code: str, kind: str = "server_error") -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _upstream_failure(exc: BaseException) -> tuple[int, str, str, str]:
    """(status, code, message, error.type) of an upstream that failed before responding."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return 504, "upstream_timeout", "the upstream server did not answer in time", "TimeoutError"
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = type(exc.os_error).__name__ if exc.os_error is not None else type(exc).__name__
        return 502, "upstream_unavailable", "the upstream server refused the connection", cause
    return 502, "upstream_error", "the upstream server closed the connection", type(exc).__name__


def public_base(url: str) -> str:
    """``url`` without user info, query and trailing slash: where the upstream is, never a
    credential (the proxy publishes it on ``/metrics``)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}".rstrip("/")


class TracingProxy:
    """The proxy as a raw ASGI app; wrap it in ``ServerSpanMiddleware`` for spans."""

    def __init__(
        self,
        config: ProxyConfig,
        *,
        registry: CollectorRegistry | None = None,
        traced: bool = True,
    ) -> None:
        self.config = config
        self.registry = registry if registry is not None else CollectorRegistry()
        self._in_flight = 0
        self.metrics = ServerMetrics(
            self.registry, "", PROXY_BACKEND, lambda: _Load(0, self._in_flight)
        )
        Gauge(  # the info pattern: value 1, the fact in a label
            n.METRIC_PROXY_UPSTREAM,
            "The server behind this proxy",
            [n.LABEL_UPSTREAM],
            registry=self.registry,
        ).labels(public_base(config.upstream)).set(1)
        self._traced = traced
        self._session: aiohttp.ClientSession | None = None
        parts = urlsplit(config.upstream)
        self._upstream_attrs: dict[str, AttributeValue] = {n.ATTR_UPSTREAM: config.base}
        self._upstream_host = parts.hostname or ""
        self._upstream_port = parts.port or (443 if parts.scheme == "https" else 80)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.config.max_connections),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=self.config.connect_timeout_s,
                    sock_read=self.config.read_timeout_s,
                ),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope["path"] == "/metrics" and scope["method"] == "GET":
                await self._metrics(scope, send)
            else:
                await self._forward(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _metrics(self, scope: Scope, send: Send) -> None:
        accept = next((v.decode() for k, v in scope["headers"] if k == b"accept"), "")
        encoder, content_type = choose_encoder(accept)
        body = encoder(self.registry)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", content_type.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    # ------------------------------------------------------------------ forwarding
    async def _read_body(self, receive: Receive) -> bytes | None:
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.config.max_body_bytes:
                raise _TooLarge
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        arrival = perf_counter_ns()
        span = trace.get_current_span()
        request_span = span if isinstance(span, RequestSpan) else None
        operation = GENERATION_PATHS.get(scope["path"])
        try:
            body = await self._read_body(receive)
        except _TooLarge:
            limit = self.config.max_body_bytes
            self.metrics.error("413")
            await _respond(
                send, 413, _error_body(f"request body is larger than {limit} bytes",
                                       "body_too_large", "invalid_request_error"),
            )  # fmt: skip
            return
        if body is None:  # the client left before sending its request
            return
        record: ProxyRequest | None = None
        if operation is not None and scope["method"] == "POST":
            record = request_of(operation, body, arrival)
        headers = self._upstream_headers(scope["headers"])
        if self._traced:
            propagate.inject(headers)  # our SERVER span's context, via the configured propagators
        url = self.config.base + scope["path"]
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        self._in_flight += 1
        try:
            await self._exchange(scope, receive, send, url, headers, body, record, arrival, span,
                                 request_span)  # fmt: skip
        finally:
            self._in_flight -= 1

    def _upstream_headers(self, raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
        headers: dict[str, str] = {}
        for key, value in raw:
            if key in _HOP_BY_HOP:
                continue
            name = key.decode("latin-1")
            text = value.decode("latin-1")
            headers[name] = f"{headers[name]}, {text}" if name in headers else text
        return headers

    async def _exchange(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        url: str,
        headers: dict[str, str],
        body: bytes,
        record: ProxyRequest | None,
        arrival: int,
        span: Span,
        request_span: RequestSpan | None,
    ) -> None:
        session = self._session
        assert session is not None, "TracingProxy.start() was not called"
        sent = perf_counter_ns()
        attrs = dict(self._upstream_attrs)
        try:
            response = await session.request(
                scope["method"], url, data=body, headers=headers, allow_redirects=False
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            status, code, message, failure = _upstream_failure(exc)
            if request_span is not None:
                request_span.add_child(n.SPAN_UPSTREAM_HEADERS, wall_ns(sent),
                                       wall_ns(perf_counter_ns()), attrs)  # fmt: skip
            span.set_attribute(n.ERROR_TYPE, failure)
            await _respond(send, status, _error_body(message, code))
            self._finish(span, record, None, failure)
            return
        headed = perf_counter_ns()
        status = response.status
        stream = response.headers.get("content-type", "").startswith("text/event-stream")
        encoded = "content-encoding" in response.headers
        watcher: SseWatcher | JsonWatcher | None = None
        if record is not None and not encoded:
            watcher = SseWatcher() if stream else JsonWatcher()
        error_type: str | None = str(status) if status >= 400 else None
        client_gone: asyncio.Task[Message] | None = None
        failed_mid_body: str | None = None
        cancelled = False
        try:
            # content-length goes too: the body is re-chunked, and cut short if the upstream fails
            out_headers = [(k, v) for k, v in response.raw_headers if k.lower() not in _HOP_BY_HOP]
            await send({"type": "http.response.start", "status": status, "headers": out_headers})
            if stream:  # a client that leaves mid-stream stops the upstream at once
                client_gone = asyncio.ensure_future(receive())
                client_gone.add_done_callback(lambda task: _abort_on_leave(task, response))
            try:
                async for chunk in response.content.iter_any():
                    if watcher is not None:
                        watcher.feed(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    if client_gone is not None and client_gone.done():
                        break
                if client_gone is not None and client_gone.done():
                    cancelled = True  # the client left (the upstream may have ended quietly)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if client_gone is not None and client_gone.done() and not client_gone.cancelled():
                    cancelled = True  # we closed the upstream because the client left
                    raise _ClientLeft from exc
                failed_mid_body = (
                    "TimeoutError" if isinstance(exc, TimeoutError) else type(exc).__name__
                )
                error_type = failed_mid_body
                if stream:
                    code = "upstream_timeout" if failed_mid_body == "TimeoutError" else (
                        "upstream_reset")  # fmt: skip
                    event = _error_body("the upstream server stopped mid-stream", code)
                    await send({"type": "http.response.body",
                                "body": b"data: " + event + b"\n\ndata: [DONE]\n\n",
                                "more_body": True})  # fmt: skip
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except _ClientLeft:
            pass
        finally:
            ended = perf_counter_ns()
            if failed_mid_body is not None or cancelled:
                response.close()  # the connection is not reusable; the upstream sees the abort
            else:
                response.release()
            if client_gone is not None and not client_gone.done():
                client_gone.cancel()
            facts = None
            if watcher is not None:
                watcher.close()
                facts = watcher.facts
            if request_span is not None:
                self._children(request_span, attrs, sent, headed, ended, facts, status)
            if error_type is None and facts is not None and facts.error_type is not None:
                error_type = facts.error_type
            if error_type is not None:
                span.set_attribute(n.ERROR_TYPE, error_type)
            if record is not None:
                record.cancelled = cancelled
            self._finish(span, record, facts, error_type)

    def _children(
        self,
        span: RequestSpan,
        attrs: dict[str, AttributeValue],
        sent: int,
        headed: int,
        ended: int,
        facts: ResponseFacts | None,
        status: int,
    ) -> None:
        span.add_child(n.SPAN_UPSTREAM_HEADERS, wall_ns(sent), wall_ns(headed),
                       {**attrs, n.HTTP_RESPONSE_STATUS_CODE: status})  # fmt: skip
        if facts is not None and facts.first_output_ns:
            first = wall_ns(facts.first_output_ns)
            span.add_child(n.SPAN_FIRST_OUTPUT, wall_ns(headed), first, {})
            span.add_child(n.SPAN_STREAMING, first, wall_ns(ended),
                           {n.ATTR_OUTPUT_CHUNKS: facts.output_chunks})  # fmt: skip

    def _finish(
        self,
        span: Span,
        request: ProxyRequest | None,
        facts: ResponseFacts | None,
        error_type: str | None,
    ) -> None:
        """GenAI attributes on the SERVER span, then the metrics (exemplar: a kept trace)."""
        if request is None:
            if error_type is not None:
                self.metrics.error(error_type)
            return
        try:
            facts = facts or ResponseFacts()
            output_tokens = (
                facts.completion_tokens
                if facts.completion_tokens is not None
                else facts.output_chunks
            )
            if span.is_recording():
                span.set_attributes(
                    response_attributes(request, facts, error_type, self.config.base)
                )
            self.metrics.observe_request(
                request.model,
                request.operation,
                arrival_ns=request.arrival_ns,
                first_output_ns=facts.first_output_ns,
                last_output_ns=facts.last_output_ns,
                prompt_tokens=facts.prompt_tokens or 0,
                output_tokens=output_tokens,
                finish_reason=facts.finish_reason,
                error_type=error_type,
                cancelled=request.cancelled,
                exemplar=_exemplar(span),
            )
        except Exception:  # instrumentation never fails a request
            logger.exception("recording telemetry failed")


def _exemplar(span: Span) -> dict[str, str] | None:
    """``{"trace_id": ...}`` when the request's trace is exported (so the link resolves)."""
    if isinstance(span, RequestSpan):
        keep = span.decide().keep
    else:
        context = span.get_span_context()
        keep = context.is_valid and context.trace_flags.sampled
    if not keep:
        return None
    return {n.EXEMPLAR_TRACE_ID: format(span.get_span_context().trace_id, "032x")}


@dataclass(frozen=True, slots=True)
class _Load:
    queue_depth: int
    running: int
    batch_cap: int | None = None


class _TooLarge(Exception):
    pass


class _ClientLeft(Exception):
    pass


def _abort_on_leave(task: asyncio.Task[Message], response: aiohttp.ClientResponse) -> None:
    """``receive()`` answered while we stream: the client disconnected; stop the upstream."""
    if not task.cancelled() and task.result().get("type") == "http.disconnect":
        response.close()


def create_proxy_app(
    config: ProxyConfig,
    tracing: Tracing | None,
    registry: CollectorRegistry | None = None,
) -> ASGIApp:
    """The proxy's ASGI app: :class:`TracingProxy` inside the SERVER-span middleware
    (``tracing=None``: no spans, metrics only). Export counters join ``registry``."""
    registry = registry if registry is not None else CollectorRegistry()
    proxy = TracingProxy(config, registry=registry, traced=tracing is not None)
    if tracing is None:
        return proxy
    registry.register(ExportMetrics(tracing.exporter, tracing.outlet.sampler))
    return ServerSpanMiddleware(
        proxy,
        tracing.outlet,
        routes=(*GENERATION_PATHS, "/v1/models"),
        excluded_paths=("/metrics", "/health"),
    )
