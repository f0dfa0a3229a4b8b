"""The listening socket of ``serve`` and ``proxy``, bound here so a busy port is one line.

uvicorn binds its own socket otherwise, and a port in use ends in its ``ERROR: [Errno 98]``
log line and exit 3; binding first and handing the socket to uvicorn makes the failure a
:class:`~open_autoglm.commands.UsageError` (one line, exit 2), as ``collector`` already does.
"""

from __future__ import annotations

import socket

from open_autoglm.commands._errors import UsageError


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (0: a free port) and listening.

    IPv6 for a host with a ``:``. Raises :class:`UsageError` naming the address when the port
    is out of range, the host cannot be resolved, or the address cannot be bound (in use, not
    an address of this machine, no permission).
    """
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # uvicorn's own choice: a restarted server can reuse a port in TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise UsageError(f"cannot listen on {host}:{port}: {reason}") from exc
    return sock
