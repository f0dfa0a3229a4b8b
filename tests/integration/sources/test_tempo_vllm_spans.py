"""``analyze --tempo`` on traces where the server is an unmodified vLLM: its ``llm_request``
spans, fetched from a fake Tempo (v2 format, as in ``test_tempo_source_run``), become the same
queue/prefill/decode stages as from the embedded store."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_http import serving
from test_tempo_source_run import tempo_v2_trace

from open_autoglm.analysis import Report
from open_autoglm.attach import vllm_spans as vs
from open_autoglm.cli import main
from open_autoglm.collector import SpanStore, write_span_store
from open_autoglm.telemetry import names as n

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
TRACES = 6
GOLDEN_REPORT = Path(__file__).parents[2] / "fixtures" / "report_run" / "golden_report.json"


@pytest.fixture
def run_and_tempo(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A run directory whose server spans are only in (a fake) Tempo."""
    source: dict[str, list[object]] = {k: [] for k in (
        "trace_id", "span_id", "parent_span_id", "name", "kind", "service_name",
        "start_unix_ns", "end_unix_ns", "attributes")}  # fmt: skip
    records = []
    for i in range(TRACES):
        trace, sent = f"{i + 1:032x}", T0 + i * 1_000 * MS
        queue = 0.010 * (i + 1)
        attributes = {vs.TIME_IN_QUEUE: queue, vs.TIME_IN_MODEL_PREFILL: 0.020,
                      vs.TIME_IN_MODEL_DECODE: 0.100, vs.TIME_IN_MODEL_INFERENCE: 0.120,
                      vs.E2E: queue + 0.125, vs.TIME_TO_FIRST_TOKEN: queue + 0.025,
                      vs.PROMPT_TOKENS: 40, vs.COMPLETION_TOKENS: 16}  # fmt: skip
        e2e_ns = round(attributes[vs.E2E] * 1e9)
        for row in (
            (trace, f"{i + 1:016x}", None, "chat m", "CLIENT", "loadgen", sent,
             sent + e2e_ns + 3 * MS, {}),
            (trace, f"a{i + 1:015x}", f"{i + 1:016x}", vs.LLM_REQUEST_SPAN, "SERVER", "vllm",
             sent + MS, sent + MS + e2e_ns, attributes),
        ):  # fmt: skip
            for key, value in zip(source, row, strict=True):
                source[key].append(value)
        records.append({"trace_id": trace, "index": i, "level": 0, "phase": "measure",
                        "status": "ok", "sent_unix_ns": sent, "queue_s": 0.0,
                        "ttft_s": attributes[vs.TIME_TO_FIRST_TOKEN] + 0.003,
                        "e2e_s": attributes[vs.E2E] + 0.003})  # fmt: skip
    store = write_span_store(tmp_path / "tempo-side.duckdb", source)
    with SpanStore(store) as spans:
        bodies = {
            f"/api/v2/traces/{t}": json.dumps(tempo_v2_trace(spans.trace(t))).encode()
            for t in spans.trace_ids()
        }
    run = tmp_path / "run"
    run.mkdir()
    golden = Report.from_json(json.loads(GOLDEN_REPORT.read_text(encoding="utf-8")))
    dataclasses.replace(golden.load, levels=[]).write(run / "results.json")
    (run / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    def handle(
        method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, bytes]:
        route = path.split("?", 1)[0]
        if method != "GET" or route not in bodies:
            return 404, "text/plain", b"trace not found"
        return 200, "application/json", bodies[route]

    with serving(handle) as url:
        yield run, url


def test_llm_request_spans_from_tempo_become_stages(run_and_tempo: tuple[Path, str]) -> None:
    run, url = run_and_tempo
    assert main(["analyze", str(run), "--tempo", url, "--output", str(run / "r.json")]) == 0
    report = json.loads((run / "r.json").read_text())
    stages = report["stages"]
    assert stages["requests"] == stages["with_server_spans"] == TRACES
    assert stages["stages_ms"]["queue"]["max"] == pytest.approx(10.0 * TRACES)
    assert stages["stages_ms"]["decode"]["median"] == pytest.approx(100.0)
    assert any("llm_request" in note for note in report["notes"])
    with SpanStore(run / "tempo_spans.duckdb") as store:
        derived = store.spans_named(n.SPAN_PREFILL)
    assert len(derived) == TRACES
    assert {s.attributes[n.ATTR_DERIVED_FROM] for s in derived} == {vs.LLM_REQUEST_SPAN}
