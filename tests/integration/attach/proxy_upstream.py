"""A crafted OpenAI-compatible upstream (aiohttp in a thread) for the proxy's tests:
normal, reset mid-stream, stalled, error event, 429."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def chunk(text: str, finish: str | None = None) -> bytes:
    payload = {
        "id": "chatcmpl-crafted",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "crafted",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }
    return f"data: {json.dumps(payload)}\n\n".encode()


@dataclass
class Upstream:
    """What the crafted upstream saw: request headers per request, in order."""

    url: str = ""
    seen: list[dict[str, str]] = field(default_factory=list)


def crafted_app(state: Upstream) -> web.Application:
    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        state.seen.append({k.lower(): v for k, v in request.headers.items()})
        mode = body["model"]
        if mode == "echo":
            return web.json_response(
                {
                    "id": "chatcmpl-echo",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "echo",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "hi"},
                         "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                }
            )  # fmt: skip
        if mode == "refuse-429":
            return web.json_response(
                {"error": {"message": "busy", "type": "rate_limit_error", "code": None}},
                status=429,
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(chunk("first"))
        if mode == "reset":
            assert request.transport is not None
            request.transport.abort()  # the upstream process died mid-stream
            return response
        if mode == "stall":
            await asyncio.sleep(30)
        if mode == "error-event":
            await response.write(
                b'event: error\ndata: {"message": "engine died", "type": "engine_error"}\n\n'
            )
            return response
        await response.write(chunk(" second", "stop") + b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/v1/chat/completions", chat)
    return app


class ThreadServer:
    """An aiohttp app on its own loop and thread; ready when ``start`` returns."""

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

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        self.port = server.sockets[0].getsockname()[1]

    @staticmethod
    async def _cancel_rest() -> None:
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def stop(self) -> None:
        """Stop serving (the port closes); a second call does nothing."""
        if self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._runner = None
        asyncio.run_coroutine_threadsafe(self._cancel_rest(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
