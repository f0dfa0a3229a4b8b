"""The streaming client: one pooled aiohttp session, server-sent events parsed as they arrive,
each request in a CLIENT span whose W3C ``traceparent`` goes out with it.

Why aiohttp and not httpx: measured (``benchmarks/bench_loadgen_http_clients.py``, closed loop,
64 in flight, 64 one-token SSE chunks per response, zero-cost server, one client core),
aiohttp read streams at ~1,850 requests/s for 0.39 ms of client CPU per request, httpx (h11)
at ~80 requests/s for 6.1 ms: httpx's pure-Python HTTP/1.1 layer costs 15x the CPU per
request, and a load generator's CPU per request is its capacity. The session's read buffer is
4 MiB (aiohttp's default 256 KiB caps throughput on long contexts), and each read's SSE events
are parsed in one ``orjson`` call.

Metric definitions (design.md): TTFT is the first chunk that carries output of any kind
(content, reasoning, tool calls; a role-only first chunk does not count); E2E is the last such
chunk; chunk arrival times are taken when the bytes are read, so chunks that arrive in one read
share a timestamp. What counts as output, success and failure is :mod:`._stream`'s to say; no
response, however odd, raises out of :meth:`StreamingClient.send`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time

import aiohttp
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from open_autoglm.loadgen._endpoint import EndpointConfig
from open_autoglm.loadgen._errors import (
    Cancelled,
    ConnectError,
    HTTPStatusError,
    MalformedStream,
    ReadTimeout,
    RequestError,
    StreamDropped,
)
from open_autoglm.loadgen._records import RequestRecord
from open_autoglm.loadgen._stream import StreamState, server_message
from open_autoglm.loadgen._tokens import TokenCounter
from open_autoglm.loadgen._workloads import RequestSpec
from open_autoglm.telemetry import names

_perf_ns = time.perf_counter_ns
logger = logging.getLogger(__name__)


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
        self._server = endpoint.server_address
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
                    names.GEN_AI_PROVIDER_NAME: self.endpoint.provider,
                    names.GEN_AI_REQUEST_MODEL: self.model,
                    names.GEN_AI_REQUEST_MAX_TOKENS: spec.max_tokens,
                    names.GEN_AI_REQUEST_STREAM: spec.stream,
                    names.SERVER_ADDRESS: self._server[0],
                    names.SERVER_PORT: self._server[1],
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
        state = StreamState(self._chat, self.endpoint.max_event_bytes)
        sent_ns = _perf_ns()
        record.sent_unix_ns = time.time_ns()
        record.sent_s = (sent_ns - origin_ns) / 1e9
        response_started = False
        try:
            async with self._session.post(self._url, data=spec.body, headers=headers) as resp:
                response_started = True
                record.http_status = resp.status
                if resp.status >= 300:
                    raise HTTPStatusError(
                        resp.status, server_message(await resp.content.read(65536))
                    )
                try:
                    state.feed_stream_start(resp.content_type)
                    async for data in resp.content.iter_any():
                        state.feed(data, _perf_ns())
                    state.finish(_perf_ns())
                except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
                    # data the stream reader did not foresee: this request only
                    name = type(exc).__name__
                    raise MalformedStream(f"unexpected data ({name}: {exc})") from exc
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
        except Exception as exc:  # never out of the client: the run goes on, the record says why
            logger.warning("request %d failed unexpectedly", record.index, exc_info=True)
            _fail(record, _Unexpected(type(exc).__name__, str(exc)))
        finally:
            self._complete(record, state, spec, sent_ns, origin_ns, span)

    def _count(self, texts: list[str], chunks: int) -> int:
        """Tokens in ``texts``: exact with the model's tokenizer; the fallback estimate never
        counts fewer tokens than the chunks that carried them."""
        counted = self._counter.count("".join(texts))
        return counted if self._counter.exact else max(counted, chunks)

    def _complete(
        self,
        record: RequestRecord,
        state: StreamState,
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
        if state.answer_ns is not None:
            record.answer_ttft_s = (state.answer_ns - sent_ns) / 1e9
        record.streamed = state.streamed
        record.finish_reason = state.finish_reason
        record.input_tokens = state.prompt_tokens or spec.input_tokens
        if state.completion_tokens is not None:
            record.output_tokens = state.completion_tokens
            record.output_tokens_source = "usage"
        elif chunks:
            record.output_tokens = self._count(state.texts, len(chunks))
            record.output_tokens_source = "tokenizer"
        else:
            record.output_tokens = 0
        record.reasoning_tokens = state.reasoning_tokens
        if (
            record.reasoning_tokens is None
            and state.reasoning_texts
            and record.output_tokens_source == "tokenizer"
        ):
            record.reasoning_tokens = self._count(state.reasoning_texts, len(state.reasoning_texts))
        out = record.output_tokens
        # one JSON answer (not streamed): TTFT = E2E, no time per token to see
        ttft, e2e = record.ttft_s, record.e2e_s
        if ttft is not None and e2e is not None and state.streamed and out and out > 1:
            record.tpot_s = (e2e - ttft) / (out - 1)
        if span is None:
            return
        try:
            span.set_attribute(names.GEN_AI_USAGE_INPUT_TOKENS, record.input_tokens)
            span.set_attribute(names.GEN_AI_USAGE_OUTPUT_TOKENS, out)
            if record.ttft_s is not None:
                span.set_attribute(names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, record.ttft_s)
            if record.finish_reason:
                span.set_attribute(names.GEN_AI_RESPONSE_FINISH_REASONS, [record.finish_reason])
            if state.response_id:
                span.set_attribute(names.GEN_AI_RESPONSE_ID, state.response_id)
            if state.response_model is not None:
                span.set_attribute(names.GEN_AI_RESPONSE_MODEL, state.response_model)
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


class _Unexpected(RequestError):
    """An exception no rule foresaw; its type is the exception's class name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self._name = name

    @property
    def error_type(self) -> str:
        return self._name
