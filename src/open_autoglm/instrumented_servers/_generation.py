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
)
from open_autoglm.instrumented_servers._errors import APIError
from open_autoglm.instrumented_servers._protocol import usage_dict
from open_autoglm.instrumented_servers._request_telemetry import RequestRecord, RequestTelemetry
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
        record: RequestRecord,
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
        finish = "length"
        completed = False
        try:
            async for event in self._events:
                if isinstance(event, TokenDelta):
                    text, stopped = self._on_delta(event)
                    texts.append(text)
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
            raise APIError(500, str(exc), type="server_error", code="engine_error") from exc
        finally:
            await self._close(completed)
        return Response(
            json.dumps(self._full_body("".join(texts), finish)), media_type="application/json"
        )

    def _full_body(self, text: str, finish: str) -> dict[str, object]:
        shape = self._shape
        choice: dict[str, object]
        if shape.chat:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish,
            }
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
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

    async def _sse(self) -> AsyncIterator[bytes]:
        head, tail = self._chunk_frame()
        dumps = json.dumps
        finish = "length"
        completed = False
        try:
            if self._shape.chat:
                yield (head + '"","role":"assistant"' + tail).encode()
            async for event in self._events:
                if isinstance(event, TokenDelta):
                    text, stopped = self._on_delta(event)
                    if text:
                        yield (head + dumps(text) + tail).encode()
                    if stopped:
                        finish = "stop"
                        break
                elif isinstance(event, Finished):
                    rest = self._flush()
                    if rest:
                        yield (head + dumps(rest) + tail).encode()
                    finish = event.finish_reason
            self._record.finish_reason = finish
            completed = True
            yield self._final_chunks(finish) + _DONE
        except EngineError as exc:
            self._record.error_type = type(exc).__name__
            error = APIError(500, str(exc), type="server_error", code="engine_error")
            completed = True
            yield f"data: {json.dumps(error.body())}\n\n".encode() + _DONE
        finally:
            await self._close(completed)


# Response ids need to be unique, not secret. ``uuid4()`` calls ``os.urandom`` per request; a
# profile of the loaded server showed those calls taking ~0.46 ms each here. One generator,
# seeded from the OS once, is enough.
_ids = random.Random()


def new_response_id(chat: bool) -> str:
    return f"{'chatcmpl' if chat else 'cmpl'}-{_ids.getrandbits(128):032x}"


def created_now() -> int:
    return int(time.time())


OPERATIONS = {True: n.OPERATION_CHAT, False: n.OPERATION_TEXT_COMPLETION}
