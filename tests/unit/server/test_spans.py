"""The span tree of one request, per the telemetry contract."""

from __future__ import annotations

import json

from opentelemetry.trace import SpanKind

from open_autoglm.telemetry import names as n

CHAT = {"model": "sim-llm", "messages": [{"role": "user", "content": "Why is the sky blue?"}]}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def by_name(spans):  # type: ignore[no-untyped-def]
    return {s.name: s for s in spans}


async def test_request_has_server_span_with_stage_children(make_app) -> None:
    app = await make_app()
    r = await app.client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 4})
    assert r.status_code == 200
    spans = by_name(app.spans.get_finished_spans())
    server = spans["POST /v1/chat/completions"]
    assert server.kind == SpanKind.SERVER
    for stage in (n.SPAN_TOKENIZE, n.SPAN_QUEUE, n.SPAN_PREFILL, n.SPAN_DECODE):
        child = spans[stage]
        assert child.parent is not None
        assert child.parent.span_id == server.context.span_id
        assert child.context.trace_id == server.context.trace_id
        assert child.start_time >= server.start_time
        assert child.end_time <= server.end_time
    # no per-message send/receive spans
    assert not [s for s in spans if "http send" in s or "http receive" in s]
    # stages follow each other
    assert spans[n.SPAN_QUEUE].end_time <= spans[n.SPAN_PREFILL].end_time
    assert spans[n.SPAN_PREFILL].end_time == spans[n.SPAN_DECODE].start_time


async def test_stage_and_server_attributes(make_app) -> None:
    app = await make_app()
    r = await app.client.post(
        "/v1/chat/completions", json={**CHAT, "max_tokens": 5, "ignore_eos": True}
    )
    usage = r.json()["usage"]
    spans = by_name(app.spans.get_finished_spans())
    server = spans["POST /v1/chat/completions"].attributes
    assert server[n.GEN_AI_OPERATION_NAME] == n.OPERATION_CHAT
    assert server[n.GEN_AI_REQUEST_MODEL] == "sim-llm"
    assert server[n.GEN_AI_USAGE_INPUT_TOKENS] == usage["prompt_tokens"]
    assert server[n.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert server[n.GEN_AI_RESPONSE_FINISH_REASONS] == ("length",)
    assert server[n.ATTR_BACKEND] == "sim"
    assert server[n.ATTR_SIMULATED] is True
    assert spans[n.SPAN_TOKENIZE].attributes[n.GEN_AI_USAGE_INPUT_TOKENS] == usage["prompt_tokens"]
    assert spans[n.SPAN_QUEUE].attributes[n.ATTR_QUEUE_DEPTH] == 0
    prefill = spans[n.SPAN_PREFILL].attributes
    assert prefill[n.ATTR_BATCH_SIZE] == 1
    assert prefill[n.ATTR_PROMPT_TOKENS] == usage["prompt_tokens"]
    decode = spans[n.SPAN_DECODE]
    assert decode.attributes[n.ATTR_OUTPUT_TOKENS] == 5
    assert decode.attributes[n.ATTR_DECODE_STEPS] == 4  # the first token comes from prefill
    assert [e.name for e in decode.events] == [n.EVENT_FIRST_TOKEN]


async def test_prompt_text_is_not_recorded(make_app) -> None:
    app = await make_app()
    await app.client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 2})
    dumped = json.dumps([dict(s.attributes or {}) for s in app.spans.get_finished_spans()])
    assert "sky" not in dumped


async def test_traceparent_continues_the_callers_trace(make_app) -> None:
    app = await make_app()
    header = {"traceparent": f"00-{TRACE_ID}-{PARENT}-01", "tracestate": "vendor=x"}
    await app.client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 2}, headers=header)
    spans = app.spans.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}
    server = by_name(spans)["POST /v1/chat/completions"]
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == PARENT
    assert server.context.trace_state.get("vendor") == "x"


async def test_malformed_traceparent_starts_a_new_trace(make_app) -> None:
    app = await make_app()
    r = await app.client.post(
        "/v1/chat/completions",
        json={**CHAT, "max_tokens": 2},
        headers={"traceparent": "00-not-a-trace-id-01"},
    )
    assert r.status_code == 200
    server = by_name(app.spans.get_finished_spans())["POST /v1/chat/completions"]
    assert server.parent is None
    assert server.context.trace_id != 0


async def test_streaming_request_gets_the_same_spans(make_app) -> None:
    app = await make_app()
    body = {**CHAT, "max_tokens": 3, "stream": True}
    r = await app.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    names = [s.name for s in app.spans.get_finished_spans()]
    for stage in (n.SPAN_TOKENIZE, n.SPAN_QUEUE, n.SPAN_PREFILL, n.SPAN_DECODE):
        assert names.count(stage) == 1
    assert names.count("POST /v1/chat/completions") == 1


async def test_multimodal_request_has_a_preprocess_span(make_app) -> None:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (56, 28), "red").save(buf, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    app = await make_app()
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": uri}}]  # fmt: skip
    r = await app.client.post(
        "/v1/chat/completions",
        json={"model": "sim-llm", "messages": [{"role": "user", "content": content}],
              "max_tokens": 2},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    pre = by_name(app.spans.get_finished_spans())[n.SPAN_PREPROCESS].attributes
    assert pre[n.ATTR_IMAGE_COUNT] == 1
    assert pre[n.ATTR_IMAGE_BYTES] == len(buf.getvalue())
    assert pre[n.ATTR_IMAGE_PIXELS] == 56 * 28
    # same rendered text without the image: the image costs its two 28x28 patches
    text_only = await app.client.post(
        "/v1/chat/completions",
        json={"model": "sim-llm", "messages": [{"role": "user", "content": "<image>What is this?"}],
              "max_tokens": 2},
    )  # fmt: skip
    assert r.json()["usage"]["prompt_tokens"] == text_only.json()["usage"]["prompt_tokens"] + 2
