"""One generation from accepted request to response: streaming (SSE) or a single JSON body."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from time import perf_counter_ns

import anyio
from opentelemetry.trace import Span
from starlette.responses import Response, StreamingResponse

from open_autoglm.instrumented_servers._backend import (
    Accepted,
    EngineError,
    Finished,
    GenerationEvent,
    TokenDelta,
    TokenLogprob,
)
from open_autoglm.instrumented_servers._errors import APIError
from open_autoglm.instrumented_servers._protocol import usage_dict
from open_autoglm.instrumented_servers._request_telemetry import RequestTelemetry, ServedRequest
from open_autoglm.instrumented_servers._stop import StopMatcher
from open_autoglm.telemetry import names as n

logger = logging.getLogger(__name__)
_DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class ResponseShape:
    """What differs between chat and text completions."""

    chat: bool
    response_id: str
    created: int
    model: str
    stops: tuple[str, ...]
    include_usage: bool
    #: The request asked for log probabilities (``TokenDelta.logprobs`` are rendered).
    logprobs: bool = False

    @property
    def object_name(self) -> str:
        return "chat.completion" if self.chat else "text_completion"


class Generation:
    """Drives the backend's event stream for one request and records its telemetry."""

    def __init__(
        self,
        events: AsyncGenerator[GenerationEvent, None],
        accepted: Accepted,
        shape: ResponseShape,
        record: ServedRequest,
        span: Span,
        telemetry: RequestTelemetry,
    ) -> None:
        self._events = events
        self._shape = shape
        self._record = record
        self._span = span
        self._telemetry = telemetry
        self._stop = StopMatcher(shape.stops)
        record.stages = accepted.stages
        record.prompt_tokens = accepted.prompt_tokens
        record.response_id = shape.response_id

    # ------------------------------------------------------------------ common
    def _on_delta(self, delta: TokenDelta) -> tuple[str, bool]:
        now = perf_counter_ns()
        record = self._record
        if not record.first_output_ns:
            record.first_output_ns = now
        record.last_output_ns = now
        record.output_tokens += delta.token_count
        text, stopped = self._stop.feed(delta.text)
        self._captured(text)
        return text, stopped

    def _flush(self) -> str:
        rest = self._stop.flush()
        self._captured(rest)
        return rest

    def _captured(self, text: str) -> None:
        """Keeps the text sent, when content capture is on (``record.output_text``)."""
        if text and self._record.output_text is not None:
            self._record.output_text.append(text)

    async def _close(self, completed: bool) -> None:
        record = self._record
        if not completed and record.error_type is None:
            record.cancelled = True
        with anyio.CancelScope(shield=True):
            await self._events.aclose()  # frees the backend's slot when cut short
        try:
            self._telemetry.finish(self._span, record)
        except Exception:  # instrumentation never fails a request
            logger.exception("recording telemetry failed")

    # ------------------------------------------------------------------ non-streaming
    async def respond(self) -> Response:
        texts: list[str] = []
        logprobs: list[TokenLogprob] = []
        finish = "length"
        completed = False
        try:
            async for event in self._events:
                if isinstance(event, TokenDelta):
                    text, stopped = self._on_delta(event)
                    texts.append(text)
                    logprobs.extend(event.logprobs)
                    if stopped:
                        finish = "stop"
                        break
                elif isinstance(event, Finished):
                    texts.append(self._flush())
                    finish = event.finish_reason
            completed = True
            self._record.finish_reason = finish
        except EngineError as exc:
            self._record.error_type = type(exc).__name__
            raise APIError(500, str(exc), type="server_error", code="engine_error",
                           counted=True) from exc  # fmt: skip
        finally:
            await self._close(completed)
        body = self._full_body("".join(texts), finish, logprobs)
        return Response(json.dumps(body), media_type="application/json")

    def _logprobs(self, entries: list[TokenLogprob], offset: int = 0) -> object:
        """The choice's ``logprobs`` in OpenAI's shape (None when not asked for). Chat:
        ``{"content": [{token, logprob, bytes, top_logprobs: [...]}]}``; completions:
        ``{tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}``, text
        offsets counted from ``offset`` characters into the output."""
        if not self._shape.logprobs:
            return None
        if self._shape.chat:
            return {"content": [_chat_logprob(e) for e in entries], "refusal": None}
        offsets = []
        for entry in entries:
            offsets.append(offset)
            offset += len(entry.token)
        return {
            "tokens": [e.token for e in entries],
            "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [dict(e.top) for e in entries],
            "text_offset": offsets,
        }

    def _full_body(self, text: str, finish: str, logprobs: list[TokenLogprob]) -> dict[str, object]:
        shape = self._shape
        choice: dict[str, object]
        lp = self._logprobs(logprobs)
        if shape.chat:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": lp,
                "finish_reason": finish,
            }
        else:
            choice = {"index": 0, "text": text, "logprobs": lp, "finish_reason": finish}
        return {
            "id": shape.response_id,
            "object": shape.object_name,
            "created": shape.created,
            "model": shape.model,
            "choices": [choice],
            "usage": usage_dict(self._record.prompt_tokens, self._record.output_tokens),
        }

    # ------------------------------------------------------------------ streaming
    def streaming_response(self) -> StreamingResponse:
        return StreamingResponse(
            self._sse(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    def _chunk_frame(self) -> tuple[str, str]:
        """Prefix and suffix of a content chunk, around the JSON-encoded text."""
        s = self._shape
        usage = ',"usage":null' if s.include_usage else ""
        head = (
            f'data: {{"id":"{s.response_id}","object":"{s.object_name}'
            f'{".chunk" if s.chat else ""}","created":{s.created},"model":{json.dumps(s.model)},'
            '"choices":[{"index":0,'
        )
        if s.chat:
            return (
                head + '"delta":{"content":',
                f'}},"logprobs":null,"finish_reason":null}}]{usage}}}\n\n',
            )
        return head + '"text":', f',"logprobs":null,"finish_reason":null}}]{usage}}}\n\n'

    def _final_chunks(self, finish: str) -> bytes:
        s = self._shape
        obj = s.object_name + (".chunk" if s.chat else "")
        choice: dict[str, object] = (
            {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}
            if s.chat
            else {"index": 0, "text": "", "logprobs": None, "finish_reason": finish}
        )
        base = {"id": s.response_id, "object": obj, "created": s.created, "model": s.model}
        last: dict[str, object] = {**base, "choices": [choice]}
        if s.include_usage:
            last["usage"] = None
        out = f"data: {json.dumps(last)}\n\n"
        if s.include_usage:
            usage = usage_dict(self._record.prompt_tokens, self._record.output_tokens)
            out += f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
        return out.encode()

    def _logprob_chunk(self, text: str, entries: tuple[TokenLogprob, ...], offset: int) -> bytes:
        """A content chunk with its tokens' log probabilities (the slower, general path)."""
        s = self._shape
        lp = self._logprobs(list(entries), offset)
        choice: dict[str, object] = (
            {"index": 0, "delta": {"content": text}, "logprobs": lp, "finish_reason": None}
            if s.chat
            else {"index": 0, "text": text, "logprobs": lp, "finish_reason": None}
        )
        chunk: dict[str, object] = {
            "id": s.response_id,
            "object": s.object_name + (".chunk" if s.chat else ""),
            "created": s.created,
            "model": s.model,
            "choices": [choice],
        }
        if s.include_usage:
            chunk["usage"] = None
        return f"data: {json.dumps(chunk)}\n\n".encode()

    async def _sse(self) -> AsyncIterator[bytes]:
        head, tail = self._chunk_frame()
        dumps = json.dumps
        finish = "length"
        completed = False
        with_logprobs = self._shape.logprobs
        offset = 0
        # Chat streams open with a role-only chunk. It goes out with the first token, as
        # vLLM sends it, not before prefill: clients that time TTFT from the first chunk
        # (``vllm bench serve`` on chat) would otherwise measure the time to accept.
        role = (head + '"","role":"assistant"' + tail).encode() if self._shape.chat else b""
        try:
            async for event in self._events:
                if isinstance(event, TokenDelta):
                    text, stopped = self._on_delta(event)
                    if with_logprobs and event.logprobs:
                        yield role + self._logprob_chunk(text, event.logprobs, offset)
                        role = b""
                        offset += sum(len(e.token) for e in event.logprobs)
                    elif text:
                        yield role + (head + dumps(text) + tail).encode()
                        role = b""
                    elif role:
                        yield role
                        role = b""
                    if stopped:
                        finish = "stop"
                        break
                elif isinstance(event, Finished):
                    rest = self._flush()
                    if rest:
                        yield role + (head + dumps(rest) + tail).encode()
                        role = b""
                    finish = event.finish_reason
            self._record.finish_reason = finish
            completed = True
            yield role + self._final_chunks(finish) + _DONE
        except EngineError as exc:
            self._record.error_type = type(exc).__name__
            error = APIError(500, str(exc), type="server_error", code="engine_error")
            completed = True
            yield role + f"data: {json.dumps(error.body())}\n\n".encode() + _DONE
        finally:
            await self._close(completed)


def _chat_logprob(entry: TokenLogprob) -> dict[str, object]:
    return {
        "token": entry.token,
        "logprob": entry.logprob,
        "bytes": list(entry.token.encode()),
        "top_logprobs": [
            {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in entry.top
        ],
    }


# Response ids need to be unique, not secret. ``uuid4()`` calls ``os.urandom`` per request; a
# profile of the loaded server showed those calls taking ~0.46 ms each here. One generator,
# seeded from the OS once, is enough.
_ids = random.Random()


def new_response_id(chat: bool) -> str:
    return f"{'chatcmpl' if chat else 'cmpl'}-{_ids.getrandbits(128):032x}"


def created_now() -> int:
    return int(time.time())


OPERATIONS = {True: n.OPERATION_CHAT, False: n.OPERATION_TEXT_COMPLETION}
