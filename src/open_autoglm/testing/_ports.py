"""A free TCP port, for a server that must be told its port before it starts."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listened on a moment ago.

    The port is only free until someone binds it: prefer port 0 and reading the bound port
    back wherever the server allows it (``open-autoglm serve --port 0 --ready-file``).
    """
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
