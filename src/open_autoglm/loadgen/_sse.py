"""An incremental parser of ``text/event-stream`` (server-sent events), read boundaries anywhere.

It follows the event-stream interpretation of the HTML standard (section "Server-sent events",
"Parsing an event stream" and "Interpreting an event stream"):

* one leading UTF-8 byte order mark is skipped, even when it arrives split over reads;
* a line ends with CRLF, a lone LF or a lone CR; a CR at the end of one read and an LF at the
  start of the next are one line ending;
* a line that starts with ``:`` is a comment; ``field:value`` drops one space after the colon;
  a line without a colon is a field with an empty value; unknown fields are ignored;
* ``data`` lines are joined with LF; ``event`` sets the type of the next event (default
  ``message``); ``id`` sets the last event id unless it holds NUL; ``retry`` takes only ASCII
  digits; an empty line dispatches the event, unless its data buffer is empty.

Two choices go beyond the standard, both for a load generator's needs: :meth:`SSEParser.close`
dispatches an event still pending at the end of the stream (the standard discards it; servers
and proxies that drop the final blank line still sent that chunk), and an event larger than
``max_event_bytes`` (16 MiB by default) raises :class:`EventTooLarge` instead of growing without
bound. Values stay UTF-8 ``bytes``; every delimiter is ASCII, so splitting bytes before decoding
gives the same events as decoding first.
"""

from __future__ import annotations

from typing import Final, NamedTuple

#: The default limit on one event's size (its lines, separators included), in bytes.
DEFAULT_MAX_EVENT_BYTES: Final = 16 * 1024 * 1024
_BOM: Final = b"\xef\xbb\xbf"


class EventTooLarge(ValueError):
    """One event grew past the parser's ``max_event_bytes``."""


class SSEEvent(NamedTuple):
    """One dispatched event: ``data`` is the UTF-8 bytes of the joined data lines."""

    data: bytes
    event: str = "message"
    id: str = ""


_new: Final = tuple.__new__  # SSEEvent without its Python-level __new__, in the hot loop


class SSEParser:
    """Feed it the bytes of one response as they arrive; it returns the events completed.

    ``retry`` holds the last valid ``retry`` field (milliseconds) and ``last_event_id`` the
    last event id, as an ``EventSource`` would keep them.
    """

    __slots__ = (
        "_bom_checked",
        "_data",
        "_event_type",
        "_max",
        "_pending",
        "_pending_cr",
        "_pending_len",
        "last_event_id",
        "retry",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if max_event_bytes < 1:
            raise ValueError(f"max_event_bytes must be positive, got {max_event_bytes}")
        self._max = max_event_bytes
        self._bom_checked = False
        self._pending: list[bytes] = []  # LF-normalised bytes since the last blank line
        self._pending_len = 0
        self._pending_cr = False  # the last read ended with CR: a leading LF belongs to it
        self._data: list[bytes] = []
        self._event_type = ""
        self.last_event_id = ""
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events that ``chunk`` completes, in order.

        Raises:
            EventTooLarge: the event being read is over ``max_event_bytes``.
        """
        if self._pending_cr or not self._bom_checked or b"\r" in chunk:
            chunk = self._normalise(chunk)
        if not chunk:
            return []
        pending = self._pending
        if pending:
            if b"\n\n" not in chunk and not (chunk[:1] == b"\n" and pending[-1][-1:] == b"\n"):
                return self._hold(chunk)
            text = b"".join(pending) + chunk
            pending.clear()
        elif b"\n\n" not in chunk:
            return self._hold(chunk)
        else:
            text = chunk
        blocks = text.split(b"\n\n")
        rest = blocks.pop()
        if rest:
            pending.append(rest)
        self._pending_len = len(rest)
        if len(text) > self._max:
            for block in blocks:
                if len(block) > self._max:
                    self._too_large(len(block))
            if self._pending_len > self._max:
                self._too_large(self._pending_len)
        events: list[SSEEvent] = []
        last_id = self.last_event_id
        for block in blocks:
            # the common shape, one "data:" line, takes no per-line loop (the event type is
            # always reset at a block's start: the previous block ended with a dispatch)
            if block[:5] == b"data:" and b"\n" not in block:
                data = block[6:] if block[5:6] == b" " else block[5:]
                events.append(_new(SSEEvent, (data, "message", last_id)))
                continue
            for line in block.split(b"\n"):
                self._line(line, events)
            self._dispatch(events)
            last_id = self.last_event_id
        return events

    def _normalise(self, chunk: bytes) -> bytes:
        """The slow path: a BOM still possible, a CR at the end of the last read, or CRs."""
        if not chunk:
            return chunk
        if not self._bom_checked:
            chunk = self._strip_bom(chunk)
            if not chunk:
                return chunk
        if self._pending_cr:
            self._pending_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            if chunk[-1:] == b"\r":
                self._pending_cr = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return chunk

    def _hold(self, chunk: bytes) -> list[SSEEvent]:
        """Keep a read that completes no event; the limit bounds what is kept."""
        self._pending.append(chunk)
        self._pending_len += len(chunk)
        if self._pending_len > self._max:
            self._too_large(self._pending_len)
        return []

    def close(self) -> list[SSEEvent]:
        """End of stream: the event still pending, if it has data (see the module notes)."""
        events: list[SSEEvent] = []
        if self._pending:
            text = b"".join(self._pending)
            self._pending.clear()
            self._pending_len = 0
            for line in text.split(b"\n"):
                self._line(line, events)
        self._dispatch(events)
        return events

    @property
    def pending_bytes(self) -> int:
        """Bytes received but not yet part of a dispatched event."""
        return self._pending_len

    def _strip_bom(self, chunk: bytes) -> bytes:
        head = b"".join(self._pending) + chunk if self._pending else chunk
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._pending = [head]  # maybe a BOM split over reads: wait for more
            self._pending_len = len(head)
            return b""
        self._bom_checked = True
        self._pending = []
        self._pending_len = 0
        return head[len(_BOM) :] if head.startswith(_BOM) else head

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        if line[:1] == b":":
            return  # a comment
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event_type = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value and value.isdigit():  # bytes.isdigit: ASCII only
            self.retry = int(value)

    def _dispatch(self, events: list[SSEEvent]) -> None:
        data, self._data = self._data, []
        event_type, self._event_type = self._event_type, ""
        if data:
            events.append(SSEEvent(b"\n".join(data), event_type or "message", self.last_event_id))

    def _too_large(self, size: int) -> None:
        self._pending.clear()
        self._pending_len = 0
        self._data = []
        raise EventTooLarge(
            f"a server-sent event of over {size} bytes is over the limit of {self._max} bytes"
        )
