"""The streaming client: one pooled aiohttp session, server-sent events parsed as they arrive,
each request in a CLIENT span whose W3C ``traceparent`` goes out with it.

Why aiohttp and not httpx: measured (``benchmarks/bench_loadgen_http_clients.py``, closed loop,
64 in flight, 64 one-token SSE chunks per response, zero-cost server, one client core),
aiohttp read streams at ~1,850 requests/s for 0.39 ms of client CPU per request, httpx (h11)
at ~80 requests/s for 6.1 ms: httpx's pure-Python HTTP/1.1 layer costs 15x the CPU per
request, and a load generator's CPU per request is its capacity. The session's read buffer is
4 MiB (aiohttp's default 256 KiB caps throughput on long contexts), and each read's SSE events
are parsed in one ``orjson`` call.

Metric definitions (design.md): TTFT is the first chunk that carries generated text (a
role-only first chunk does not count); E2E is the last such chunk; chunk arrival times are
taken when the bytes are read, so chunks that arrive in one read share a timestamp.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

import aiohttp
import orjson
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from open_autoglm.loadgen._endpoint import EndpointConfig
from open_autoglm.loadgen._errors import (
    Cancelled,
    ConnectError,
    HTTPStatusError,
    IncompleteStream,
    MalformedStream,
    ReadTimeout,
    RequestError,
    StreamDropped,
    StreamError,
)
from open_autoglm.loadgen._records import RequestRecord
from open_autoglm.loadgen._tokens import TokenCounter
from open_autoglm.loadgen._workloads import RequestSpec
from open_autoglm.telemetry import names

_perf_ns = time.perf_counter_ns


class StreamingClient:
    """Sends :class:`RequestSpec` bodies to one endpoint and fills :class:`RequestRecord`."""

    def __init__(
        self,
        endpoint: EndpointConfig,
        model: str,
        tracer: Tracer | None,
        counter: TokenCounter,
        *,
        connections: int = 0,
    ) -> None:
        self.endpoint = endpoint
        self.model = model
        self._tracer = tracer
        # Without export a CLIENT span would cost ~50 us of CPU per request for nothing; the
        # ids still go out in traceparent. Its own generator, never the global random stream.
        self._ids = random.Random(int.from_bytes(os.urandom(16), "big"))
        self._counter = counter
        self._url = endpoint.request_url
        self._headers = endpoint.request_headers()
        self._span_name = names.client_span_name(endpoint.operation, model)
        self._chat = endpoint.api == "chat"
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> StreamingClient:
        connector = aiohttp.TCPConnector(
            limit=self._connections, limit_per_host=0, ttl_dns_cache=None, keepalive_timeout=60
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.endpoint.timeout_s),
            read_bufsize=self.endpoint.read_buffer_bytes,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, spec: RequestSpec, record: RequestRecord, origin_ns: int) -> None:
        """Send one request now; ``origin_ns`` is the level's start on ``perf_counter_ns``."""
        assert self._session is not None, "use the client as an async context manager"
        span: Span | None = None
        if self._tracer is not None:
            span = self._tracer.start_span(
                self._span_name,
                kind=SpanKind.CLIENT,
                attributes={
                    names.GEN_AI_OPERATION_NAME: self.endpoint.operation,
                    names.GEN_AI_REQUEST_MODEL: self.model,
                    names.GEN_AI_REQUEST_MAX_TOKENS: spec.max_tokens,
                    names.ATTR_LEVEL: record.level,
                },
            )
            ctx = span.get_span_context()
            trace_id, span_id, flags = ctx.trace_id, ctx.span_id, int(ctx.trace_flags)
        else:  # nothing exported: ids alone, for traceparent and the record (W3C: nonzero)
            trace_id = self._ids.getrandbits(128) or 1
            span_id, flags = self._ids.getrandbits(64) or 1, 1
        record.trace_id = f"{trace_id:032x}"
        headers = dict(self._headers)
        headers["traceparent"] = f"00-{record.trace_id}-{span_id:016x}-{flags:02x}"
        state = _StreamState(self._chat)
        sent_ns = _perf_ns()
        record.sent_unix_ns = time.time_ns()
        record.sent_s = (sent_ns - origin_ns) / 1e9
        response_started = False
        try:
            async with self._session.post(self._url, data=spec.body, headers=headers) as resp:
                response_started = True
                record.http_status = resp.status
                if resp.status >= 300:
                    text = (await resp.read()).decode("utf-8", "replace")
                    raise HTTPStatusError(resp.status, text)
                state.feed_stream_start()
                async for data in resp.content.iter_any():
                    state.feed(data, _perf_ns())
                state.finish()
        except RequestError as exc:
            _fail(record, exc)
        except asyncio.CancelledError:
            _fail(record, Cancelled("the run was interrupted"), status="cancelled")
            raise
        except TimeoutError:
            _fail(record, ReadTimeout(f"no complete response in {self.endpoint.timeout_s:g} s"))
        except aiohttp.ClientConnectorError as exc:
            _fail(record, ConnectError(str(exc)))
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, OSError) as exc:
            err: RequestError = (
                StreamDropped(str(exc) or type(exc).__name__)
                if response_started
                else ConnectError(str(exc) or type(exc).__name__)
            )
            _fail(record, err)
        except aiohttp.ClientError as exc:
            _fail(record, ConnectError(f"{type(exc).__name__}: {exc}"))
        finally:
            self._complete(record, state, spec, sent_ns, origin_ns, span)

    def _complete(
        self,
        record: RequestRecord,
        state: _StreamState,
        spec: RequestSpec,
        sent_ns: int,
        origin_ns: int,
        span: Span | None,
    ) -> None:
        end_ns = _perf_ns()
        record.done_s = (end_ns - origin_ns) / 1e9
        chunks = state.chunk_ns
        if chunks:
            record.chunk_offsets_s = [(t - sent_ns) / 1e9 for t in chunks]
            record.ttft_s = record.chunk_offsets_s[0]
            record.e2e_s = record.chunk_offsets_s[-1]
        record.finish_reason = state.finish_reason
        record.input_tokens = state.prompt_tokens or spec.input_tokens
        if state.completion_tokens is not None:
            record.output_tokens = state.completion_tokens
            record.output_tokens_source = "usage"
        elif chunks:
            record.output_tokens = self._counter.count("".join(state.texts))
            record.output_tokens_source = "tokenizer"
        else:
            record.output_tokens = 0
        out = record.output_tokens
        if record.ttft_s is not None and record.e2e_s is not None and out and out > 1:
            record.tpot_s = (record.e2e_s - record.ttft_s) / (out - 1)
        if span is None:
            return
        try:
            span.set_attribute(names.GEN_AI_USAGE_INPUT_TOKENS, record.input_tokens)
            span.set_attribute(names.GEN_AI_USAGE_OUTPUT_TOKENS, out)
            if record.ttft_s is not None:
                span.set_attribute(names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, record.ttft_s)
            if record.finish_reason:
                span.set_attribute(names.GEN_AI_RESPONSE_FINISH_REASONS, [record.finish_reason])
            if record.error_type is not None:
                span.set_attribute(names.ERROR_TYPE, record.error_type)
                span.set_status(Status(StatusCode.ERROR, record.error_type))
            span.end(end_time=record.sent_unix_ns + (end_ns - sent_ns))
        except Exception:  # instrumentation never fails a request
            pass


