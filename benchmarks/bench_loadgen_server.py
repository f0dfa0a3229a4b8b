"""A zero-cost OpenAI-compatible streaming server for measuring load-generator capacity.

It does no inference: each request is answered at once with ``max_tokens`` SSE chunks of one
token each (chat or completions shape), a ``usage`` chunk and ``[DONE]``, over HTTP/1.1
keep-alive with chunked transfer encoding. Raw asyncio protocol (uvloop where installed), so
that the client, not the server, is what runs out of CPU first. Benchmark use only.

    python benchmarks/bench_loadgen_server.py --port 0 --ready-file /tmp/ready.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from functools import lru_cache
from pathlib import Path

_MAX_TOKENS = re.compile(rb'"max(?:_completion)?_tokens"\s*:\s*(\d+)')


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


@lru_cache(maxsize=256)
def _response(chat: bool, tokens: int) -> bytes:
    """The whole HTTP response for one request, built once per (endpoint, length)."""
    parts = []
    for i in range(tokens):
        finish = "length" if i == tokens - 1 else None
        if chat:
            choice = {"index": 0, "delta": {"content": " tok"}, "finish_reason": finish}
            obj = {"id": "cmpl-0", "object": "chat.completion.chunk", "created": 0,
                   "model": "zero", "choices": [choice]}  # fmt: skip
        else:
            choice = {"index": 0, "text": " tok", "finish_reason": finish}
            obj = {"id": "cmpl-0", "object": "text_completion", "created": 0,
                   "model": "zero", "choices": [choice]}  # fmt: skip
        parts.append(_chunk(b"data: " + json.dumps(obj).encode() + b"\n\n"))
    usage = {"id": "cmpl-0", "choices": [], "model": "zero",
             "usage": {"prompt_tokens": 128, "completion_tokens": tokens,
                       "total_tokens": 128 + tokens}}  # fmt: skip
    parts.append(_chunk(b"data: " + json.dumps(usage).encode() + b"\n\n"))
    parts.append(_chunk(b"data: [DONE]\n\n"))
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
    )
    return head + b"".join(parts) + b"0\r\n\r\n"


_MODELS = json.dumps({"object": "list", "data": [{"id": "zero", "object": "model"}]}).encode()


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(self._buffer) < end + 4 + length:
                return
            body = self._buffer[end + 4 : end + 4 + length]
            self._buffer = self._buffer[end + 4 + length :]
            self._respond(head.split(b" ", 2), body)

    def _respond(self, request_line: list[bytes], body: bytes) -> None:
        assert self._transport is not None
        method, path = request_line[0], request_line[1]
        if method == b"GET":
            payload = _MODELS if path.endswith(b"/models") else b'{"status":"ok"}'
            self._transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(payload), payload)
            )
            return
        match = _MAX_TOKENS.search(body)
        tokens = int(match.group(1)) if match else 16
        self._transport.write(_response(path.endswith(b"/chat/completions"), max(tokens, 1)))


async def _serve(host: str, port: int, ready: Path | None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Protocol, host, port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": f"http://{host}:{bound}", "port": bound,
                                   "pid": os.getpid()}))  # fmt: skip
        tmp.replace(ready)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(_serve(args.host, args.port, args.ready_file))


if __name__ == "__main__":
    main()
