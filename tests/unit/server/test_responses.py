"""Response and chunk shapes as OpenAI's; streaming, usage, stop sequences, ignore_eos."""

from __future__ import annotations

import json

CHAT = {"model": "sim-llm", "messages": [{"role": "user", "content": "hello there"}]}


def sse_events(text: str) -> list[str]:
    assert text.endswith("data: [DONE]\n\n")
    frames = [f for f in text.split("\n\n") if f]
    assert all(f.startswith("data: ") for f in frames)
    return [f[len("data: ") :] for f in frames]


async def test_chat_completion_shape(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    r = await app.client.post(
        "/v1/chat/completions", json={**CHAT, "max_tokens": 6, "ignore_eos": True}
    )
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert body["model"] == "sim-llm"
    (choice,) = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "length"
    usage = body["usage"]
    assert usage["completion_tokens"] == 6
    assert usage["total_tokens"] == usage["prompt_tokens"] + 6
    # tokens are counted honestly: the output re-tokenizes to the same count
    assert app.backend.count_tokens(choice["message"]["content"]) == 6


async def test_completion_shape_and_default_max_tokens(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    r = await app.client.post(
        "/v1/completions", json={"model": "sim-llm", "prompt": "Once upon", "ignore_eos": True}
    )
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 16, "total_tokens": 18}
    assert body["choices"][0]["text"]


async def test_chat_stream_with_usage(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    body = {**CHAT, "max_tokens": 4, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    r = await app.client.post("/v1/chat/completions", json=body)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content) == 4
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 4


async def test_completion_stream_without_usage(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    body = {"model": "sim-llm", "prompt": "hi", "max_tokens": 3, "stream": True,
            "ignore_eos": True}  # fmt: skip
    r = await app.client.post("/v1/completions", json=body)
    chunks = [json.loads(e) for e in sse_events(r.text)[:-1]]
    assert all("usage" not in c for c in chunks)
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks).count(" ") == 3
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_seed_makes_output_reproducible(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    body = {**CHAT, "max_tokens": 8, "seed": 7, "ignore_eos": True}
    a = (await app.client.post("/v1/chat/completions", json=body)).json()
    b = (await app.client.post("/v1/chat/completions", json=body)).json()
    assert a["choices"][0]["message"] == b["choices"][0]["message"]


async def test_stop_sequence_ends_the_output(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    base = {**CHAT, "max_tokens": 40, "seed": 3, "ignore_eos": True}
    full = (await app.client.post("/v1/chat/completions", json=base)).json()
    text = full["choices"][0]["message"]["content"]
    words = text.split()
    stop = " " + words[5]
    cut = text.index(stop)
    stopped = (await app.client.post("/v1/chat/completions", json={**base, "stop": stop})).json()
    assert stopped["choices"][0]["message"]["content"] == text[:cut]
    assert stopped["choices"][0]["finish_reason"] == "stop"
    # the same through the stream
    streamed = await app.client.post(
        "/v1/chat/completions", json={**base, "stop": [stop], "stream": True}
    )
    chunks = [json.loads(e) for e in sse_events(streamed.text)[:-1]]
    joined = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert joined == text[:cut]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_natural_end_without_ignore_eos(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app(natural_len_mean="3")
    r = await app.client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 500})
    assert r.json()["choices"][0]["finish_reason"] == "stop"
    assert r.json()["usage"]["completion_tokens"] < 500


async def test_models_and_health(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    models = (await app.client.get("/v1/models")).json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["sim-llm"]
    health = (await app.client.get("/health")).json()
    assert health == {
        "status": "ok",
        "backend": "sim",
        "model": "sim-llm",
        "simulated": True,
        "runtime": {},
    }
