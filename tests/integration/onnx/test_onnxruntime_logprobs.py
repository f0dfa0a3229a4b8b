"""Log probabilities and token-id prompts on the real SmolLM2-135M (onnxruntime, CPU)."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from open_autoglm.instrumented_servers import ChatMessage, create_app
from open_autoglm.instrumented_servers.backends.onnxruntime._backend import (
    OnnxRuntimeBackend,
    OrtConfig,
)
from open_autoglm.instrumented_servers.models import Variant

pytestmark = pytest.mark.slow
QUESTION = "What is the capital of France?"


async def test_greedy_logprobs_and_token_id_prompts(smollm2: dict[Variant, Path]) -> None:
    engine = OnnxRuntimeBackend("smollm2-135m", smollm2["onnx-int4"], OrtConfig(max_batch_size=4))
    app = create_app(engine, tracer_provider=None, registry=CollectorRegistry())
    await engine.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=120
        ) as client:
            chat = await client.post(
                "/v1/chat/completions",
                json={"model": "smollm2-135m", "messages": [{"role": "user", "content": QUESTION}],
                      "max_tokens": 8, "temperature": 0, "logprobs": True, "top_logprobs": 3},
            )  # fmt: skip
            prompt = engine.render_chat([ChatMessage("user", QUESTION)])
            ids = engine.tokenizer.encode(prompt)
            by_text = await client.post(
                "/v1/completions",
                json={"model": "smollm2-135m", "prompt": prompt, "max_tokens": 8,
                      "temperature": 0, "logprobs": 2},
            )  # fmt: skip
            by_ids = await client.post(
                "/v1/completions",
                json={"model": "smollm2-135m", "prompt": ids, "max_tokens": 8,
                      "temperature": 0, "logprobs": 2},
            )  # fmt: skip
    finally:
        await engine.stop()
    assert chat.status_code == 200, chat.text
    choice = chat.json()["choices"][0]
    content = choice["logprobs"]["content"]
    assert len(content) == chat.json()["usage"]["completion_tokens"]
    for entry in content:
        top = entry["top_logprobs"]
        assert len(top) == 3
        # greedy decoding picks the most likely token: it heads the alternatives
        assert top[0]["token"] == entry["token"]
        assert top[0]["logprob"] == pytest.approx(entry["logprob"])
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        assert entry["logprob"] <= 0
        assert sum(math.exp(t["logprob"]) for t in top) <= 1 + 1e-6
    assert "Paris" in "".join(e["token"] for e in content)
    assert by_text.status_code == 200, by_text.text
    assert by_ids.status_code == 200, by_ids.text
    text, from_ids = by_text.json(), by_ids.json()
    assert from_ids["usage"]["prompt_tokens"] == len(ids)
    assert from_ids["choices"][0]["text"] == text["choices"][0]["text"]
    assert from_ids["choices"][0]["logprobs"]["token_logprobs"] == pytest.approx(
        text["choices"][0]["logprobs"]["token_logprobs"], abs=1e-4
    )
