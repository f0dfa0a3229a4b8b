"""Servers for the load generator's integration tests, all on 127.0.0.1 and port 0.

``crafted`` is an aiohttp server whose routes send hand-made streams (role-only first chunk,
multi-token chunks, errors, drops, stalls); ``otlp_receiver`` collects OTLP/HTTP spans.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from loadgen_helpers import Crafted, OtlpReceiver, chat_chunk, usage_chunk
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


async def _stream(request: web.Request, parts: list[tuple[float, str]]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for delay, text in parts:
        if delay:
            await asyncio.sleep(delay)
        await resp.write(text.encode())
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

    async def one_in_three_fails(request: web.Request) -> web.StreamResponse | web.Response:
        if len(state.seen) % 3 == 0:  # the 3rd, 6th, ... request this server has seen
            return await server_error(request)
        return await one_token(request)

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
