"""What one response says, read as it arrives: output chunk times, finish, usage and errors.

The bytes go through :class:`~open_autoglm.loadgen._sse.SSEParser`; each event's data is an
OpenAI-style chunk (chat ``delta`` or completions ``text``). A body that is one JSON document
(``Content-Type: application/json``, or a body whose first byte is ``{``) is read whole: an
error object becomes a failure carrying the server's message, a complete completion is a
success flagged as not streamed.

Definitions (design.md, "Metric definitions"):

* output is any generated delta: ``content``, ``reasoning_content``, ``reasoning``,
  ``tool_calls`` (and the legacy ``function_call``), ``refusal``, or ``text`` for completions;
  a role-only chunk is not output. :attr:`StreamState.chunk_ns` holds the arrival of every
  chunk with output, :attr:`StreamState.answer_ns` the first with answer (non-reasoning) output.
* success: output was produced and the stream ended normally (a normal finish reason, or
  ``[DONE]`` after output). An abnormal finish reason, an error object, an ``event: error``
  event, or no output is a failure, raised by :meth:`StreamState.finish` or as soon as seen.
* a chunk of an unexpected shape (``"choices": [1]``, ``"usage": 5``) is
  :class:`~open_autoglm.loadgen._errors.MalformedStream`, for that request only.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

import orjson

from open_autoglm.loadgen._errors import (
    AbnormalFinish,
    GenerationAborted,
    IncompleteStream,
    MalformedStream,
    NoOutput,
    StreamError,
)
from open_autoglm.loadgen._sse import DEFAULT_MAX_EVENT_BYTES, EventTooLarge, SSEEvent, SSEParser

#: Finish reasons that end a generation normally (OpenAI's, then TGI's and Anthropic's names).
NORMAL_FINISH_REASONS: Final = frozenset(
    {
        "stop",
        "length",
        "tool_calls",
        "function_call",
        "content_filter",
        "eos_token",
        "stop_sequence",
        "end_turn",
        "max_tokens",
    }
)
_ABORT_REASONS: Final = frozenset({"abort", "aborted", "cancelled", "canceled"})
#: A delta with only these keys carries at most ``content``: the fast path.
_PLAIN_DELTA: Final = frozenset({"content", "role"})
_JSON_TYPES: Final = ("application/json",)
_WHITESPACE: Final = b" \t\r\n"
_BOM: Final = b"\xef\xbb\xbf"


def loads(data: bytes) -> Any:
    """JSON as any standard parser accepts it: ``orjson`` first, :mod:`json` where it refuses
    (invalid UTF-8, lone surrogates, numbers beyond 64 bits, NaN).

    Raises:
        MalformedStream: no standard parser accepts ``data``.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data.decode("utf-8", "replace"))
    except (ValueError, RecursionError):  # (nesting deeper than the interpreter's stack)
        raise MalformedStream(f"data is not JSON: {data[:80]!r}") from None


def error_text(obj: Any) -> str:
    """The server's own message in an error payload (``error.message``, ``message``,
    ``details``, ``detail``), else the payload itself, at most 200 characters."""
    if isinstance(obj, dict):
        inner = obj.get("error")
        if isinstance(inner, str) and inner:
            return inner[:200]
        if isinstance(inner, dict):
            obj = inner
        for key in ("message", "details", "detail", "msg"):
            value = obj.get(key)
            if isinstance(value, str) and value:
                return value[:200]
        return orjson.dumps(obj, default=str).decode()[:200]
    return str(obj)[:200]


def server_message(body: bytes) -> str:
    """An error body's own message: ``error.message`` and its kin when it is JSON, else the
    text (for an HTTP error status)."""
    try:
        return error_text(loads(body.strip(_WHITESPACE)))
    except MalformedStream:
        return body.decode("utf-8", "replace")[:200]


def _is_error(message: dict[str, Any]) -> bool:
    # "error": null (or "") inside an ordinary chunk is not an error
    return bool(message.get("error")) or message.get("object") == "error"


