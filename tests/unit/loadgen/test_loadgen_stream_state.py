"""What a response means: output of every kind, success and failure, odd chunks, JSON bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from open_autoglm.loadgen import (
    AbnormalFinish,
    GenerationAborted,
    IncompleteStream,
    MalformedStream,
    NoOutput,
    RequestError,
    StreamError,
)
from open_autoglm.loadgen._stream import StreamState, loads

DONE = b"data: [DONE]\n\n"


def event(obj: Any, name: str | None = None) -> bytes:
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(obj)}\n\n".encode()


def chunk(finish: str | None = None, **delta: Any) -> bytes:
    return event({"object": "chat.completion.chunk",
                  "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})  # fmt: skip


def run(*parts: bytes, chat: bool = True, content_type: str = "text/event-stream") -> StreamState:
    """Each part is one read, stamped 10, 20, 30 ... ns."""
    state = StreamState(chat=chat)
    state.feed_stream_start(content_type)
    for k, part in enumerate(parts, 1):
        state.feed(part, now_ns=10 * k)
    state.finish(now_ns=10 * len(parts) + 5)
    return state


def fails(
    *parts: bytes, chat: bool = True, content_type: str = "text/event-stream"
) -> RequestError:
    with pytest.raises(RequestError) as info:
        run(*parts, chat=chat, content_type=content_type)
    return info.value


# ---------------------------------------------------------------- what counts as output


@pytest.mark.parametrize("key", ["reasoning", "reasoning_content"])
def test_reasoning_chunks_are_output_and_answer_time_is_apart(key: str) -> None:
    state = run(chunk(role="assistant", content=""), *(chunk(**{key: f" r{i}"}) for i in range(5)),
                chunk(content=" a"), chunk(content=" b", finish="stop"), DONE)  # fmt: skip
    assert state.chunk_ns == [20, 30, 40, 50, 60, 70, 80]  # the role chunk is not output
    assert state.answer_ns == 70
    assert state.reasoning_texts == [" r0", " r1", " r2", " r3", " r4"]


def test_tool_call_deltas_are_output() -> None:
    def call(args: str, first: bool = False) -> bytes:
        fn: dict[str, Any] = {"arguments": args}
        if first:
            fn["name"] = "get_weather"
        return chunk(content=None, tool_calls=[{"index": 0, "function": fn}])

    state = run(chunk(role="assistant"), call("", True), call('{"loc'), call('": 1}'),
                chunk(finish="tool_calls"), DONE)  # fmt: skip
    assert state.chunk_ns == [20, 30, 40]
    assert state.answer_ns == 20
    assert state.texts == ["get_weather", '{"loc', '": 1}']


def test_legacy_function_call_and_refusal_are_output() -> None:
    state = run(chunk(function_call={"name": "f", "arguments": "{}"}),
                chunk(refusal="no", finish="stop"), DONE)  # fmt: skip
    assert state.chunk_ns == [10, 20]


def test_completions_text_is_output() -> None:
    body = {"choices": [{"index": 0, "text": "hi", "finish_reason": "length"}]}
    state = run(event(body), DONE, chat=False)
    assert (state.chunk_ns, state.texts, state.finish_reason) == ([10], ["hi"], "length")


def test_reasoning_tokens_come_from_usage_details() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 9,
             "completion_tokens_details": {"reasoning_tokens": 6}}  # fmt: skip
    state = run(chunk(reasoning="x"), chunk(content="y", finish="stop"),
                event({"choices": [], "usage": usage}), DONE)  # fmt: skip
    assert (state.prompt_tokens, state.completion_tokens, state.reasoning_tokens) == (3, 9, 6)


# ---------------------------------------------------------------- success and failure


@pytest.mark.parametrize("reason", ["stop", "length", "tool_calls", "content_filter"])
def test_normal_finish_reasons_succeed(reason: str) -> None:
    assert run(chunk(content="x", finish=reason)).finish_reason == reason  # no [DONE] needed


def test_done_after_output_without_finish_reason_succeeds() -> None:
    assert run(chunk(content="x"), DONE).done


@pytest.mark.parametrize(
    ("reason", "error"),
    [("abort", GenerationAborted), ("cancelled", GenerationAborted), ("error", StreamError),
     ("weird", AbnormalFinish)],
)  # fmt: skip
def test_abnormal_finish_reasons_fail_even_with_done(reason: str, error: type) -> None:
    exc = fails(chunk(content="a"), chunk(content="b"), chunk(finish=reason), DONE)
    assert type(exc) is error
    assert repr(reason) in str(exc)


def test_an_abort_on_one_choice_is_not_hidden_by_a_later_stop() -> None:
    exc = fails(chunk(content="a", finish="abort"), chunk(content="b", finish="stop"), DONE)
    assert isinstance(exc, GenerationAborted)


@pytest.mark.parametrize(
    "parts",
    [(chunk(role="assistant"), DONE), (chunk(role="assistant", finish="stop"),), (DONE,),
     (chunk(content="", finish="length"), DONE)],
    ids=["done", "finish", "only-done", "empty-content"],
)  # fmt: skip
def test_no_output_is_a_failure(parts: tuple[bytes, ...]) -> None:
    assert isinstance(fails(*parts), NoOutput)


def test_an_empty_body_is_no_output() -> None:
    assert isinstance(fails(), NoOutput)


def test_output_then_silence_is_incomplete() -> None:
    assert isinstance(fails(chunk(content="cut")), IncompleteStream)


@pytest.mark.parametrize(
    ("data", "message"),
    [({"code": 400, "details": "Requested sample logprobs of 21"}, "Requested sample logprobs"),
     ({"error": {"message": "engine died"}}, "engine died"),
     ({"message": "too long"}, "too long"), ("plain text", "plain text")],
)  # fmt: skip
def test_an_error_event_fails_with_the_servers_message(data: Any, message: str) -> None:
    payload = data if isinstance(data, str) else json.dumps(data)
    exc = fails(chunk(role="assistant"), f"event: error\ndata: {payload}\n\n".encode(), DONE)
    assert isinstance(exc, StreamError)
    assert message in str(exc)


@pytest.mark.parametrize(
    "obj",
    [{"error": {"message": "overloaded", "type": "server_error"}}, {"error": "overloaded"},
     {"object": "error", "message": "overloaded", "code": 503}],
)  # fmt: skip
def test_an_error_object_in_the_stream_fails_with_its_message(obj: dict[str, Any]) -> None:
    exc = fails(chunk(content="a"), event(obj), DONE)
    assert isinstance(exc, StreamError)
    assert "overloaded" in str(exc)


def test_error_null_in_an_ordinary_chunk_is_not_an_error() -> None:
    body = {"choices": [{"delta": {"content": "x"}, "finish_reason": "stop"}], "error": None}
    assert run(event(body), DONE).chunk_ns == [10]


def test_other_event_types_are_ignored_and_nothing_after_done_counts() -> None:
    state = run(chunk(content="x"), b"event: ping\ndata: hello\n\n", DONE, chunk(content="late"))
    assert state.chunk_ns == [10]


# ---------------------------------------------------------------- JSON bodies


def test_a_json_error_body_on_200_fails_with_its_message() -> None:
    body = json.dumps({"error": {"message": "model overloaded, try later", "code": 503}})
    for content_type in ("application/json", "text/event-stream"):
        exc = fails(body.encode(), content_type=content_type)
        assert isinstance(exc, StreamError)
        assert "model overloaded, try later" in str(exc)


def test_a_non_streamed_completion_succeeds_flagged() -> None:
    body = {"object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Hello there"}}],
            "usage": {"prompt_tokens": 4, "completion_tokens": 2}}  # fmt: skip
    text = json.dumps(body, indent=2).encode()
    state = run(text[:20], text[20:], content_type="application/json")
    assert not state.streamed
    assert state.chunk_ns == [20]  # one output, when the body was complete
    assert state.completion_tokens == 2


def test_a_bom_and_blank_lines_before_a_stream_are_fine() -> None:
    state = run(b"\xef\xbb\xbf", b"\r\n", chunk(content="x", finish="stop"))
    assert state.streamed
    assert state.chunk_ns == [30]


def test_html_is_malformed() -> None:
    assert isinstance(fails(b"<html>502 Bad Gateway</html>\n"), MalformedStream)


# ---------------------------------------------------------------- odd shapes, any JSON


@pytest.mark.parametrize(
    "obj",
    [{"choices": [1]}, {"choices": {"a": 1}}, {"choices": "x"}, {"usage": 5}, {"usage": [1]},
     {"choices": [{"delta": "x"}]}, {"choices": [{"delta": {"content": 5}}]},
     {"choices": [{"delta": {"reasoning": ["x"]}}]}, {"choices": [{"delta": {"tool_calls": "x"}}]},
     {"choices": [{"delta": {"tool_calls": [7]}}]}, {"choices": [{"text": 5}]},
     {"choices": [{"delta": {}, "finish_reason": 3}]}, {"usage": {"completion_tokens": "9"}},
     {"usage": {"completion_tokens": -1}}, {"usage": {"completion_tokens": True}},
     {"usage": {"completion_tokens_details": 4}}, [1, 2], "text", 3],
    ids=repr,
)  # fmt: skip
def test_an_odd_chunk_is_malformed(obj: Any) -> None:
    chat = not (isinstance(obj, dict) and "text" in str(obj))
    exc = fails(chunk(content="a"), event(obj), DONE, chat=chat)
    assert isinstance(exc, MalformedStream)


@pytest.mark.parametrize(
    "data",
    [b'{"choices": [{"delta": {"content": "x"}}], "seed": 123456789012345678901234567890}',
     b'{"choices": [{"delta": {"content": "x"}}], "logprob": NaN}',
     b'{"choices": [{"delta": {"content": "\\ud800x"}}]}'],
    ids=["big-int", "nan", "lone-surrogate"],
)  # fmt: skip
def test_json_a_standard_parser_accepts_is_accepted(data: bytes) -> None:
    state = run(b"data: " + data + b"\n\n", DONE)
    assert len(state.chunk_ns) == 1


def test_loads_prefers_orjson_and_falls_back() -> None:
    assert loads(b'{"a": 1}') == {"a": 1}
    assert loads(b"[1e400]") == [float("inf")]
    with pytest.raises(MalformedStream, match="not JSON"):
        loads(b"{nope")


def test_usage_counts_may_be_integral_floats() -> None:
    usage = {"prompt_tokens": 3.0, "completion_tokens": 2.0}
    state = run(chunk(content="x", finish="stop"), event({"choices": [], "usage": usage}))
    assert (state.prompt_tokens, state.completion_tokens) == (3, 2)


def test_a_body_over_the_limit_is_malformed() -> None:
    state = StreamState(chat=True, max_event_bytes=1024)
    state.feed_stream_start("application/json")
    with pytest.raises(MalformedStream, match="limit of 1024"):
        state.feed(b"{" + b" " * 2000, now_ns=1)
    state = StreamState(chat=True, max_event_bytes=1024)
    state.feed_stream_start("text/event-stream")
    with pytest.raises(MalformedStream, match="limit of 1024"):
        state.feed(b"data: " + b"x" * 2000, now_ns=1)


def test_json_data_over_several_data_lines_is_joined() -> None:
    stream = (
        b'data: {"choices": [{"delta":\ndata:  {"content": "x"},\n'
        b'data: "finish_reason": "stop"}]}\n\n'
    )
    state = run(stream)
    assert (state.texts, state.finish_reason) == (["x"], "stop")


def test_a_final_event_without_a_blank_line_counts() -> None:
    state = run(chunk(content="x"), b"data: [DONE]")
    assert state.done
    state = run(chunk(content="y", finish="stop")[:-2])  # the last chunk's blank line missing
    assert state.finish_reason == "stop"


def test_invalid_utf8_inside_a_string_is_accepted_as_a_standard_parser_would() -> None:
    state = run(b'data: {"choices": [{"delta": {"content": "caf\xe9"}}]}\n\n', DONE)
    assert state.texts == ["caf\ufffd"]


@pytest.mark.parametrize("error", [{}, False, "", 0])
def test_an_empty_error_field_is_not_an_error(error: Any) -> None:
    body = {"choices": [{"delta": {"content": "x"}, "finish_reason": "stop"}], "error": error}
    assert run(event(body)).chunk_ns == [10]


def test_json_without_output_carries_its_message() -> None:
    exc = fails(b'{"detail": "Not Found"}', content_type="application/json")
    assert isinstance(exc, NoOutput)
    assert "Not Found" in str(exc)


def test_json_nested_beyond_any_parser_is_malformed_not_a_crash() -> None:
    exc = fails(chunk(content="a"), b"data: " + b"[" * 100_000 + b"\n\n", DONE)
    assert isinstance(exc, MalformedStream)
