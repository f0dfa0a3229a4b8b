"""The uvicorn server of ``open-autoglm serve`` and ``open-autoglm proxy``: one start and one
stop for both.

* Started: ``announce(url)`` is called and ``ready_file`` receives ``{url, port, pid}`` as JSON
  (written to a temporary name, then renamed: a reader never sees half a file).
* Stopping: the ready file goes first (the server no longer accepts requests), then uvicorn
  closes its connections, then the span export is shut down and its counts written to
  ``export_stats``. This runs in uvicorn's ``shutdown``: after a SIGTERM, uvicorn re-raises
  the signal once ``serve`` returns, and the default handler ends the process before any
  ``finally`` of the caller.
* A second stop signal forces the exit: uvicorn stops waiting for open connections and the
  span export is abandoned (:meth:`Tracing.abandon`), so a stop never hangs on a collector
  that does not answer.

uvicorn is imported when :func:`serve_app` runs, not with this package.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from open_autoglm.telemetry._tracing import Tracing

if TYPE_CHECKING:
    import uvicorn


async def serve_app(
    config: uvicorn.Config,
    *,
    tracing: Tracing | None,
    announce: Callable[[str], None],
    ready_file: Path | None = None,
    export_stats: Path | None = None,
    sock: socket.socket | None = None,
) -> int:
    """Serve ``config``'s app until stopped (on ``sock``, bound and listening, when given,
    else on ``config.host``:``config.port``); 0 on a clean stop, 1 if it never started."""
    import uvicorn

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                port = self.servers[0].sockets[0].getsockname()[1]
                url = f"http://{config.host}:{port}"
                announce(url)
                _publish(ready_file, url, port)

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.should_exit:  # a second stop signal forces the exit: no more waiting
                self.force_exit = True
                if tracing is not None:
                    tracing.abandon()
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: Any = None) -> None:
            _withdraw(ready_file)  # the server no longer accepts requests
            await super().shutdown(sockets)
            if tracing is not None:
                tracing.shutdown()
                if export_stats is not None:
                    tracing.write_stats(export_stats)

    server = _Server(config)
    await server.serve(sockets=None if sock is None else [sock])
    return 0 if server.started else 1


def _publish(ready_file: Path | None, url: str, port: int) -> None:
    """The ready file, whole or not at all (a tiny local write)."""
    if ready_file is not None:
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": url, "port": port, "pid": os.getpid()}))
        tmp.replace(ready_file)


def _withdraw(ready_file: Path | None) -> None:
    """The ready file goes (a tiny local unlink)."""
    if ready_file is not None:
        ready_file.unlink(missing_ok=True)
