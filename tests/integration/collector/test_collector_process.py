"""The collector as a user and the managed run start it: a child process, stopped by signal."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter

from open_autoglm.collector import (
    CollectorConfig,
    CollectorProcess,
    CollectorStartError,
    SpanStore,
    expected_record,
)

Traced = Callable[[SpanExporter, int], Sequence[ReadableSpan]]


def _stored(db: Path, spans: Sequence[ReadableSpan]) -> None:
    with SpanStore(db) as store:
        assert store.span_count() == len(spans)
        stored = {r.span_id: r for t in store.trace_ids() for r in store.trace(t)}
    assert stored == {format(s.context.span_id, "016x"): expected_record(s) for s in spans}


def test_sigterm_stores_every_accepted_span(tmp_path: Path, traced_request: Traced) -> None:
    db = tmp_path / "spans.duckdb"
    # A long flush interval: only the shutdown flush can have written the spans.
    config = CollectorConfig(db_path=db, flush_interval_s=600)
    with CollectorProcess(config, log_path=tmp_path / "collector.log") as child:
        assert child.http_port
        assert child.grpc_port
        spans = list(traced_request(HttpSpanExporter(endpoint=child.traces_url), 3))
        spans += traced_request(GrpcSpanExporter(endpoint=child.grpc_endpoint, insecure=True), 3)
        assert child.stop() == 0
    _stored(db, spans)
    log = (tmp_path / "collector.log").read_text()
    assert "collector stopped: 18 spans stored, 0 rejected, 0 refused" in log


def test_ctrl_c_from_the_command_line_stores_every_span(
    tmp_path: Path, traced_request: Traced
) -> None:
    db, ready = tmp_path / "spans.duckdb", tmp_path / "ready.json"
    command = [sys.executable, "-m", "open_autoglm", "collector", "--http-port", "0",
               "--grpc-port", "0", "--db", str(db), "--ready-file", str(ready),
               "--flush-interval", "600"]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert child.stdout is not None
        printed = json.loads(child.stdout.readline())  # printed once ready, after the file
        info = json.loads(ready.read_text())
        assert printed == info
        assert info["pid"] == child.pid
        assert info["db_path"] == str(db)
        spans = traced_request(HttpSpanExporter(endpoint=info["traces_url"]), 2)
        child.send_signal(signal.SIGINT)
        assert child.wait(60) == 0
        assert child.stdout.read() == b""
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    _stored(db, spans)


def test_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "open_autoglm",
                "collector",
                "--http-port",
                str(port),
                "--grpc-port",
                "0",
                "--db",
                str(tmp_path / "s.duckdb"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"open-autoglm: error: cannot listen for OTLP/HTTP on 127.0.0.1:{port}"
    )
    assert result.stderr.count("\n") == 1


def test_grpc_port_in_use_is_refused_too(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = CollectorConfig(db_path=tmp_path / "s.duckdb", grpc_port=port)
        with pytest.raises(CollectorStartError, match="exited with status 2"):
            CollectorProcess(config, log_path=tmp_path / "log").start()
    assert "cannot listen for OTLP/gRPC" in (tmp_path / "log").read_text()


class NeverReady(CollectorProcess):
    def command(self, ready_file: Path) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_child_that_never_gets_ready_is_stopped(tmp_path: Path) -> None:
    config = CollectorConfig(db_path=tmp_path / "s.duckdb")
    missing = CollectorProcess(config, python=str(tmp_path / "no-such-python"))
    with pytest.raises(FileNotFoundError):
        missing.start(timeout_s=5)
    started = time.monotonic()
    sleeper = NeverReady(config)
    with pytest.raises(CollectorStartError, match=r"not ready after 0\.5 s"):
        sleeper.start(timeout_s=0.5)
    assert sleeper.returncode is not None, "the child was stopped, not left running"
    assert time.monotonic() - started < 30
