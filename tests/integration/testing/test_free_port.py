"""``open_autoglm.testing.free_port``: a port a server can be told before it starts."""

from __future__ import annotations

import socket

from open_autoglm.testing import free_port


def test_the_port_can_be_bound_and_listened_on() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
