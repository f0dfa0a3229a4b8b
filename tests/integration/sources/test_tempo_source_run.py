"""``analyze --tempo`` gives the same stage breakdown as the embedded span store.

A real managed run (``open-autoglm benchmark --backend sim``) leaves ``spans.duckdb``; a fake
Tempo (no Tempo binary here) serves those spans by trace id in Tempo's documented v2 format
(gogo ``jsonpb`` of OTLP: base64 ids, int64 as strings, enums by name, ``{"trace": ...}``)
and answers 404 for a few traces it "lost".
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_http import serving

from open_autoglm.cli import main
from open_autoglm.collector import SpanRecord, SpanStore
from open_autoglm.telemetry._otlp_json import _attributes  # the OTLP JSON attribute encoding

_LOST = 3


def _id(hex_id: str | None) -> str | None:
    return base64.b64encode(bytes.fromhex(hex_id)).decode() if hex_id else None


def tempo_v2_trace(spans: list[SpanRecord]) -> dict[str, Any]:
    """Spans of one trace as Tempo's ``/api/v2/traces/<id>`` JSON."""
    by_service: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        span: dict[str, Any] = {
            "traceId": _id(s.trace_id),
            "spanId": _id(s.span_id),
            "name": s.name,
            "kind": f"SPAN_KIND_{s.kind}",
            "startTimeUnixNano": str(s.start_unix_ns),
            "endTimeUnixNano": str(s.end_unix_ns),
            "attributes": _attributes(s.attributes),
            "events": [
                {
                    "timeUnixNano": str(e.time_unix_ns),
                    "name": e.name,
                    "attributes": _attributes(e.attributes),
                }
                for e in s.events
            ],
            "status": {} if s.status_code == "UNSET" else {"code": f"STATUS_CODE_{s.status_code}"},
        }
        if s.parent_span_id:
            span["parentSpanId"] = _id(s.parent_span_id)
        by_service.setdefault(s.service_name, []).append(span)
    return {
        "trace": {
            "resourceSpans": [
                {
                    "resource": {"attributes": _attributes({"service.name": service})},
                    "scopeSpans": [{"scope": {"name": "open_autoglm"}, "spans": spans}],
                }
                for service, spans in by_service.items()
            ]
        }
    }


@pytest.fixture(scope="module")
def managed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("managed") / "run"
    log = run_dir.parent / "benchmark.log"
    with log.open("wb") as out:
        code = subprocess.call(
            [sys.executable, "-m", "open_autoglm", "benchmark", "--backend", "sim",
             "--requests", "40", "--concurrency", "4", "--output-len", "16",
             "--run-dir", str(run_dir), "--output", str(run_dir / "report.json"), "--quiet"],
            stdout=out, stderr=subprocess.STDOUT, timeout=240,
        )  # fmt: skip
    assert code == 0, log.read_text(errors="replace")
    return run_dir


@pytest.fixture(scope="module")
def fake_tempo(managed_run: Path) -> Iterator[tuple[str, list[str]]]:
    with SpanStore(managed_run / "spans.duckdb") as store:
        traces = {t: tempo_v2_trace(store.trace(t)) for t in store.trace_ids()}
    records = (managed_run / "requests.jsonl").read_text().splitlines()
    lost = [json.loads(line)["trace_id"] for line in records][:_LOST]
    bodies = {f"/api/v2/traces/{t}": json.dumps(doc).encode() for t, doc in traces.items()}

    def handle(
        method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, bytes]:
        route = path.split("?", 1)[0]
        if method != "GET" or route not in bodies or route.rsplit("/", 1)[1] in lost:
            return 404, "text/plain", b"trace not found"
        assert headers.get("accept") == "application/json"
        return 200, "application/json", bodies[route]

    with serving(handle) as url:
        yield url, lost


def test_analyze_from_tempo_matches_the_embedded_store(
    managed_run: Path, fake_tempo: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, lost = fake_tempo
    embedded_path = managed_run / "embedded.json"
    tempo_path = managed_run / "tempo.json"
    assert main(["analyze", str(managed_run), "--output", str(embedded_path)]) == 0
    assert main(["analyze", str(managed_run), "--tempo", url, "--output", str(tempo_path)]) == 0
    out = capsys.readouterr().out
    assert "tempo:  37/40 traces from Tempo" in out
    assert f"{_LOST} not found" in out
    embedded = json.loads(embedded_path.read_text())["stages"]
    tempo = json.loads(tempo_path.read_text())["stages"]
    assert embedded["requests"] == tempo["requests"] == 40
    assert embedded["with_server_spans"] == 40
    assert tempo["with_server_spans"] == 40 - _LOST
    slowest = [s for s in embedded["slowest"] if s["trace_id"] not in lost]
    by_id = {s["trace_id"]: s for s in tempo["slowest"]}
    for request in slowest:
        other = by_id.get(request["trace_id"])
        if other is None:
            continue
        assert other["stage_ms"] == request["stage_ms"]
        assert other["spans"] == request["spans"]
    assert len(by_id.keys() & {s["trace_id"] for s in slowest}) >= 5
    # every trace served completely: the same stage durations as the embedded store
    with (
        SpanStore(managed_run / "spans.duckdb") as a,
        SpanStore(managed_run / "tempo_spans.duckdb") as b,
    ):
        records = (managed_run / "requests.jsonl").read_text().splitlines()
        wanted = [t for t in (json.loads(line)["trace_id"] for line in records) if t not in lost]
        assert sorted(b.trace_ids()) == sorted(wanted)
        assert b.span_count() == sum(len(a.trace(t)) for t in wanted)
        for trace_id in wanted:
            assert sorted(
                (s.name, s.duration_ns, s.attributes) for s in b.trace(trace_id)
            ) == sorted((s.name, s.duration_ns, s.attributes) for s in a.trace(trace_id))


def test_unreachable_tempo_is_a_one_line_error(
    managed_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from open_autoglm.testing import free_port

    url = f"http://127.0.0.1:{free_port()}"
    assert main(["analyze", str(managed_run), "--tempo", url, "--output",
                 str(managed_run / "unused.json")]) == 2  # fmt: skip
    assert capsys.readouterr().err.strip() == (
        f"open-autoglm: error: cannot reach Tempo at {url}: ConnectError"
    )
