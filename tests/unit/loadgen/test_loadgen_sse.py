"""The SSE parser on crafted bytes, however the network splits them."""

from __future__ import annotations

import json

import pytest

from open_autoglm.loadgen import IncompleteStream, MalformedStream, StreamError
from open_autoglm.loadgen._stream import StreamState


def event(obj: object) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


def chat(content: str | None, finish: str | None = None) -> bytes:
    delta = {"role": "assistant"} if content is None else {"content": content}
    return event({"choices": [{"delta": delta, "finish_reason": finish}]})


STREAM = (
    b": keep-alive comment\n\n"
    + chat(None)
    + chat("Hel")
    + chat("lo", finish="stop")
    + event({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
    + b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("size", [1, 3, 7, 64, len(STREAM)])
def test_any_split_gives_the_same_result(size: int) -> None:
    state = StreamState(chat=True)
    for k, start in enumerate(range(0, len(STREAM), size)):
        state.feed(STREAM[start : start + size], now_ns=k)
    state.finish()
    assert state.texts == ["Hel", "lo"]  # the role-only chunk is not content
    assert len(state.chunk_ns) == 2
    assert (state.prompt_tokens, state.completion_tokens) == (5, 2)
    assert state.finish_reason == "stop"
    assert state.done


def test_chunks_read_together_share_their_arrival_time() -> None:
    state = StreamState(chat=True)
    state.feed(chat("a") + chat("b"), now_ns=100)
    state.feed(chat("c") + b"data: [DONE]\n\n", now_ns=250)
    state.finish()
    assert state.chunk_ns == [100, 100, 250]


def test_completions_text() -> None:
    state = StreamState(chat=False)
    state.feed(event({"choices": [{"text": "hi", "finish_reason": "length"}]}), now_ns=1)
    state.finish()
    assert state.texts == ["hi"]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"data: {broken\n\n", MalformedStream),
        (b"data: [1, 2]\n\n", MalformedStream),
        (b"<html>oops</html>\n\n", MalformedStream),
        (event({"error": {"message": "overloaded"}}), StreamError),
    ],
)
def test_bad_streams_raise_typed_errors(data: bytes, error: type[Exception]) -> None:
    def read(data: bytes) -> None:  # fails as soon as seen, or (not SSE at all) at the end
        state = StreamState(chat=True)
        state.feed(data, now_ns=0)
        state.finish()

    with pytest.raises(error):
        read(data)


def test_a_stream_without_done_or_finish_is_incomplete() -> None:
    state = StreamState(chat=True)
    state.feed(chat("partial"), now_ns=0)
    with pytest.raises(IncompleteStream):
        state.finish()
