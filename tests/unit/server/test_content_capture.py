"""Prompt and completion text on spans only when the user opts in
(``OPEN_AUTOGLM_CAPTURE_CONTENT``), as GenAI semconv ``gen_ai.input/output.messages``."""

from __future__ import annotations

import json

import pytest

from open_autoglm.instrumented_servers import ServerConfig
from open_autoglm.telemetry import ENV_CAPTURE_CONTENT
from open_autoglm.telemetry import names as n

SERVER = "POST /v1/chat/completions"
CHAT = {
    "model": "sim-llm",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Why is the sky blue?"},
    ],
    "max_tokens": 4,
    "ignore_eos": True,
}


def _server_span(app, name: str = SERVER):  # type: ignore[no-untyped-def]
    return next(s for s in app.spans.get_finished_spans() if s.name == name)


@pytest.mark.parametrize("stream", [False, True])
async def test_opted_in_chat_records_messages_and_the_text_sent(make_app, stream: bool) -> None:
    app = await make_app(ServerConfig(capture_content=True))
    r = await app.client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    assert r.status_code == 200
    if stream:
        chunks = [json.loads(line[6:]) for line in r.text.splitlines() if line[6:7] == "{"]
        sent = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    else:
        sent = r.json()["choices"][0]["message"]["content"]
    attributes = _server_span(app).attributes
    assert json.loads(attributes[n.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Why is the sky blue?"}]},
    ]
    assert json.loads(attributes[n.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": sent}],
         "finish_reason": "length"},
    ]  # fmt: skip
    assert len(sent.split()) == 4


async def test_opted_in_completion_records_the_prompt(make_app) -> None:
    app = await make_app(ServerConfig(capture_content=True))
    body = {"model": "sim-llm", "prompt": "Once upon a time", "max_tokens": 2}
    r = await app.client.post("/v1/completions", json=body)
    attributes = _server_span(app, "POST /v1/completions").attributes
    assert json.loads(attributes[n.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Once upon a time"}]}
    ]
    output = json.loads(attributes[n.GEN_AI_OUTPUT_MESSAGES])
    assert output[0]["parts"][0]["content"] == r.json()["choices"][0]["text"]


async def test_not_opted_in_records_no_text(make_app) -> None:
    app = await make_app(ServerConfig(capture_content=False))
    await app.client.post("/v1/chat/completions", json=CHAT)
    spans = app.spans.get_finished_spans()
    assert all(n.GEN_AI_INPUT_MESSAGES not in (s.attributes or {}) for s in spans)
    assert all(n.GEN_AI_OUTPUT_MESSAGES not in (s.attributes or {}) for s in spans)
    assert "sky" not in json.dumps([dict(s.attributes or {}) for s in spans])


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), ("", False), ("0", False), ("false", False), ("1", True), ("TRUE", True)],
)
def test_the_variable_sets_the_default(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv(ENV_CAPTURE_CONTENT, raising=False)
    else:
        monkeypatch.setenv(ENV_CAPTURE_CONTENT, value)
    assert ServerConfig().capture_content is expected


def test_a_typo_in_the_variable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_CAPTURE_CONTENT, "yess")
    with pytest.raises(ValueError, match="OPEN_AUTOGLM_CAPTURE_CONTENT must be 1 or 0"):
        ServerConfig()
