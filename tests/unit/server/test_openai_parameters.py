"""OpenAI request parameters: log probabilities and token-id prompts are honoured on the
simulator; parameters the server does not implement are a 400 naming them, never a 200 that
silently ignores them."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from open_autoglm.instrumented_servers.backends.sim._backend import _WORDS, SimBackend

CHAT: dict[str, Any] = {
    "model": "sim-llm",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 6,
    "ignore_eos": True,
}
TEXT: dict[str, Any] = {"model": "sim-llm", "prompt": "hi", "max_tokens": 6, "ignore_eos": True}
WORD_LOGPROB = -math.log(len(_WORDS))


def sse_chunks(text: str) -> list[dict[str, Any]]:
    events = [line[len("data: ") :] for line in text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


async def test_chat_logprobs_and_top_logprobs(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    r = await app.client.post(
        "/v1/chat/completions", json={**CHAT, "logprobs": True, "top_logprobs": 3}
    )
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    content = choice["logprobs"]["content"]
    assert len(content) == r.json()["usage"]["completion_tokens"] == 6
    assert "".join(e["token"] for e in content) == choice["message"]["content"]
    for entry in content:
        assert entry["logprob"] == pytest.approx(WORD_LOGPROB)
        assert entry["bytes"] == list(entry["token"].encode())
        assert len(entry["top_logprobs"]) == 3
        assert entry["top_logprobs"][0]["token"] == entry["token"]


async def test_chat_logprobs_without_alternatives(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    r = await app.client.post("/v1/chat/completions", json={**CHAT, "logprobs": True})
    content = r.json()["choices"][0]["logprobs"]["content"]
    assert [e["top_logprobs"] for e in content] == [[]] * 6


async def test_streamed_chat_logprobs_come_with_their_tokens(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    r = await app.client.post(
        "/v1/chat/completions",
        json={**CHAT, "stream": True, "logprobs": True, "top_logprobs": 2},
    )
    chunks = sse_chunks(r.text)
    with_tokens = [c for c in chunks if c["choices"] and c["choices"][0]["logprobs"]]
    assert len(with_tokens) == 6
    for chunk in with_tokens:
        (entry,) = chunk["choices"][0]["logprobs"]["content"]
        assert entry["token"] == chunk["choices"][0]["delta"]["content"]
        assert len(entry["top_logprobs"]) == 2


async def test_completions_logprobs_in_the_legacy_shape(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    r = await app.client.post("/v1/completions", json={**TEXT, "logprobs": 2})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    lp = choice["logprobs"]
    assert "".join(lp["tokens"]) == choice["text"]
    assert lp["token_logprobs"] == pytest.approx([WORD_LOGPROB] * 6)
    assert [len(top) for top in lp["top_logprobs"]] == [2] * 6
    assert all(tok in top for tok, top in zip(lp["tokens"], lp["top_logprobs"], strict=True))
    assert lp["text_offset"] == [sum(map(len, lp["tokens"][:i])) for i in range(6)]
    streamed = await app.client.post(
        "/v1/completions", json={**TEXT, "logprobs": 0, "stream": True}
    )
    offsets = [
        c["choices"][0]["logprobs"]["text_offset"][0]
        for c in sse_chunks(streamed.text)
        if c["choices"] and c["choices"][0]["logprobs"]
    ]
    assert len(offsets) == 6
    assert offsets == sorted(offsets)
    assert offsets[0] == 0


async def test_no_logprobs_unless_asked(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    r = await app.client.post("/v1/chat/completions", json=CHAT)
    assert r.json()["choices"][0]["logprobs"] is None


@pytest.mark.parametrize(("prompt", "tokens"), [([5, 17, 31999], 3), ([[1, 2, 3, 4]], 4), ([0], 1)])
async def test_token_id_prompts(make_app, prompt: Any, tokens: int) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    r = await app.client.post("/v1/completions", json={**TEXT, "prompt": prompt})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["prompt_tokens"] == tokens


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ([], "must not be empty"),
        ([-1], "out of the vocabulary"),
        ([32000], "out of the vocabulary"),
        ([[1], [2]], "exactly one prompt"),
        ([1.5], "prompt"),
    ],
)
async def test_bad_token_id_prompts(make_app, prompt: Any, message: str) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    r = await app.client.post("/v1/completions", json={**TEXT, "prompt": prompt})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "prompt"
    assert message in error["message"]


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [TOOL], "tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
        ({"tools": [TOOL]}, "tools"),
        ({"tools": [TOOL], "tool_choice": "auto"}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format",
        ),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"presence_penalty": -1}, "presence_penalty"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"top_k": 40}, "top_k"),
        ({"guided_json": {"type": "object"}}, "guided_json"),
        ({"top_logprobs": 2}, "top_logprobs"),  # without logprobs: true
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logprobs": 3}, "logprobs"),  # chat's logprobs is a boolean
    ],
)
async def test_unsupported_chat_parameters_are_a_400_naming_them(  # type: ignore[no-untyped-def]
    make_app, extra: dict[str, Any], param: str
) -> None:
    app = await make_app()
    r = await app.client.post("/v1/chat/completions", json={**CHAT, **extra})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
    assert r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"echo": True}, "echo"),
        ({"best_of": 3}, "best_of"),
        ({"suffix": "end"}, "suffix"),
        ({"logprobs": 21}, "logprobs"),
        ({"logprobs": True}, "logprobs"),
    ],
)
async def test_unsupported_completion_parameters_are_a_400_naming_them(  # type: ignore[no-untyped-def]
    make_app, extra: dict[str, Any], param: str
) -> None:
    app = await make_app()
    r = await app.client.post("/v1/completions", json={**TEXT, **extra})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


@pytest.mark.parametrize(
    "extra",
    [
        {"tool_choice": "none"},
        {"tools": []},
        {"response_format": {"type": "text"}},
        {"frequency_penalty": 0, "presence_penalty": 0.0, "logit_bias": {}},
        {"top_k": -1, "min_p": 0.0},
        {"parallel_tool_calls": True, "store": False, "metadata": {"a": "b"}},  # no effect
        {"some_unknown_field": 1},  # unknown names are ignored, as vLLM does
    ],
)
async def test_parameters_left_at_their_defaults_are_accepted(  # type: ignore[no-untyped-def]
    make_app, extra: dict[str, Any]
) -> None:
    app = await make_app()
    r = await app.client.post("/v1/chat/completions", json={**CHAT, **extra})
    assert r.status_code == 200, r.text


async def test_a_backend_without_logprobs_refuses_them(  # type: ignore[no-untyped-def]
    make_app, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SimBackend, "supports_logprobs", False)
    monkeypatch.setattr(SimBackend, "accepts_token_ids", False)
    app = await make_app()
    r = await app.client.post("/v1/chat/completions", json={**CHAT, "logprobs": True})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "logprobs"
    r = await app.client.post("/v1/completions", json={**TEXT, "prompt": [1, 2]})
    assert r.status_code == 400
    assert "token ids" in r.json()["error"]["message"]
