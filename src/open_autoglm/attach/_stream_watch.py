"""What the proxy learns from a response it forwards: first output, usage, finish, errors.

The proxy forwards every chunk as it arrives; this reads a copy. A streamed (SSE) response is
read event by event: a ``data:`` payload carrying output (``content``, ``reasoning_content`` /
``reasoning``, ``tool_calls``, or ``text`` for completions) stamps the first and last output,
``finish_reason`` and ``usage`` (``stream_options.include_usage``) are kept, and an error
object or ``event: error`` marks the stream failed. A plain JSON body is kept (up to a bound)
and read once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Final

import orjson

#: Most bytes of a non-streamed response body kept to read ``usage`` from.
MAX_JSON_BODY: Final = 4 * 1024 * 1024
_OUTPUT_KEYS: Final = ("content", "reasoning_content", "reasoning")


@dataclass(slots=True)
class ResponseFacts:
    """perf_counter_ns stamps (0: not seen) and what the upstream reported."""

    first_output_ns: int = 0
    last_output_ns: int = 0
    output_chunks: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    response_model: str | None = None
    response_id: str | None = None
    error_type: str | None = None
    done: bool = False  # ``data: [DONE]`` seen
    usage: dict[str, Any] = field(default_factory=dict)


def _has_output(choice: dict[str, Any]) -> bool:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        if any(delta.get(k) for k in _OUTPUT_KEYS):
            return True
        if delta.get("tool_calls"):
            return True
    return bool(choice.get("text"))


def read_payload(facts: ResponseFacts, payload: dict[str, Any], now_ns: int) -> None:
    """Fold one JSON object (a stream chunk or a whole body) into ``facts``."""
    error = payload.get("error")
    if error is not None:
        kind = error.get("type") if isinstance(error, dict) else None
        facts.error_type = str(kind or "stream_error")
        return
    if facts.response_id is None and isinstance(payload.get("id"), str):
        facts.response_id = payload["id"]
        model = payload.get("model")
        facts.response_model = model if isinstance(model, str) else None
    usage = payload.get("usage")
    if isinstance(usage, dict):
        facts.usage = usage
        if isinstance(usage.get("prompt_tokens"), int):
            facts.prompt_tokens = usage["prompt_tokens"]
        if isinstance(usage.get("completion_tokens"), int):
            facts.completion_tokens = usage["completion_tokens"]
    choices = payload.get("choices")
    if not choices or not isinstance(choices, list):
        return
    choice = choices[0]
    if not isinstance(choice, dict):
        return
    message = choice.get("message")
    if _has_output(choice) or (
        isinstance(message, dict) and (message.get("content") or message.get("tool_calls"))
    ):
        if not facts.first_output_ns:
            facts.first_output_ns = now_ns
        facts.last_output_ns = now_ns
        facts.output_chunks += 1
    reason = choice.get("finish_reason")
    if isinstance(reason, str):
        facts.finish_reason = reason


class SseWatcher:
    """Reads a copy of an SSE stream, chunk by chunk (chunks may split lines anywhere)."""

    __slots__ = ("_error_event", "_tail", "facts")

    def __init__(self) -> None:
        self.facts = ResponseFacts()
        self._tail = b""
        self._error_event = False

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk if self._tail else chunk
        lines = data.split(b"\n")
        self._tail = lines.pop()
        now = perf_counter_ns()
        facts = self.facts
        for line in lines:
            if line.startswith(b"data:"):
                body = line[5:].strip()
                if body == b"[DONE]":
                    facts.done = True
                    continue
                try:
                    payload = orjson.loads(body)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(payload, dict):
                    if self._error_event and "error" not in payload:
                        payload = {"error": payload}
                    read_payload(facts, payload, now)
                self._error_event = False
            elif line.startswith(b"event:"):
                self._error_event = line[6:].strip() == b"error"

    def close(self) -> None:
        if self._tail:
            self.feed(b"\n")


class JsonWatcher:
    """Keeps a copy of a JSON body (up to :data:`MAX_JSON_BODY`) and reads it at the end."""

    __slots__ = ("_parts", "_size", "facts")

    def __init__(self) -> None:
        self.facts = ResponseFacts()
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= MAX_JSON_BODY:
            self._parts.append(chunk)

    def close(self) -> None:
        if not self._parts or self._size > MAX_JSON_BODY:
            return
        try:
            payload = orjson.loads(b"".join(self._parts))
        except orjson.JSONDecodeError:
            return
        if isinstance(payload, dict):
            read_payload(self.facts, payload, perf_counter_ns())
