"""/metrics: classic text by default, OpenMetrics with trace_id exemplars when asked."""

from __future__ import annotations

import asyncio
import re

from open_autoglm.telemetry import names as n

CHAT = {"model": "sim-llm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
OPENMETRICS = {"accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"}
EXEMPLAR = re.compile(r'^(\w+)_bucket\{[^}]*\} \S+ # \{trace_id="([0-9a-f]{32})"\}', re.M)


async def test_openmetrics_exemplars_match_exported_spans(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    for _ in range(3):
        assert (await app.client.post("/v1/chat/completions", json=CHAT)).status_code == 200
    r = await app.client.get("/metrics", headers=OPENMETRICS)
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")
    found = EXEMPLAR.findall(r.text)
    metrics_with_exemplars = {name for name, _ in found}
    for metric in (
        n.METRIC_TTFT,
        n.METRIC_TPOT,
        n.METRIC_REQUEST_DURATION,
        n.METRIC_STAGE_DURATION,
    ):
        assert metric in metrics_with_exemplars
    span_traces = {format(s.context.trace_id, "032x") for s in app.spans.get_finished_spans()}
    assert {trace for _, trace in found} <= span_traces


async def test_classic_format_without_exemplars(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    await app.client.post("/v1/chat/completions", json=CHAT)
    r = await app.client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    assert "trace_id" not in r.text
    assert f"{n.METRIC_TTFT}_count" in r.text
    assert f"{n.METRIC_GENERATION_TOKENS}_total" in r.text


async def test_counters_gauges_and_stage_labels(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    await app.client.post("/v1/chat/completions", json={**CHAT, "ignore_eos": True})
    await app.client.post("/v1/chat/completions", json={**CHAT, "model": "nope"})
    text = (await app.client.get("/metrics")).text

    def value(pattern: str) -> float:
        match = re.search(pattern + r" ([0-9.e+-]+)$", text, re.M)
        assert match, pattern
        return float(match.group(1))

    tokens = re.search(n.METRIC_GENERATION_TOKENS + r"_total\{([^}]*)\} ([0-9.e+-]+)$", text, re.M)
    assert tokens
    # the GenAI conventions' attribute names as labels; the provider is the backend
    assert dict(re.findall(r'(\w+)="([^"]*)"', tokens.group(1))) == {
        n.LABEL_MODEL: "sim-llm",
        n.LABEL_PROVIDER: "sim",
        n.LABEL_OPERATION: "chat",
    }
    assert float(tokens.group(2)) == 3
    assert value(n.METRIC_REQUESTS + r'_total\{[^}]*finish_reason="length"[^}]*\}') == 1
    assert value(n.METRIC_REQUEST_ERRORS + r'_total\{[^}]*error_type="404"[^}]*\}') == 1
    assert value(n.METRIC_QUEUE_DEPTH + r"\{[^}]*\}") == 0
    assert value(n.METRIC_BATCH_SIZE + r"\{[^}]*\}") == 0
    # prometheus_client's standard process families, not names of our own
    assert n.METRIC_PROCESS_RSS == "process_resident_memory_bytes"
    assert value(n.METRIC_PROCESS_RSS) > 10_000_000
    assert value(n.METRIC_PROCESS_CPU + "_total") > 0
    assert value(n.METRIC_PROCESS_PEAK_RSS) >= 10_000_000
    for stage in ("tokenize", "queue", "prefill", "decode"):
        assert value(n.METRIC_STAGE_DURATION + r'_count\{[^}]*stage="' + stage + r'"\}') == 1


async def test_no_exemplars_when_tracing_is_off() -> None:
    import httpx
    from prometheus_client import CollectorRegistry

    from open_autoglm.instrumented_servers import BackendOptions, create_app
    from open_autoglm.instrumented_servers.backends.sim._backend import SimBackend, SimConfig

    backend = SimBackend(
        "sim-llm", SimConfig.from_options(BackendOptions("sim", extra={"cost": "zero"}))
    )
    app = create_app(backend, tracer_provider=None, registry=CollectorRegistry())
    await backend.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            assert (await c.post("/v1/chat/completions", json=CHAT)).status_code == 200
            text = (await c.get("/metrics", headers=OPENMETRICS)).text
    finally:
        await backend.stop()
    assert f"{n.METRIC_TTFT}_count" in text
    assert "trace_id" not in text


def _error_total(text: str) -> float:
    lines = re.findall(n.METRIC_REQUEST_ERRORS + r"_total\{[^}]*\} ([0-9.e+-]+)$", text, re.M)
    return sum(float(v) for v in lines)


async def test_a_context_length_rejection_is_counted_once(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app(max_model_len="64")
    body = {**CHAT, "messages": [{"role": "user", "content": "w " * 200}], "max_tokens": 8}
    r = await app.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "context_length_exceeded"
    text = (await app.client.get("/metrics")).text
    assert _error_total(text) == 1
    assert 'error_type="ContextLengthError"' in text


async def test_each_queue_full_429_is_counted_once(make_app) -> None:  # type: ignore[no-untyped-def]
    # one running slot, one queue place, a slow step: of 6 concurrent requests 4 find the queue full
    app = await make_app(max_batch_size="1", max_queue="1", decode_base_ms="200")

    body = {**CHAT, "max_tokens": 2, "ignore_eos": True}
    first = asyncio.ensure_future(app.client.post("/v1/chat/completions", json=body))
    await asyncio.sleep(0)  # let it be scheduled before the rest queue behind it
    rest = await asyncio.gather(
        *(app.client.post("/v1/chat/completions", json=body) for _ in range(5))
    )
    statuses = [(await first).status_code, *(r.status_code for r in rest)]
    rejected = statuses.count(429)
    assert rejected >= 1
    text = (await app.client.get("/metrics")).text
    assert _error_total(text) == rejected
