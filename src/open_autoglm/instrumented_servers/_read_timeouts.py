"""Read timeouts for the server's connections, which uvicorn does not have.

uvicorn closes a connection idle between requests (``timeout_keep_alive``), but waits forever
for a request's headers and for a body shorter than its ``Content-Length``: a thousand such
connections are held for as long as the client likes. :func:`timed_http_protocol` returns
uvicorn's ``httptools`` protocol with two deadlines (``uvicorn.Config(http=...)`` takes a
protocol class):

* **headers**: from the connection (or the first byte of the next request on a kept-alive
  connection) to the end of the headers, at most ``header_timeout_s`` in all, so a client
  trickling header bytes (slowloris) is cut off too;
* **body**: at most ``body_timeout_s`` between two pieces of a request's body (an idle
  timeout, as nginx's ``client_body_timeout``: a slow upload of a large image still works).
  Time while the server itself stops reading (its body buffer is full) does not count.

On either deadline the server answers ``408 Request Timeout`` (when no response has started)
and closes the connection; the handler waiting for the body sees a disconnect.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_BODY_408: Final = (
    b'{"error":{"message":"the request was not received in time","type":'
    b'"invalid_request_error","param":null,"code":"request_timeout"}}'
)


def timed_http_protocol(header_timeout_s: float, body_timeout_s: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the header and body deadlines above (seconds > 0)."""
    if not (header_timeout_s > 0 and body_timeout_s > 0):
        raise ValueError("read timeouts must be positive seconds")

    class TimedHttpToolsProtocol(HttpToolsProtocol):
        _read_timer: asyncio.TimerHandle | None = None
        _in_headers = False

        def _arm(self, delay: float) -> None:
            self._disarm()
            self._read_timer = self.loop.call_later(delay, self._read_timed_out)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def _read_timed_out(self) -> None:
            self._read_timer = None
            if self.transport.is_closing():
                return
            if not self._in_headers and self.flow is not None and self.flow.read_paused:
                self._arm(body_timeout_s)  # the server is not reading: not the client's delay
                return
            cycle = self.cycle
            if self._in_headers or cycle is None or not cycle.response_started:
                self.transport.write(
                    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                    % (len(_BODY_408), _BODY_408)
                )
            self.transport.close()

        # asyncio.Protocol and parser callbacks
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._in_headers = True
            self._arm(header_timeout_s)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if not self._in_headers:  # a further request on a kept-alive connection
                self._in_headers = True
                self._arm(header_timeout_s)

        def on_headers_complete(self) -> None:
            self._in_headers = False
            self._arm(body_timeout_s)  # cancelled at once when the request has no body
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            self._arm(body_timeout_s)
            super().on_body(body)

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

    return TimedHttpToolsProtocol