def _fail(record: RequestRecord, exc: RequestError, status: str = "error") -> None:
    record.status = "cancelled" if status == "cancelled" else "error"
    record.error_type = exc.error_type
    record.error = str(exc)[:300]


class _StreamState:
    """Incremental SSE parser for one response; keeps only what the metrics need."""

    __slots__ = (
        "_buffer",
        "_chat",
        "chunk_ns",
        "completion_tokens",
        "done",
        "finish_reason",
        "prompt_tokens",
        "texts",
    )

    def __init__(self, chat: bool) -> None:
        self._chat = chat
        self._buffer = b""
        self.chunk_ns: list[int] = []
        self.texts: list[str] = []
        self.done = False
        self.finish_reason: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None

    def feed_stream_start(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes, now_ns: int) -> None:
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        buffer = self._buffer + data if self._buffer else data
        events = buffer.split(b"\n\n")
        self._buffer = events.pop()
        if not events:
            return
        if events[-1] == b"data: [DONE]":
            self.done = True
            events.pop()
        # Fast path: every event one "data: {...}" line; parse them all in one orjson call
        # (one JSON array). Anything else, or a parse error, takes the event-by-event path,
        # which names the bad event.
        payloads = [e[6:] for e in events if e[:7] == b"data: {"]
        joined = b",".join(payloads)
        if len(payloads) == len(events) and b"\n" not in joined:
            try:
                messages = orjson.loads(b"[" + joined + b"]")
            except orjson.JSONDecodeError:
                pass
            else:
                self._messages(messages, now_ns)
                return
        for event in events:
            self._event(event, now_ns)

    def finish(self) -> None:
        if self._buffer.strip():
            self._event(self._buffer, time.perf_counter_ns())
            self._buffer = b""
        if not self.done and self.finish_reason is None:
            raise IncompleteStream("the stream ended without [DONE] or a finish reason")

    def _event(self, event: bytes, now_ns: int) -> None:
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                if line and not line.startswith(b":") and b":" not in line:
                    raise MalformedStream(f"not a server-sent event line: {line[:80]!r}")
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
                continue
            if not payload:
                continue
            try:
                message = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise MalformedStream(f"data is not JSON: {payload[:80]!r}") from None
            self._messages([message], now_ns)

    def _messages(self, messages: list[Any], now_ns: int) -> None:
        """Take what the metrics need from parsed chunks (the hot loop, kept inline)."""
        chat, chunk_ns, texts = self._chat, self.chunk_ns, self.texts
        for message in messages:
            if type(message) is not dict:
                raise MalformedStream(f"data is not a JSON object: {str(message)[:80]}")
            if "error" in message:
                error = message["error"]
                text = error.get("message", "") if isinstance(error, dict) else str(error)
                raise StreamError(f"the server sent an error in the stream: {text[:200]}")
            choices = message.get("choices")
            if choices:
                choice = choices[0]
                if chat:
                    delta = choice.get("delta") or {}
                    text = delta.get("content") or delta.get("reasoning_content")
                else:
                    text = choice.get("text")
                if text:
                    chunk_ns.append(now_ns)
                    texts.append(text)
                reason = choice.get("finish_reason")
                if reason:
                    self.finish_reason = reason
            usage = message.get("usage")
            if usage:
                self.prompt_tokens = usage.get("prompt_tokens", self.prompt_tokens)
                self.completion_tokens = usage.get("completion_tokens", self.completion_tokens)
