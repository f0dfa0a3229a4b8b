"""Bad input gets the right 4xx and an OpenAI-style error body; the server keeps serving."""

from __future__ import annotations

import asyncio

import pytest

from open_autoglm.instrumented_servers import ServerConfig

CHAT = {"model": "sim-llm", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}


def assert_openai_error(response, status: int, param: str | None = None) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    return error  # type: ignore[no-any-return]


async def still_serving(app) -> None:  # type: ignore[no-untyped-def]
    r = await app.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({**CHAT, "max_tokens": "10"}, 400, "max_tokens"),
        ({**CHAT, "max_tokens": 0}, 400, "max_tokens"),
        ({**CHAT, "max_tokens": -3}, 400, "max_tokens"),
        ({**CHAT, "max_tokens": 10**6}, 400, "max_tokens"),
        ({**CHAT, "max_completion_tokens": 0}, 400, "max_tokens"),
        ({**CHAT, "temperature": 5}, 400, "temperature"),
        ({**CHAT, "n": 2}, 400, "n"),
        ({**CHAT, "model": "gpt-9"}, 404, "model"),
        ({"messages": CHAT["messages"]}, 400, "model"),
        ({"model": "sim-llm"}, 400, "messages"),
        ({"model": "sim-llm", "messages": []}, 400, "messages"),
        ({"model": "sim-llm", "messages": [{"role": "user", "content": ""}]}, 400, "messages"),
        ({"model": "sim-llm", "messages": [{"role": "robot", "content": "x"}]}, 400, None),
        ({**CHAT, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ],
)
async def test_bad_chat_bodies(make_app, body, status, param) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    r = await app.client.post("/v1/chat/completions", json=body)
    assert_openai_error(r, status, param)
    await still_serving(app)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "sim-llm", "prompt": ""}, "prompt"),
        ({"model": "sim-llm", "prompt": ["a", "b"]}, "prompt"),
        ({"model": "sim-llm", "prompt": 42}, "prompt"),
        ({"model": "sim-llm", "prompt": "hi", "max_tokens": 0}, "max_tokens"),
    ],
)
async def test_bad_completion_bodies(make_app, body, param) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    r = await app.client.post("/v1/completions", json=body)
    assert_openai_error(r, 400, param)
    await still_serving(app)


async def test_invalid_json(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    r = await app.client.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    error = assert_openai_error(r, 400)
    assert "JSON" in error["message"]
    await still_serving(app)


async def test_body_over_the_limit(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app(config=ServerConfig(max_body_bytes=4096))
    big = {**CHAT, "messages": [{"role": "user", "content": "x " * 5000}]}
    r = await app.client.post("/v1/chat/completions", json=big)
    assert assert_openai_error(r, 413)["code"] == "body_too_large"
    await still_serving(app)


async def test_prompt_longer_than_the_context(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app(max_model_len="64")
    long = {**CHAT, "messages": [{"role": "user", "content": "word " * 100}], "max_tokens": 8}
    r = await app.client.post("/v1/chat/completions", json=long)
    assert assert_openai_error(r, 400)["code"] == "context_length_exceeded"
    await still_serving(app)


async def test_remote_image_urls_are_refused(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    part = {"type": "image_url", "image_url": {"url": "http://example.invalid/cat.png"}}
    body = {"model": "sim-llm", "messages": [{"role": "user", "content": [part]}]}
    r = await app.client.post("/v1/chat/completions", json=body)
    assert_openai_error(r, 400, "messages.0.content.0.image_url")


async def test_unknown_route_and_method(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app()
    assert_openai_error(await app.client.get("/v1/nothing"), 404)
    assert_openai_error(await app.client.get("/v1/chat/completions"), 405)


async def test_queue_full_is_429_with_retry_after(make_app) -> None:  # type: ignore[no-untyped-def]
    # one running slot, one waiting slot, slow steps: the third request finds the queue full
    app = await make_app(cost="zero", max_batch_size="1", max_queue="1", decode_base_ms="50")
    body = {**CHAT, "max_tokens": 20, "ignore_eos": True}
    first = asyncio.create_task(app.client.post("/v1/chat/completions", json=body))
    while app.backend.load().running < 1:
        await asyncio.sleep(0.005)
    second = asyncio.create_task(app.client.post("/v1/chat/completions", json=body))
    while app.backend.load().queue_depth < 1:
        await asyncio.sleep(0.005)
    r = await app.client.post("/v1/chat/completions", json=body)
    error = assert_openai_error(r, 429)
    assert error["type"] == "rate_limit_error"
    assert int(r.headers["retry-after"]) >= 1
    assert (await first).status_code == 200
    assert (await second).status_code == 200
    await still_serving(app)


async def test_engine_fault_is_a_500_with_a_json_body(make_app) -> None:  # type: ignore[no-untyped-def]
    app = await make_app(error_rate="1")
    r = await app.client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 5})
    assert assert_openai_error(r, 500)["type"] == "server_error"


async def test_images_to_a_text_only_backend_are_a_400(make_app) -> None:  # type: ignore[no-untyped-def]
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (28, 28), "red").save(buf, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    app = await make_app()
    app.backend.accepts_images = False  # as the onnxruntime and vllm backends
    part = {"type": "image_url", "image_url": {"url": uri}}
    body = {"model": "sim-llm", "messages": [{"role": "user", "content": [part]}]}
    r = await app.client.post("/v1/chat/completions", json=body)
    assert assert_openai_error(r, 400, "messages")["code"] == "images_not_supported"
    await still_serving(app)
