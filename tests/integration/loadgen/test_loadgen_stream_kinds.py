"""The streams real servers send (vLLM reasoning and tool parsers, SGLang, TGI, gateways),
measured right, and never a failure counted as a success: crafted streams on port 0."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from loadgen_helpers import Crafted, make_config, run

from open_autoglm.loadgen import BenchmarkConfig


def with_endpoint(config: BenchmarkConfig, **changes: object) -> BenchmarkConfig:
    return dataclasses.replace(config, endpoint=dataclasses.replace(config.endpoint, **changes))


async def test_reasoning_field_counts_from_the_first_reasoning_chunk(
    crafted: Crafted, tmp_path: Path
) -> None:
    results, (record,), _ = await run(make_config(crafted.url("reasoning_field"), tmp_path))
    assert record.ok
    assert len(record.chunk_offsets_s) == 7  # 5 reasoning + 2 content
    assert record.ttft_s is not None
    assert 0.025 <= record.ttft_s < 0.1  # the first reasoning chunk, not the first content
    assert record.answer_ttft_s is not None
    assert record.answer_ttft_s >= 0.17  # after 5 reasoning chunks 30 ms apart
    assert record.tpot_s is not None
    assert 0.02 < record.tpot_s < 0.06  # ~30 ms: (E2E - TTFT) / (7 - 1)
    assert results.levels[0].answer_ttft_ms.count == 1


async def test_tool_call_deltas_give_ttft_and_e2e(crafted: Crafted, tmp_path: Path) -> None:
    results, (record,), _ = await run(make_config(crafted.url("tool_calls"), tmp_path))
    assert record.ok
    assert record.finish_reason == "tool_calls"
    assert record.ttft_s is not None
    assert record.e2e_s is not None
    assert 0.025 <= record.ttft_s < 0.1
    assert record.e2e_s >= 0.14
    assert record.tpot_s == pytest.approx((record.e2e_s - record.ttft_s) / 11)
    level = results.levels[0]
    assert (level.ttft_ms.count, level.e2e_ms.count, level.tpot_ms.count) == (1, 1, 1)


async def test_an_aborted_generation_is_a_failure(crafted: Crafted, tmp_path: Path) -> None:
    config = make_config(crafted.url("aborted"), tmp_path, requests=2, output_len=64)
    results, records, _ = await run(config)
    assert [r.status for r in records] == ["error", "error"]
    assert {r.error_type for r in records} == {"GenerationAborted"}
    assert all("'abort'" in (r.error or "") for r in records)
    level = results.levels[0]
    assert (level.succeeded, level.failed) == (0, 2)
    assert level.e2e_ms.count == 0  # the short E2E stays out of the success statistics
    assert level.output_token_throughput == 0


async def test_an_error_event_fails_with_the_servers_message(
    crafted: Crafted, tmp_path: Path
) -> None:
    results, records, _ = await run(make_config(crafted.url("error_event"), tmp_path, requests=2))
    assert {r.error_type for r in records} == {"StreamError"}
    assert all("Requested sample logprobs of 21" in (r.error or "") for r in records)
    assert results.levels[0].succeeded == 0


async def test_a_json_error_body_on_http_200_keeps_the_message(
    crafted: Crafted, tmp_path: Path
) -> None:
    _, (record,), _ = await run(make_config(crafted.url("json_error_200"), tmp_path))
    assert record.status == "error"
    assert record.http_status == 200
    assert record.error_type == "StreamError"
    assert "model overloaded, try later" in (record.error or "")


async def test_a_server_that_ignores_stream_true_is_a_flagged_success(
    crafted: Crafted, tmp_path: Path
) -> None:
    results, (record,), _ = await run(make_config(crafted.url("not_streamed"), tmp_path))
    assert record.ok
    assert record.streamed is False
    assert record.ttft_s is not None
    assert record.ttft_s == record.e2e_s
    assert record.ttft_s >= 0.05
    assert record.tpot_s is None  # no time per token to see in one answer
    assert record.output_tokens == 3
    assert results.levels[0].not_streamed == 1


async def test_a_leading_bom_keeps_the_first_event(crafted: Crafted, tmp_path: Path) -> None:
    _, (record,), _ = await run(make_config(crafted.url("bom"), tmp_path))
    assert record.ok
    assert len(record.chunk_offsets_s) == 5
    assert record.output_tokens == 5  # " w0" .. " w4", counted without usage
    assert record.ttft_s is not None
    assert record.ttft_s < 0.025  # the " w0" chunk, sent at once


async def test_crlf_split_between_reads(crafted: Crafted, tmp_path: Path) -> None:
    _, records, _ = await run(make_config(crafted.url("crlf_split"), tmp_path, requests=2))
    for record in records:
        assert record.ok, record.error
        assert len(record.chunk_offsets_s) == 5
        assert record.output_tokens == 5


async def test_an_odd_chunk_fails_one_request_and_the_run_goes_on(
    crafted: Crafted, tmp_path: Path
) -> None:
    config = make_config(crafted.url("odd_every_other"), tmp_path, requests=4)
    results, records, _ = await run(config)
    assert len(records) == 4  # every record written
    by_index = sorted(records, key=lambda r: r.index)
    assert [r.status for r in by_index] == ["ok", "error", "ok", "error"]
    assert {r.error_type for r in records if not r.ok} == {"MalformedStream"}
    assert results.levels[0].errors == {"MalformedStream": 2}

    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    saved = json.loads((tmp_path / "results.json").read_text(), parse_constant=refuse)
    assert saved["levels"][0]["succeeded"] == 2
    for line in (tmp_path / "requests.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=refuse)


async def test_error_null_is_not_an_error(crafted: Crafted, tmp_path: Path) -> None:
    _, (record,), _ = await run(make_config(crafted.url("error_null"), tmp_path))
    assert record.ok
    assert len(record.chunk_offsets_s) == 2


async def test_cjk_without_usage_counts_at_least_one_token_per_chunk(
    crafted: Crafted, tmp_path: Path
) -> None:
    results, (record,), _ = await run(make_config(crafted.url("cjk"), tmp_path))
    assert record.ok
    assert len(record.chunk_offsets_s) == 10
    assert record.output_tokens_source == "tokenizer"
    assert record.output_tokens is not None
    assert record.output_tokens >= 10
    assert record.tpot_s is not None
    assert results.tokenizer == "simple"


async def test_an_event_over_the_limit_fails_only_its_request(
    crafted: Crafted, tmp_path: Path
) -> None:
    config = with_endpoint(
        make_config(crafted.url("huge_every_other"), tmp_path, requests=2),
        max_event_bytes=1024 * 1024,
    )
    results, records, _ = await run(config)
    by_index = sorted(records, key=lambda r: r.index)
    assert by_index[0].ok
    assert by_index[1].error_type == "MalformedStream"
    assert "over the limit of 1048576 bytes" in (by_index[1].error or "")
    assert results.levels[0].succeeded == 1


async def test_a_cached_model_id_as_tokenizer_counts_and_is_named_in_results(
    crafted: Crafted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    snapshot = tmp_path / "hub" / "models--org--tiny" / "snapshots" / "r1"
    snapshot.mkdir(parents=True)
    (tmp_path / "hub" / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--tiny" / "refs" / "main").write_text("r1")
    tokenizer = Tokenizer(WordLevel({"[UNK]": 0, "world": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()  # type: ignore[assignment]
    tokenizer.save(str(snapshot / "tokenizer.json"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    config = dataclasses.replace(
        make_config(crafted.url("no_usage"), tmp_path), tokenizer_path=Path("org/tiny")
    )
    results, (record,), _ = await run(config)
    assert record.ok
    assert record.output_tokens == 4  # "Hello", ",", "world", "!" by that tokenizer
    assert results.tokenizer == str(snapshot / "tokenizer.json")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["tokenizer"] == results.tokenizer


async def test_an_http_error_keeps_the_servers_own_message(
    crafted: Crafted, tmp_path: Path
) -> None:
    _, (record,), _ = await run(make_config(crafted.url("server_error"), tmp_path))
    assert (record.error_type, record.error) == ("500", "HTTP 500: boom")


async def test_an_unforeseen_exception_fails_its_request_not_the_run(
    crafted: Crafted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from open_autoglm.loadgen import _client
    from open_autoglm.loadgen._stream import StreamState

    class Exploding(StreamState):
        def feed(self, data: bytes, now_ns: int) -> None:
            raise RuntimeError("a bug in the reader")

    monkeypatch.setattr(_client, "StreamState", Exploding)
    config = make_config(crafted.url("one_token"), tmp_path, requests=2)
    results, records, _ = await run(config)
    assert [r.error_type for r in records] == ["RuntimeError", "RuntimeError"]
    assert all("a bug in the reader" in (r.error or "") for r in records)
    assert results.levels[0].failed == 2