def _count(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if type(value) is int and value >= 0:
        return value
    if type(value) is float and value.is_integer() and value >= 0:
        return int(value)
    raise MalformedStream(f"{what} is not a token count: {str(value)[:80]}")


class StreamState:
    """One response, fed as it is read; keeps only what the metrics need."""

    __slots__ = (
        "_chat",
        "_head",
        "_head_bytes",
        "_last_ns",
        "_mode",
        "_parser",
        "answer_ns",
        "chunk_ns",
        "completion_tokens",
        "done",
        "events",
        "finish_reason",
        "max_event_bytes",
        "prompt_tokens",
        "reasoning_texts",
        "reasoning_tokens",
        "response_id",
        "response_model",
        "streamed",
        "texts",
    )

    def __init__(self, chat: bool, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._chat = chat
        self.max_event_bytes = max_event_bytes
        self._parser = SSEParser(max_event_bytes)
        self._mode = "sniff"  # until the first byte that is not blank: "sse" or "json"
        self._head: list[bytes] = []
        self._head_bytes = 0
        self._last_ns: int | None = None  # the last read of a JSON body
        self.chunk_ns: list[int] = []  # arrival of every chunk with output
        self.answer_ns: int | None = None  # first chunk with answer (non-reasoning) output
        self.texts: list[str] = []
        self.reasoning_texts: list[str] = []
        self.done = False
        self.events = 0
        self.finish_reason: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.reasoning_tokens: int | None = None
        self.streamed = True
        self.response_id: str | None = None  # the first chunk's ``id`` and ``model``
        self.response_model: str | None = None

    def feed_stream_start(self, content_type: str = "text/event-stream") -> None:
        """The response's headers arrived: a JSON content type is read as one document."""
        if content_type.lower().strip() in _JSON_TYPES or content_type.endswith("+json"):
            self._mode = "json"

    def feed(self, data: bytes, now_ns: int) -> None:
        """Bytes as read from the network; ``now_ns`` is when (``perf_counter_ns``)."""
        mode = self._mode
        if mode == "sse":
            try:
                events = self._parser.feed(data)
            except EventTooLarge as exc:
                raise MalformedStream(str(exc)) from None
            if len(events) == 1 and not self.done:  # the usual read: one chunk, inline
                payload, kind, _ = events[0]
                if kind == "message" and payload[:1] == b"{":
                    try:
                        message = orjson.loads(payload)
                    except orjson.JSONDecodeError:
                        pass
                    else:
                        self.events += 1
                        self._messages((message,), now_ns)
                        return
            if events:
                self._events(events, now_ns)
            return
        self._head.append(data)
        self._head_bytes += len(data)
        self._last_ns = now_ns
        size = self._head_bytes
        if size > self.max_event_bytes:
            raise MalformedStream(
                f"a response body of over {size} bytes is over the limit of "
                f"{self.max_event_bytes} bytes"
            )
        if mode == "json":
            return
        head = b"".join(self._head).lstrip(_WHITESPACE)
        if head.startswith(_BOM):
            head = head[len(_BOM) :].lstrip(_WHITESPACE)
        if not head or (len(head) < len(_BOM) and _BOM.startswith(head)):
            return  # nothing but blanks (or a partial BOM) so far
        self._mode = "json" if head[:1] == b"{" else "sse"
        if self._mode == "sse":
            data = b"".join(self._head)
            self._head = [data[:100]]  # kept to quote if no event ever comes
            self._events(self._feed_sse(data), now_ns)

    def finish(self, now_ns: int | None = None) -> None:
        """The body ended cleanly: judge the response.

        Raises:
            RequestError: a subclass saying why the request failed (see the module notes).
        """
        now_ns = time.perf_counter_ns() if now_ns is None else now_ns
        if self._mode == "sse":
            try:
                events = self._parser.close()
            except EventTooLarge as exc:  # pragma: no cover - close() never grows the event
                raise MalformedStream(str(exc)) from None
            self._events(events, now_ns)
        elif self._mode == "json" and self._head:
            self._document(b"".join(self._head), self._last_ns or now_ns)
            self._head = []
        reason = self.finish_reason
        if reason is not None and reason not in NORMAL_FINISH_REASONS:
            said = f"the server ended the generation with finish_reason {reason!r}"
            if reason in _ABORT_REASONS:
                raise GenerationAborted(said)
            if reason == "error":
                raise StreamError(said)
            raise AbnormalFinish(said)
        if not self.chunk_ns:
            if self.done or reason is not None:
                raise NoOutput("the response ended without any output")
            if not self.events and self._mode == "sniff":
                raise NoOutput("the response was empty")
            if not self.events:
                start = b"".join(self._head)[:100]
                raise MalformedStream(f"the response carried no server-sent events: {start!r}")
            raise IncompleteStream("the stream ended without [DONE] or a finish reason")
        if not self.done and reason is None:
            raise IncompleteStream("the stream ended without [DONE] or a finish reason")

    # ------------------------------------------------------------------ internals

    def _feed_sse(self, data: bytes) -> list[SSEEvent]:
        try:
            return self._parser.feed(data)
        except EventTooLarge as exc:
            raise MalformedStream(str(exc)) from None

    def _events(self, events: list[SSEEvent], now_ns: int) -> None:
        if not events:
            return
        self.events += len(events)
        if self.done:
            return  # nothing after [DONE] counts
        # Fast path: every event a plain "message" whose data is one JSON object; one orjson
        # call parses them all as an array. The count check catches data that only parses
        # when joined ('{"a":1},{"b":2}').
        payloads = [e.data for e in events if e.event == "message" and e.data[:1] == b"{"]
        if len(payloads) == len(events):
            try:
                messages = orjson.loads(b"[" + b",".join(payloads) + b"]")
            except orjson.JSONDecodeError:
                pass
            else:
                if len(messages) == len(payloads):
                    self._messages(messages, now_ns)
                    return
        for event in events:
            if self.done:
                return
            self._event(event, now_ns)

    def _event(self, event: SSEEvent, now_ns: int) -> None:
        data = event.data.strip(_WHITESPACE)
        if event.event == "error":
            text = error_text(_try_json(data)) if data else "(no message)"
            raise StreamError(f"the server sent an error event: {text}")
        if event.event != "message":
            return  # other event types are not OpenAI chunks (an EventSource ignores them)
        if data == b"[DONE]":
            self.done = True
            return
        if not data:
            return
        message = loads(data)
        self._messages([message], now_ns)

    def _document(self, body: bytes, now_ns: int) -> None:
        """A whole JSON body: an error, or a completion sent without streaming."""
        body = body.strip(_WHITESPACE)
        if body.startswith(_BOM):
            body = body[len(_BOM) :]
        message = loads(body)
        if type(message) is dict and _is_error(message):
            raise StreamError(f"the server answered with an error: {error_text(message)}")
        self.events += 1
        self.streamed = False
        self._messages([message], now_ns)
        self.done = True  # one complete document: nothing more was to come
        if not self.chunk_ns and self.finish_reason in NORMAL_FINISH_REASONS | {None}:
            raise NoOutput(f"the server answered with JSON but no output: {error_text(message)}")

    def _messages(self, messages: list[Any] | tuple[Any, ...], now_ns: int) -> None:
        """Take what the metrics need from parsed chunks (the hot loop, kept inline)."""
        chat = self._chat
        texts = self.texts
        for message in messages:
            if type(message) is not dict:
                raise MalformedStream(f"data is not a JSON object: {str(message)[:80]}")
            if message.get("error") or message.get("object") == "error":
                raise StreamError(f"the server sent an error in the stream: {error_text(message)}")
            if self.response_id is None:
                self._identity(message)
            choices = message.get("choices")
            if choices:
                if type(choices) is not list:
                    raise MalformedStream(f"choices is not a list: {str(choices)[:80]}")
                output = answer = False
                for choice in choices:
                    if type(choice) is not dict:
                        raise MalformedStream(f"a choice is not an object: {str(choice)[:80]}")
                    if chat:
                        delta = choice.get("delta")
                        if type(delta) is dict and delta.keys() <= _PLAIN_DELTA:
                            text = delta.get("content")  # the usual chunk: text, or nothing
                        else:
                            got, got_answer = self._delta(choice)
                            output |= got
                            answer |= got_answer
                            text = None
                    else:
                        text = choice.get("text")
                    if text:
                        if type(text) is not str:
                            raise MalformedStream(f"text is not a string: {str(text)[:80]}")
                        texts.append(text)
                        output = answer = True
                    reason = choice.get("finish_reason")
                    if reason is not None:
                        if type(reason) is not str:
                            raise MalformedStream(f"finish_reason is not a string: {reason}")
                        if reason and self.finish_reason not in _ABNORMAL_STICKY:
                            self.finish_reason = reason
                if output:
                    self.chunk_ns.append(now_ns)
                    if answer and self.answer_ns is None:
                        self.answer_ns = now_ns
            elif choices is not None and type(choices) is not list:
                raise MalformedStream(f"choices is not a list: {str(choices)[:80]}")
            usage = message.get("usage")
            if usage is not None:
                self._usage(usage)

    def _identity(self, message: dict[str, Any]) -> None:
        """The response's ``id`` and ``model`` (``gen_ai.response.*``), from its first chunk;
        values that are not strings are left out (they are not ours to judge)."""
        response_id, model = message.get("id"), message.get("model")
        self.response_id = response_id[:256] if type(response_id) is str else ""
        if type(model) is str and model:
            self.response_model = model[:256]

    def _delta(self, choice: dict[str, Any]) -> tuple[bool, bool]:
        """(any output, answer output) of one chat choice; its text kept for counting."""
        delta = choice.get("delta")
        if delta is None:
            delta = choice.get("message")  # a non-streamed completion, or a lax server
            if delta is None:
                return False, False
        if type(delta) is not dict:
            raise MalformedStream(f"delta is not an object: {str(delta)[:80]}")
        answer = False
        content = delta.get("content")
        if content:
            if type(content) is not str:
                raise MalformedStream(f"content is not a string: {str(content)[:80]}")
            self.texts.append(content)
            answer = True
        refusal = delta.get("refusal")
        if refusal:
            if type(refusal) is not str:
                raise MalformedStream(f"refusal is not a string: {str(refusal)[:80]}")
            self.texts.append(refusal)
            answer = True
        calls = delta.get("tool_calls")
        if calls:
            if type(calls) is not list:
                raise MalformedStream(f"tool_calls is not a list: {str(calls)[:80]}")
            for call in calls:
                self._call(call)
            answer = True
        call = delta.get("function_call")
        if call:
            self._call({"function": call})
            answer = True
        reasoning = False
        for key in ("reasoning_content", "reasoning"):
            text = delta.get(key)
            if text:
                if type(text) is not str:
                    raise MalformedStream(f"{key} is not a string: {str(text)[:80]}")
                self.texts.append(text)
                self.reasoning_texts.append(text)
                reasoning = True
                break  # servers that send both send the same text twice
        return answer or reasoning, answer

    def _call(self, call: Any) -> None:
        if type(call) is not dict:
            raise MalformedStream(f"a tool call is not an object: {str(call)[:80]}")
        function = call.get("function")
        if function is None:
            return
        if type(function) is not dict:
            raise MalformedStream(f"a tool call's function is not an object: {function}")
        for key in ("name", "arguments"):
            text = function.get(key)
            if text:
                if type(text) is not str:
                    raise MalformedStream(f"a tool call's {key} is not a string: {text}")
                self.texts.append(text)

    def _usage(self, usage: Any) -> None:
        if type(usage) is not dict:
            raise MalformedStream(f"usage is not an object: {str(usage)[:80]}")
        prompt = _count(usage.get("prompt_tokens"), "usage.prompt_tokens")
        completion = _count(usage.get("completion_tokens"), "usage.completion_tokens")
        if prompt is not None:
            self.prompt_tokens = prompt
        if completion is not None:
            self.completion_tokens = completion
        details = usage.get("completion_tokens_details")
        if details is not None:
            if type(details) is not dict:
                raise MalformedStream(f"completion_tokens_details is not an object: {details}")
            reasoning = _count(details.get("reasoning_tokens"), "reasoning_tokens")
            if reasoning is not None:
                self.reasoning_tokens = reasoning


#: Once one choice ends abnormally, a later normal finish of another choice does not hide it.
_ABNORMAL_STICKY: Final = _ABORT_REASONS | {"error"}


def _try_json(data: bytes) -> Any:
    try:
        return loads(data)
    except MalformedStream:
        return data.decode("utf-8", "replace")
