"""OTLP/HTTP receiver: ``POST /v1/traces``, protobuf or JSON, optionally gzip-compressed.

aiohttp (its C HTTP parser) on its own event loop in a background thread. On 512-span protobuf
batches its request handling costs a few percent of what flattening the spans costs (see
``benchmarks/bench_collector.py``), so a hand-written server would buy nothing measurable.

Answers follow the OTLP/HTTP specification: 200 with an ``ExportTraceServiceResponse`` (with
``partial_success`` when some spans were rejected), 400 for an undecodable body or one whose
every span has an invalid trace or span id (all zeros, missing, wrong length), 413 over the size
limit, 415 for an unknown ``Content-Type`` or ``Content-Encoding``, 503 with ``Retry-After``
when the writer's queue is full; error bodies are a ``google.rpc.Status`` in the request's
encoding.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from typing import Final

from aiohttp import web
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from open_autoglm.collector._decode import decode_json, decode_protobuf, decompress
from open_autoglm.collector._errors import (
    BodyTooLargeError,
    CollectorStartError,
    DecodeError,
    UnsupportedMediaTypeError,
)
from open_autoglm.collector._ingest import Ingest

logger = logging.getLogger(__name__)

TRACES_PATH: Final = "/v1/traces"
PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
_PROTOBUF_TYPES: Final = frozenset({PROTOBUF, "application/protobuf"})
_STOP_TIMEOUT_S: Final = 10.0


class HttpReceiver:
    """Serves OTLP/HTTP on ``host:port`` (port 0: a free one) from a background thread."""

    def __init__(self, ingest: Ingest, host: str, port: int, max_body_bytes: int) -> None:
        self._ingest = ingest
        self._host = host
        self._requested_port = port
        self._limit = max_body_bytes
        self._socket: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the HTTP receiver is not started")
        port: int = self._socket.getsockname()[1]
        return port

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._requested_port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise CollectorStartError(
                f"cannot listen for OTLP/HTTP on {self._host}:{self._requested_port}: {exc}"
            ) from exc
        sock.setblocking(False)
        self._socket = sock
        self._thread = threading.Thread(target=self._serve, name="otlp-http", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise CollectorStartError(f"the OTLP/HTTP receiver failed: {self._error}")

    def stop(self) -> None:
        """Finish requests in flight (their spans are queued), then close the socket."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
        if self._socket is not None:
            self._socket.close()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._start_site())
        except Exception as exc:  # reported to start(); the thread ends
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.close()

    async def _start_site(self) -> None:
        app = web.Application(client_max_size=self._limit)
        app.router.add_post(TRACES_PATH, self._handle)
        runner = web.AppRunner(
            app,
            access_log=None,
            auto_decompress=False,  # gzip is undone by us, with a limit on the output
            shutdown_timeout=_STOP_TIMEOUT_S,
            handle_signals=False,
        )
        await runner.setup()
        assert self._socket is not None
        await web.SockSite(runner, self._socket).start()
        self._runner = runner

    async def _handle(self, request: web.Request) -> web.Response:
        content_type = request.content_type
        is_json = content_type == JSON
        if not is_json and content_type not in _PROTOBUF_TYPES:
            return _status(
                415,
                f"unsupported Content-Type {content_type!r}; use {PROTOBUF} or {JSON}",
                is_json=True,
            )
        length = request.content_length
        if length is not None and length > self._limit:
            return _status(413, _too_large(self._limit), is_json, close=True)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _status(413, _too_large(self._limit), is_json, close=True)
        try:
            body = decompress(body, request.headers.get("Content-Encoding", ""), self._limit)
            message = decode_json(body) if is_json else decode_protobuf(body)
        except BodyTooLargeError as exc:
            return _status(413, str(exc), is_json)
        except UnsupportedMediaTypeError as exc:
            return _status(415, str(exc), is_json)
        except DecodeError as exc:
            return _status(400, str(exc), is_json)
        result = self._ingest.export(message, "http")
        if result.invalid:
            return _status(400, result.error_message, is_json)
        if result.refused:
            response = _status(503, "span store queue is full; retry later", is_json)
            response.headers["Retry-After"] = "1"
            return response
        answer = result.response()
        if is_json:
            text = json_format.MessageToJson(answer, indent=None)
            return web.Response(body=text.encode(), content_type=JSON)
        return web.Response(body=answer.SerializeToString(), content_type=PROTOBUF)


def _too_large(limit: int) -> str:
    return f"request body is over the limit of {limit} bytes"


_CODES: Final = {
    400: code_pb2.INVALID_ARGUMENT,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    503: code_pb2.UNAVAILABLE,
}


def _status(http_status: int, message: str, is_json: bool, *, close: bool = False) -> web.Response:
    status = status_pb2.Status(code=_CODES.get(http_status, code_pb2.UNKNOWN), message=message)
    if is_json:
        body = json.dumps({"code": status.code, "message": message}).encode()
        response = web.Response(status=http_status, body=body, content_type=JSON)
    else:
        response = web.Response(
            status=http_status, body=status.SerializeToString(), content_type=PROTOBUF
        )
    if close:
        response.force_close()
    return response
