"""Servers for the load generator's integration tests, all on 127.0.0.1 and port 0.

``crafted`` is an aiohttp server whose routes send hand-made streams (role-only first chunk,
multi-token chunks, errors, drops, stalls); ``otlp_receiver`` collects OTLP/HTTP spans.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import pytest
from aiohttp import web
from loadgen_helpers import Crafted, OtlpReceiver, chat_chunk, delta_chunk, usage_chunk
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


async def _stream(
    request: web.Request, parts: Sequence[tuple[float, str | bytes]]
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for delay, text in parts:
        if delay:
            await asyncio.sleep(delay)
        await resp.write(text if isinstance(text, bytes) else text.encode())
    await resp.write_eof()
    return resp


def _routes(state: Crafted) -> dict[str, Callable[[web.Request], Any]]:
    async def role_first(request: web.Request) -> web.StreamResponse:
        return await _stream(request, [
            (0, chat_chunk(role=True)), (0.15, chat_chunk("Hello")),
            (0.02, chat_chunk(" world", finish="stop")), (0, usage_chunk(5, 2)),
            (0, "data: [DONE]\n\n")])  # fmt: skip

    async def multi_token(request: web.Request) -> web.StreamResponse:
        return await _stream(request, [
            (0.02, chat_chunk("one two three")), (0.05, chat_chunk(" four five six")),
            (0.05, chat_chunk(" seven eight nine", finish="length")), (0, usage_chunk(7, 9)),
            (0, "data: [DONE]\n\n")])  # fmt: skip

    async def one_token(request: web.Request) -> web.StreamResponse:
        return await _stream(request, [
            (0.01, chat_chunk("Yes", finish="stop")), (0, usage_chunk(3, 1)),
            (0, "data: [DONE]\n\n")])  # fmt: skip

    async def no_usage(request: web.Request) -> web.StreamResponse:
        return await _stream(request, [
            (0, chat_chunk("Hello,")), (0.01, chat_chunk(" world!", finish="stop")),
            (0, "data: [DONE]\n\n")])  # fmt: skip

    async def crlf(request: web.Request) -> web.StreamResponse:
        text = chat_chunk("a b") + chat_chunk(" c", finish="stop") + "data: [DONE]\n\n"
        return await _stream(request, [(0, text.replace("\n", "\r\n"))])

    async def server_error(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "boom", "type": "server_error"}},
                                 status=500)  # fmt: skip

    async def bad_request(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "bad", "type": "invalid"}}, status=400)

    async def drop(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(chat_chunk("partial").encode())
        await asyncio.sleep(0.01)
        assert request.transport is not None
        request.transport.close()  # no terminating chunk: the client sees a broken stream
        return resp

    async def malformed(request: web.Request) -> web.StreamResponse:
        return await _stream(request, [(0, chat_chunk("ok")), (0, "data: {not json\n\n")])

    async def stall(request: web.Request) -> web.StreamResponse:
        return await _stream(request, [(0, chat_chunk("then")), (30, "data: [DONE]\n\n")])

    async def stream_error(request: web.Request) -> web.StreamResponse:
        err = {"error": {"message": "engine died", "type": "server_error"}}
        return await _stream(request, [(0, f"data: {json.dumps(err)}\n\n")])

    async def no_done(request: web.Request) -> web.StreamResponse:
        return await _stream(request, [(0, chat_chunk("cut"))])

    async def completions(request: web.Request) -> web.StreamResponse:
        def chunk(text: str, finish: str | None = None) -> str:
            body = {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}
            return f"data: {json.dumps(body)}\n\n"

        return await _stream(request, [
            (0.02, chunk("alpha")), (0.02, chunk(" beta", "length")), (0, usage_chunk(4, 2)),
            (0, "data: [DONE]\n\n")])  # fmt: skip

    # ---- the kinds of stream of issue 13: output of every kind, ends, odd data

    async def reasoning_field(request: web.Request) -> web.StreamResponse:
        return await _stream(request, [
            (0, chat_chunk("", role=True)),
            *((0.03, delta_chunk(reasoning=f" think{i}")) for i in range(5)),
            *((0.03, chat_chunk(f" w{i}")) for i in range(2)),
            (0, chat_chunk(finish="stop")), (0, usage_chunk(10, 7)),
            (0, "data: [DONE]\n\n")])  # fmt: skip

    async def tool_calls(request: web.Request) -> web.StreamResponse:
        first = {"index": 0, "id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": ""}}  # fmt: skip
        args = ['{"loc', 'ation"', ': "Paris', '"}']
        return await _stream(request, [
            (0, chat_chunk(role=True)), (0.03, delta_chunk(content=None, tool_calls=[first])),
            *((0.03, delta_chunk(tool_calls=[{"index": 0, "function": {"arguments": a}}]))
              for a in args),
            (0, chat_chunk(finish="tool_calls")), (0, usage_chunk(10, 12)),
            (0, "data: [DONE]\n\n")])  # fmt: skip

    async def aborted(request: web.Request) -> web.StreamResponse:
        return await _stream(request, [
            (0, chat_chunk(role=True)), (0.03, chat_chunk(" w0")), (0.03, chat_chunk(" w1")),
            (0, chat_chunk(finish="abort")), (0, usage_chunk(10, 2)),
            (0, "data: [DONE]\n\n")])  # fmt: skip

    async def error_event(request: web.Request) -> web.StreamResponse:
        detail = "Requested sample logprobs of 21, which is greater than max allowed: 20"
        return await _stream(request, [
            (0, chat_chunk(role=True)),
            (0.02, f"event: error\ndata: {json.dumps({'code': 400, 'details': detail})}\n\n"),
            (0, "data: [DONE]\n\n")])  # fmt: skip

    async def json_error_200(request: web.Request) -> web.Response:
        body = {"error": {"message": "model overloaded, try later", "type": "server_error",
                          "code": 503}}  # fmt: skip
        return web.json_response(body, status=200)

    async def not_streamed(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        body = {"id": "x", "object": "chat.completion", "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "one two three"}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3}}  # fmt: skip
        return web.json_response(body)

    async def bom(request: web.Request) -> web.StreamResponse:
        return await _stream(request, [
            (0, b"\xef\xbb\xbf" + chat_chunk(" w0", role=True).encode()),
            *((0.03, chat_chunk(f" w{i}")) for i in range(1, 5)),
            (0, chat_chunk(finish="stop")), (0, "data: [DONE]\n\n")])  # fmt: skip

    async def crlf_split(request: web.Request) -> web.StreamResponse:
        events = [chat_chunk("", role=True), *(chat_chunk(f" w{i}") for i in range(5)),
                  chat_chunk(finish="stop"), usage_chunk(10, 5)]  # fmt: skip
        parts: list[tuple[float, str]] = []
        for e in events:  # every event ends "\r\n\r" in one read and "\n" in the next
            parts += [(0.01, e.replace("\n\n", "\r\n\r")), (0.005, "\n")]
        return await _stream(request, [*parts, (0, "data: [DONE]\r\n\r\n")])

    async def odd_every_other(request: web.Request) -> web.StreamResponse:
        odd = len(state.seen) % 2 == 0  # the 2nd, 4th ... request sees an odd chunk
        middle = 'data: {"choices": [1]}\n\n' if odd else chat_chunk(" fine")
        return await _stream(request, [
            (0, chat_chunk("a")), (0.01, middle), (0, chat_chunk(finish="stop")),
            (0, "data: [DONE]\n\n")])  # fmt: skip

    async def error_null(request: web.Request) -> web.StreamResponse:
        def chunk(text: str, finish: str | None = None) -> str:
            body = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
                    "error": None}  # fmt: skip
            return f"data: {json.dumps(body)}\n\n"

        return await _stream(request, [(0, chunk("a")), (0.01, chunk(" b", "stop")),
                                       (0, "data: [DONE]\n\n")])  # fmt: skip

    async def cjk(request: web.Request) -> web.StreamResponse:
        return await _stream(request, [
            (0, chat_chunk("", role=True)), *((0.02, chat_chunk("你好")) for _ in range(10)),
            (0, chat_chunk(finish="stop")), (0, "data: [DONE]\n\n")])  # fmt: skip

    async def huge_every_other(request: web.Request) -> web.StreamResponse:
        huge = len(state.seen) % 2 == 0
        tail: str | bytes = b"data: " + b"x" * (2 * 1024 * 1024) if huge else chat_chunk(" ok")
        return await _stream(request, [
            (0, chat_chunk("a")), (0.01, tail), (0, chat_chunk(finish="stop")),
            (0, "data: [DONE]\n\n")])  # fmt: skip

    return {name: fn for name, fn in locals().items() if callable(fn)}


def _app(state: Crafted) -> web.Application:
    app = web.Application()

    def wrap(handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def recorded(request: web.Request) -> Any:
            body = await request.read()
            state.seen.append({"headers": dict(request.headers), "body": json.loads(body),
                               "path": request.path})  # fmt: skip
            return await handler(request)

        return recorded

    for name, handler in _routes(state).items():
        app.router.add_post(f"/{name}/v1/chat/completions", wrap(handler))
        app.router.add_post(f"/{name}/v1/completions", wrap(handler))
    return app


class _ThreadServer:
    """An aiohttp app served from its own thread and loop, so sync tests (and the CLI in
    the test's thread) can use it too. Ready when ``start`` returns: the socket is bound."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def start(self) -> str:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    async def _cancel_rest() -> None:
        """Handlers still running (a stalled stream) end here, not with a destroyed loop."""
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        asyncio.run_coroutine_threadsafe(self._cancel_rest(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def crafted() -> Iterator[Crafted]:
    state = Crafted(base="")
    server = _ThreadServer(_app(state))
    state.base = server.start()
    yield state
    server.stop()


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """A minimal OTLP/HTTP protobuf receiver on port 0 (``/v1/traces``)."""
    state = OtlpReceiver(endpoint="")

    async def traces(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        state.requests.append(message)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    server = _ThreadServer(app)
    state.endpoint = server.start()
    yield state
    server.stop()


@pytest.fixture
async def unused_port_url() -> AsyncIterator[str]:
    """A loopback URL where nothing listens: bind port 0, note it, close it."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return f"http://127.0.0.1:{port}"
