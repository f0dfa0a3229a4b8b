"""The Tempo source against recorded answers in Tempo's documented format.

No Tempo binary is available here: the bodies below follow Tempo's API documentation and its
source (``pkg/tempopb.MarshalToJSONV1`` writes ``batches``; gogo ``jsonpb`` writes ids in
base64, int64 as strings, enums by name; v2 wraps the trace as ``{"trace": ...}`` with
``status: PARTIAL`` when incomplete; 404 when the trace is unknown), served through
``httpx.MockTransport``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from open_autoglm.analysis._tempo_source import (
    TempoConfig,
    TempoError,
    fetch_run_traces,
    fetch_traces,
    normalize_trace_id,
    search_trace_ids,
    trace_batch,
)
from open_autoglm.collector import DecodeError, SpanStore

TRACE = "0af7651916cd43dd8448eb211c80319c"
OTHER = "000000000000000000d6e9329d67b614"
URL = "http://tempo.test:3200"

#: ``GET /api/traces/0af7651916cd43dd8448eb211c80319c`` (v1): base64 ids, ``batches``.
RECORDED_V1 = """{"batches":[{"resource":{"attributes":[{"key":"service.name","value":
{"stringValue":"open-autoglm-server"}}]},"scopeSpans":[{"scope":{"name":"open_autoglm"},
"spans":[{"traceId":"CvdlGRbNQ92ESOshHIAxnA==","spanId":"t61rcWkgMzE=",
"parentSpanId":"APBnqgupArc=","name":"POST /v1/chat/completions","kind":"SPAN_KIND_SERVER",
"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000250000000",
"attributes":[{"key":"gen_ai.usage.output_tokens","value":{"intValue":"16"}}],"status":{}},
{"traceId":"CvdlGRbNQ92ESOshHIAxnA==","spanId":"U5lcP0LNitg=","parentSpanId":"t61rcWkgMzE=",
"name":"decode","kind":"SPAN_KIND_INTERNAL","startTimeUnixNano":"1700000000050000000",
"endTimeUnixNano":"1700000000240000000","events":[{"timeUnixNano":"1700000000050000000",
"name":"first_token"}],"status":{"code":"STATUS_CODE_ERROR","message":"boom"}}]}]}]}"""

#: ``GET /api/v2/traces/<id>``: the same trace wrapped, marked partial.
RECORDED_V2_PARTIAL = json.dumps(
    {
        "trace": {"resourceSpans": json.loads(RECORDED_V1)["batches"]},
        "status": "PARTIAL",
        "message": "trace exceeds max size",
    }
)

#: ``GET /api/search?q=...`` (the documented example's shape; a 64-bit id without zeros).
RECORDED_SEARCH = """{"traces":[{"traceID":"0af7651916cd43dd8448eb211c80319c",
"rootServiceName":"open-autoglm-loadgen","rootTraceName":"chat sim-llm",
"startTimeUnixNano":"1700000000000000000","durationMs":250},{"traceID":"d6e9329d67b614",
"rootServiceName":"open-autoglm-loadgen","rootTraceName":"chat sim-llm",
"startTimeUnixNano":"1700000001000000000","durationMs":611}],"metrics":{"totalBlocks":3}}"""


def transport(
    routes: dict[str, tuple[int, str | bytes, str]], seen: list[httpx.Request] | None = None
) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        status, body, content_type = routes.get(
            request.url.path, (404, "trace not found", "text/plain")
        )
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    return httpx.MockTransport(handle)


def test_v1_answer_becomes_the_collectors_rows() -> None:
    batch, partial = trace_batch(RECORDED_V1.encode())
    assert not partial
    assert batch.rejected == 0
    server, decode = batch.spans
    assert server[:6] == (TRACE, "b7ad6b7169203331", "00f067aa0ba902b7",
                          "POST /v1/chat/completions", "SERVER", "open-autoglm-server")  # fmt: skip
    assert server[6:8] == (1_700_000_000_000_000_000, 1_700_000_000_250_000_000)
    assert json.loads(server[10]) == {"gen_ai.usage.output_tokens": 16}
    assert decode[3:5] == ("decode", "INTERNAL")
    assert decode[8:10] == ("ERROR", "boom")
    assert batch.events == [
        (TRACE, "53995c3f42cd8ad8", 0, "first_token", 1_700_000_000_050_000_000, None)
    ]


def test_v2_partial_and_protobuf_answers() -> None:
    batch, partial = trace_batch(RECORDED_V2_PARTIAL.encode())
    assert partial
    assert len(batch.spans) == 2
    # Accept: application/protobuf (v1): tempopb.Trace is wire-compatible with the export request
    proto = ExportTraceServiceRequest()
    span = proto.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = bytes.fromhex(TRACE), bytes(range(1, 9)), "queue"
    batch, partial = trace_batch(proto.SerializeToString(), "application/protobuf")
    assert [row[3] for row in batch.spans] == ["queue"]


@pytest.mark.parametrize(
    "body",
    ["not json", "[1, 2]", '{"batches": {"no": "list"}}', '{"trace": "nope"}'],
)
def test_malformed_answers_raise_decode_errors(body: str) -> None:
    with pytest.raises(DecodeError):
        trace_batch(body.encode())


def test_fetch_counts_found_missing_partial_and_failed(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    routes = {
        f"/api/v2/traces/{TRACE}": (200, RECORDED_V2_PARTIAL, "application/json"),
        f"/api/v2/traces/{'1' * 32}": (200, "{not json", "application/json"),
        f"/api/v2/traces/{'2' * 32}": (500, "internal error", "text/plain"),
        f"/api/v2/traces/{'3' * 32}": (200, "{}", "application/json"),  # empty: not found
    }
    ids = [TRACE, "1" * 32, "2" * 32, "3" * 32, OTHER, TRACE.upper()]
    db = tmp_path / "tempo.duckdb"
    fetched = fetch_traces(
        TempoConfig(url=URL), ids, db, 1_700_000_000.0, 1_700_000_060.0,
        transport=transport(routes, seen),
    )  # fmt: skip
    assert fetched.requested == 5  # the upper-case duplicate is the same trace
    assert (fetched.found, fetched.missing, fetched.partial) == (1, 2, 1)
    assert fetched.failed == {"malformed": 1, "HTTP 500": 1}
    assert fetched.spans == 2
    assert "1/5 traces from Tempo (2 spans); 2 not found; 1 partial; 2 failed" in fetched.summary()
    assert all(r.url.params["start"] == "1699999400" for r in seen)
    assert all(r.headers["accept"] == "application/json" for r in seen)
    with SpanStore(db) as store:
        assert store.trace_ids() == [TRACE]
        spans = store.trace(TRACE)
    assert {s.name: s.duration_ns for s in spans} == {
        "POST /v1/chat/completions": 250_000_000,
        "decode": 190_000_000,
    }


def test_v1_api_and_a_replaced_store(tmp_path: Path) -> None:
    db = tmp_path / "tempo.duckdb"
    db.write_bytes(b"an old file")
    routes = {f"/api/traces/{TRACE}": (200, RECORDED_V1, "application/json")}
    fetched = fetch_traces(TempoConfig(url=URL, api="v1"), [TRACE], db, transport=transport(routes))
    assert fetched.found == 1
    with SpanStore(db) as store:
        assert store.span_count() == 2


def test_every_fetch_failing_is_an_error(tmp_path: Path) -> None:
    routes = {f"/api/v2/traces/{TRACE}": (503, "unavailable", "text/plain")}
    with pytest.raises(TempoError, match=r"every trace fetch .* failed \(HTTP 503: 1\)"):
        fetch_traces(
            TempoConfig(url=URL), [TRACE], tmp_path / "t.duckdb", transport=transport(routes)
        )


def test_unreachable_tempo_is_one_clear_error(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(
        TempoError, match=r"^cannot reach Tempo at http://tempo.test:3200: ConnectError$"
    ):
        fetch_traces(TempoConfig(url=URL), [TRACE], tmp_path / "t.duckdb",
                     transport=httpx.MockTransport(refuse))  # fmt: skip


def test_search_pads_ids_and_sends_traceql() -> None:
    seen: list[httpx.Request] = []
    routes = {"/api/search": (200, RECORDED_SEARCH, "application/json")}
    ids = search_trace_ids(
        TempoConfig(url=URL), 1_700_000_000, 1_700_000_060, transport=transport(routes, seen)
    )
    assert ids == [TRACE, OTHER]
    params = seen[0].url.params
    assert params["q"] == '{ resource.service.name = "open-autoglm-server" }'
    assert (params["start"], params["end"], params["limit"]) == ("1699999400", "1700000661", "5000")


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (400, "invalid TraceQL query: parse error", "HTTP 400: invalid TraceQL"),
        (200, '{"results": []}', "not in Tempo's format"),
        (200, '{"traces": [{"traceID": "xyz"}]}', "not a trace id"),
    ],
)
def test_bad_search_answers(status: int, body: str, message: str) -> None:
    routes = {"/api/search": (status, body, "application/json")}
    with pytest.raises(TempoError, match=message):
        search_trace_ids(TempoConfig(url=URL), transport=transport(routes))


def test_run_without_trace_ids_falls_back_to_search(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(
        json.dumps(
            {"started_unix_ns": 1_700_000_000 * 10**9, "finished_unix_ns": 1_700_000_060 * 10**9}
        )
    )
    routes = {
        "/api/search": (200, RECORDED_SEARCH, "application/json"),
        f"/api/v2/traces/{TRACE}": (200, RECORDED_V2_PARTIAL, "application/json"),
    }
    fetched = fetch_run_traces(
        tmp_path, TempoConfig(url=URL), tmp_path / "t.duckdb", transport=transport(routes)
    )
    assert (fetched.requested, fetched.found, fetched.missing) == (2, 1, 1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TempoConfig(url="tempo:3200"), "must start with http"),
        (lambda: TempoConfig(url=URL, api="v3"), "v1 or v2"),
        (lambda: TempoConfig(url=URL, max_concurrency=0), "positive"),
        (lambda: normalize_trace_id("g" * 32), "not a trace id"),
        (lambda: normalize_trace_id("1" * 33), "not a trace id"),
    ],
)
def test_bad_config_and_ids_raise_when_built(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(TempoError, match=message):
        make()
