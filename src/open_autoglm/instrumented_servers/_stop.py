"""Stop sequences applied to streamed text, engine-neutral."""

from __future__ import annotations


class StopMatcher:
    """Feeds text deltas; holds back what could still become a stop sequence.

    ``feed`` returns the text safe to emit and whether a stop sequence was hit (the text
    before it is emitted, the stop sequence itself is not, as in OpenAI's API).
    """

    __slots__ = ("_buffer", "_hold", "_stops")

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = stops
        self._hold = max((len(s) for s in stops), default=1) - 1
        self._buffer = ""

    def feed(self, text: str) -> tuple[str, bool]:
        if not self._stops:
            return text, False
        buffer = self._buffer + text
        cut = min((i for i in (buffer.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self._buffer = ""
            return buffer[:cut], True
        keep = min(self._hold, len(buffer))
        emit_to = len(buffer) - keep
        self._buffer = buffer[emit_to:]
        return buffer[:emit_to], False

    def flush(self) -> str:
        rest, self._buffer = self._buffer, ""
        return rest
