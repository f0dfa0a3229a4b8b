"""The chat stream's first chunk (the role) goes out with the first token, as vLLM sends it.

A sim server with a deliberate prefill cost (200 ms for the prompt below): a client that
times TTFT from the first chunk of any kind (``vllm bench serve`` on chat) must see prefill
in it, not the time the server took to accept the request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from open_autoglm.testing import ServerProcess

PREFILL_MS_PER_TOKEN = 20.0
PROMPT = " ".join(["word"] * 10)  # the sim tokenizer: one token a word


@pytest.fixture(scope="module")
def slow_prefill() -> Iterator[ServerProcess]:
    options = (f"prefill_ms_per_token={PREFILL_MS_PER_TOKEN}", "decode_base_ms=5",
               "decode_per_seq_ms=0")  # fmt: skip
    args = ["--backend", "sim"]
    for option in options:
        args += ["--backend-option", option]
    with ServerProcess(args) as server:
        yield server


def _arrivals(
    server: ServerProcess, body: dict[str, object]
) -> list[tuple[float, dict[str, object]]]:
    """(seconds since send, chunk) for every chunk of one streamed response."""
    out: list[tuple[float, dict[str, object]]] = []
    with httpx.Client(timeout=30) as client:
        sent = time.perf_counter()
        with client.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    out.append((time.perf_counter() - sent, json.loads(line[len("data: ") :])))
    return out


def test_role_chunk_arrives_with_the_first_token(slow_prefill: ServerProcess) -> None:
    body = {"model": "sim-llm", "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 4, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    chunks = _arrivals(slow_prefill, body)
    prompt_tokens = chunks[-1][1]["usage"]["prompt_tokens"]  # type: ignore[index]
    prefill_s = prompt_tokens * PREFILL_MS_PER_TOKEN / 1e3
    first_at, first = chunks[0]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}  # type: ignore[index]
    content_at = next(
        t for t, c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")
    )  # type: ignore[index]
    # not before prefill: the first chunk waits for the first token ...
    assert first_at >= 0.8 * prefill_s, (first_at, prefill_s)
    # ... and leaves with it (the same write; one decode step is 5 ms)
    assert content_at - first_at < 0.005, (first_at, content_at)


def test_an_empty_generation_still_sends_its_role(slow_prefill: ServerProcess) -> None:
    body = {"model": "sim-llm", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 1, "stop": [" "], "stream": True}  # fmt: skip
    chunks = [c for _, c in _arrivals(slow_prefill, body)]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"  # type: ignore[index]
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")  # type: ignore[index]
