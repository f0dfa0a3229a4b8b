"""Metric definitions and fault handling, checked on hand-made streams."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from loadgen_helpers import Crafted, make_config, run
from opentelemetry.trace import SpanKind

from open_autoglm.loadgen import read_records, run_benchmark_async
from open_autoglm.telemetry import names


async def test_role_only_first_chunk_does_not_count_as_first_token(
    crafted: Crafted, tmp_path: Path
) -> None:
    _, (record,), _ = await run(make_config(crafted.url("role_first"), tmp_path))
    assert record.ok
    # the role chunk arrives at once; the first text 150 ms later: that is the TTFT
    assert record.ttft_s is not None
    assert record.ttft_s >= 0.15
    assert record.e2e_s is not None
    assert record.e2e_s >= record.ttft_s + 0.02
    assert len(record.chunk_offsets_s) == 2
    assert record.output_tokens == 2
    assert record.output_tokens_source == "usage"


async def test_multi_token_chunks_use_usage_for_tpot(crafted: Crafted, tmp_path: Path) -> None:
    results, (record,), _ = await run(make_config(crafted.url("multi_token"), tmp_path))
    assert record.output_tokens == 9
    assert record.input_tokens == 7
    assert record.ttft_s is not None
    assert record.e2e_s is not None
    assert record.tpot_s is not None
    # TPOT divides by output tokens - 1, not by chunks - 1
    assert record.tpot_s == pytest.approx((record.e2e_s - record.ttft_s) / 8)
    assert len(record.itl_s()) == 2
    assert min(record.itl_s()) >= 0.04
    level = results.levels[0]
    assert level.itl_ms.count == 2
    assert level.output_tokens_from_usage == 1


async def test_one_token_output_has_no_tpot(crafted: Crafted, tmp_path: Path) -> None:
    results, (record,), _ = await run(make_config(crafted.url("one_token"), tmp_path))
    assert record.ok
    assert record.output_tokens == 1
    assert record.tpot_s is None
    assert record.ttft_s == record.e2e_s
    assert results.levels[0].tpot_ms.count == 0
    assert results.levels[0].ttft_ms.count == 1


async def test_missing_usage_is_re_tokenized(crafted: Crafted, tmp_path: Path) -> None:
    _, (record,), _ = await run(make_config(crafted.url("no_usage"), tmp_path))
    assert record.ok
    assert record.output_tokens == 4  # "Hello", ",", "world", "!"
    assert record.output_tokens_source == "tokenizer"


async def test_crlf_event_separators(crafted: Crafted, tmp_path: Path) -> None:
    _, (record,), _ = await run(make_config(crafted.url("crlf"), tmp_path))
    assert record.ok
    assert len(record.chunk_offsets_s) == 2
    assert record.output_tokens == 3


async def test_completions_endpoint(crafted: Crafted, tmp_path: Path) -> None:
    _, (record,), _ = await run(
        make_config(crafted.url("completions"), tmp_path, api="completions")
    )
    assert record.ok
    assert record.output_tokens == 2
    assert len(record.chunk_offsets_s) == 2
    sent = crafted.seen[0]
    assert sent["path"].endswith("/v1/completions")
    assert isinstance(sent["body"]["prompt"], str)
    assert sent["body"]["stream"] is True
    assert sent["body"]["stream_options"] == {"include_usage": True}
    assert sent["body"]["ignore_eos"] is True
    assert sent["body"]["max_tokens"] == 8


@pytest.mark.parametrize(
    ("route", "error_type"),
    [
        ("server_error", "500"),
        ("bad_request", "400"),
        ("drop", "StreamDropped"),
        ("malformed", "MalformedStream"),
        ("stream_error", "StreamError"),
        ("no_done", "IncompleteStream"),
        ("stall", "ReadTimeout"),
    ],
)
async def test_faults_are_recorded_by_type_and_the_run_goes_on(
    crafted: Crafted, tmp_path: Path, route: str, error_type: str
) -> None:
    config = make_config(crafted.url(route), tmp_path, requests=3, concurrency=3,
                         kind="concurrency", timeout_s=0.5)  # fmt: skip
    results, records, exporter = await run(config)
    assert len(records) == 3
    assert {r.error_type for r in records} == {error_type}
    assert all(r.status == "error" for r in records)
    level = results.levels[0]
    assert level.errors == {error_type: 3}
    assert level.error_rate == 1.0
    spans = exporter.get_finished_spans()
    assert len(spans) == 3
    assert all(s.attributes is not None and s.attributes[names.ERROR_TYPE] == error_type
               for s in spans)  # fmt: skip
    assert (tmp_path / "results.json").exists()


async def test_refused_connection_is_an_error_not_a_crash(
    unused_port_url: str, tmp_path: Path
) -> None:
    results, records, _ = await run(make_config(unused_port_url, tmp_path, requests=2))
    assert [r.error_type for r in records] == ["ConnectError", "ConnectError"]
    assert results.levels[0].failed == 2


async def test_client_span_and_traceparent(crafted: Crafted, tmp_path: Path) -> None:
    config = make_config(crafted.url("multi_token"), tmp_path, model="m")
    _, (record,), exporter = await run(config)
    (span,) = exporter.get_finished_spans()
    assert span.kind == SpanKind.CLIENT
    assert span.name == "chat m"
    trace_id = f"{span.context.trace_id:032x}"
    assert record.trace_id == trace_id
    header = crafted.seen[0]["headers"]["traceparent"]
    assert header == f"00-{trace_id}-{span.context.span_id:016x}-{span.context.trace_flags:02x}"
    assert span.context.trace_flags.sampled
    attrs = span.attributes or {}
    assert attrs[names.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[names.GEN_AI_REQUEST_MODEL] == "m"
    assert attrs[names.GEN_AI_REQUEST_MAX_TOKENS] == 8
    assert attrs[names.GEN_AI_USAGE_OUTPUT_TOKENS] == 9
    assert attrs[names.GEN_AI_USAGE_INPUT_TOKENS] == 7
    assert attrs[names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] == pytest.approx(record.ttft_s)
    # GenAI conventions: the provider (required), streaming, where it went, what answered
    assert attrs[names.GEN_AI_PROVIDER_NAME] == names.PROVIDER_OPENAI
    assert attrs[names.GEN_AI_REQUEST_STREAM] is True
    url = urlsplit(crafted.url("multi_token"))
    assert (attrs[names.SERVER_ADDRESS], attrs[names.SERVER_PORT]) == (url.hostname, url.port)
    assert attrs[names.GEN_AI_RESPONSE_ID] == "x"
    assert attrs[names.GEN_AI_RESPONSE_MODEL] == "m"


async def test_records_are_one_json_line_per_request(crafted: Crafted, tmp_path: Path) -> None:
    config = make_config(crafted.url("one_token"), tmp_path, requests=5, kind="concurrency",
                         concurrency=2)  # fmt: skip
    results, records, _ = await run(config)
    lines = (tmp_path / "requests.jsonl").read_text().splitlines()
    assert len(lines) == 5
    assert sorted(r.index for r in records) == list(range(5))
    first = json.loads(lines[0])
    for key in ("index", "level", "scheduled_s", "sent_s", "queue_s", "ttft_s", "e2e_s",
                "chunk_offsets_s", "input_tokens", "output_tokens", "status", "error_type",
                "trace_id"):  # fmt: skip
        assert key in first
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["version"] == "open-autoglm.loadgen.results/1"
    assert saved["levels"][0]["succeeded"] == 5
    assert results.levels[0].ttft_ms.count == 5


async def test_traceparent_without_export(crafted: Crafted, tmp_path: Path) -> None:
    """No OTLP endpoint: no spans are made, but each request still carries its own trace."""
    config = make_config(crafted.url("one_token"), tmp_path, requests=3)
    results = await run_benchmark_async(config)
    assert results.levels[0].succeeded == 3
    records = read_records(tmp_path / "requests.jsonl")
    sent = [seen["headers"]["traceparent"] for seen in crafted.seen]
    assert sorted(tp.split("-")[1] for tp in sent) == sorted(r.trace_id or "" for r in records)
    assert len({r.trace_id for r in records}) == 3
    assert all(tp.startswith("00-") and tp.endswith("-01") for tp in sent)
