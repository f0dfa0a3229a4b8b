"""OTLP/gRPC receiver: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

vLLM's tracing exports OTLP over gRPC by default. The handler takes the raw request bytes
(no deserializer) so both receivers share one decode path; gRPC itself handles compression
and the message size limit (``RESOURCE_EXHAUSTED``).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import grpc

from open_autoglm.collector._decode import decode_protobuf
from open_autoglm.collector._errors import CollectorStartError, DecodeError
from open_autoglm.collector._ingest import Ingest

logger = logging.getLogger(__name__)

SERVICE: Final = "opentelemetry.proto.collector.trace.v1.TraceService"
_STOP_GRACE_S: Final = 10.0


class GrpcReceiver:
    """Serves OTLP/gRPC on ``host:port`` (port 0: a free one) with a small thread pool."""

    def __init__(
        self, ingest: Ingest, host: str, port: int, max_body_bytes: int, workers: int = 4
    ) -> None:
        self._ingest = ingest
        self._address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._limit = max_body_bytes
        self._workers = workers
        self._server: Any = None
        self._port = 0

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the gRPC receiver is not started")
        return self._port

    def start(self) -> None:
        server = grpc.server(
            ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="otlp-grpc"),
            options=[
                ("grpc.max_receive_message_length", self._limit),
                ("grpc.so_reuseport", 0),
            ],
        )
        handler = grpc.unary_unary_rpc_method_handler(self._export)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),)
        )
        try:
            port = server.add_insecure_port(self._address)
        except RuntimeError as exc:
            raise CollectorStartError(
                f"cannot listen for OTLP/gRPC on {self._address}: {exc}"
            ) from exc
        if not port:
            raise CollectorStartError(f"cannot listen for OTLP/gRPC on {self._address}")
        server.start()
        self._server = server
        self._port = port

    def stop(self) -> None:
        """Finish calls in flight (their spans are queued), then stop listening."""
        if self._server is not None:
            self._server.stop(_STOP_GRACE_S).wait()
            self._server = None

    def _export(self, body: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            message = decode_protobuf(body)
        except DecodeError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        result = self._ingest.export(message, "grpc")
        if result.invalid:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, result.error_message)
        if result.refused:
            context.abort(grpc.StatusCode.UNAVAILABLE, "span store queue is full; retry later")
        response: bytes = result.response().SerializeToString()
        return response
