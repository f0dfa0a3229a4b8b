"""What the proxy reads from the streams it forwards, on crafted streams of the kinds real
servers send (chunks split anywhere, reasoning, tool calls, completions, errors, usage)."""

from __future__ import annotations

import json

import pytest

from open_autoglm.attach._stream_watch import JsonWatcher, SseWatcher


def _event(payload: dict[str, object]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    return _event({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta,
                                                          "finish_reason": finish}]})  # fmt: skip


def _feed(stream: bytes, size: int) -> SseWatcher:
    watcher = SseWatcher()
    for i in range(0, len(stream), size):
        watcher.feed(stream[i : i + size])
    watcher.close()
    return watcher


STREAM = (
    _chunk({"role": "assistant", "content": ""})
    + _chunk({"reasoning_content": "thinking"})
    + _chunk({"content": "Hello"})
    + _chunk({"tool_calls": [{"index": 0, "function": {"name": "f"}}]})
    + _chunk({}, finish="tool_calls")
    + _event({"id": "c1", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
    + b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("size", [1, 7, 64, len(STREAM)])
def test_output_usage_and_finish_whatever_the_chunking(size: int) -> None:
    facts = _feed(STREAM, size).facts
    assert facts.output_chunks == 3  # reasoning, content, tool call; not the empty role chunk
    assert 0 < facts.first_output_ns <= facts.last_output_ns
    assert (facts.prompt_tokens, facts.completion_tokens) == (7, 3)
    assert facts.finish_reason == "tool_calls"
    assert facts.response_id == "c1"
    assert facts.done
    assert facts.error_type is None


def test_text_completions_and_crlf_free_streams() -> None:
    stream = _event({"id": "t", "choices": [{"index": 0, "text": "a", "finish_reason": None}]})
    stream += _event({"id": "t", "choices": [{"index": 0, "text": "", "finish_reason": "length"}]})
    facts = _feed(stream, 5).facts
    assert facts.output_chunks == 1
    assert facts.finish_reason == "length"


@pytest.mark.parametrize(
    ("stream", "error_type"),
    [
        (_chunk({"content": "x"}) + _event({"error": {"message": "m", "type": "server_error"}}),
         "server_error"),
        (b'event: error\ndata: {"message": "engine died", "type": "engine_error"}\n\n',
         "engine_error"),
        (_event({"error": "overloaded"}), "stream_error"),
    ],
)  # fmt: skip
def test_errors_in_the_stream_are_recorded_by_type(stream: bytes, error_type: str) -> None:
    assert _feed(stream, 3).facts.error_type == error_type


def test_a_json_body_is_read_once_at_the_end() -> None:
    body = json.dumps({"id": "x", "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                       "message": {"role": "assistant", "content": "hi"}}],
                       "usage": {"prompt_tokens": 2, "completion_tokens": 1}}).encode()  # fmt: skip
    watcher = JsonWatcher()
    watcher.feed(body[:10])
    watcher.feed(body[10:])
    watcher.close()
    facts = watcher.facts
    assert (facts.prompt_tokens, facts.completion_tokens, facts.finish_reason) == (2, 1, "stop")
    assert facts.output_chunks == 1
