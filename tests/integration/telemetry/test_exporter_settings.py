"""The OTLP exporters honour the standard ``OTEL_EXPORTER_OTLP_*`` settings: seen by a capture
server on loopback (headers, gzip, timeout, a private CA over https)."""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from open_autoglm.telemetry import TracingConfig, make_exporter


@dataclass
class Capture:
    """Each request the capture server got: headers (lower-case names) and raw body."""

    url: str = ""
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    delay_s: float = 0.0


class _CaptureServer(ThreadingHTTPServer):
    # server_close() waits for the handlers: none outlives its test (a handler still sleeping
    # through ``delay_s`` wrote into a later test's captured stderr when its client was gone)
    daemon_threads = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # the client gave up: expected
            return
        super().handle_error(request, client_address)


@contextlib.contextmanager
def _capture_server(tls: ssl.SSLContext | None = None) -> Iterator[Capture]:
    state = Capture()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 5.0  # an idle keep-alive connection's thread does not outlive the test

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            time.sleep(state.delay_s)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = _CaptureServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def capture() -> Iterator[Capture]:
    with _capture_server() as state:
        yield state


def _spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("request"):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def _env(url: str, **extra: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": url, **extra}


@pytest.mark.parametrize("protocol", ["http/json", "http/protobuf"])
def test_headers_and_gzip_reach_the_collector(capture: Capture, protocol: str) -> None:
    env = _env(
        capture.url,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20sk-otlp,x-tenant=generic",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS="x-tenant=traces",  # the signal's own form wins
        OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
    )
    exporter = make_exporter(TracingConfig.from_env("svc", environ=env))
    assert exporter is not None
    assert exporter.export(_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()
    headers, body = capture.requests[-1]
    assert headers["authorization"] == "Bearer sk-otlp"
    assert headers["x-tenant"] == "traces"
    assert headers["content-encoding"] == "gzip"
    payload = gzip.decompress(body)
    if protocol == "http/json":
        names = [s["name"] for rs in json.loads(payload)["resourceSpans"]
                 for ss in rs["scopeSpans"] for s in ss["spans"]]  # fmt: skip
        assert names == ["request"]
    else:
        assert b"request" in payload


def test_json_exporter_gives_up_after_the_timeout(capture: Capture) -> None:
    capture.delay_s = 3.0
    env = _env(capture.url, OTEL_EXPORTER_OTLP_PROTOCOL="http/json",
               OTEL_EXPORTER_OTLP_TRACES_TIMEOUT="300")  # fmt: skip
    exporter = make_exporter(TracingConfig.from_env("svc", environ=env))
    assert exporter is not None
    started = time.monotonic()
    assert exporter.export(_spans()) is SpanExportResult.FAILURE
    assert time.monotonic() - started < 2.0  # two tries of 0.3 s, not the server's 3 s
    exporter.shutdown()


def test_json_exporter_trusts_the_configured_certificate(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl binary to make a certificate")
    cert, key = tmp_path / "ca.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with _capture_server(tls) as capture:
        base = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_TIMEOUT": "2000"}
        untrusted = make_exporter(TracingConfig.from_env("svc", environ=_env(capture.url, **base)))
        assert untrusted is not None
        assert untrusted.export(_spans()) is SpanExportResult.FAILURE  # unknown CA
        untrusted.shutdown()
        env = _env(capture.url, **base, OTEL_EXPORTER_OTLP_CERTIFICATE=str(cert))
        trusted = make_exporter(TracingConfig.from_env("svc", environ=env))
        assert trusted is not None
        assert trusted.export(_spans()) is SpanExportResult.SUCCESS
        trusted.shutdown()
        assert len(capture.requests) == 1
