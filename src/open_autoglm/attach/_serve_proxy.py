"""Run the tracing proxy under uvicorn until SIGINT/SIGTERM, flushing spans on the way out."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from open_autoglm.attach._config import ProxyConfig
from open_autoglm.attach._proxy import create_proxy_app
from open_autoglm.telemetry import Tracing

logger = logging.getLogger(__name__)


async def serve_proxy(
    config: ProxyConfig,
    tracing: Tracing | None,
    host: str,
    port: int,
    ready_file: Path | None = None,
    export_stats: Path | None = None,
    sock: socket.socket | None = None,
    announce: Callable[[str], None] | None = None,
) -> int:
    """Serve until stopped; 0 on a clean stop, 1 if the port could not be bound.

    ``ready_file`` receives ``{url, port, pid}`` as JSON once the proxy accepts requests;
    ``export_stats`` the span export counts on exit. ``sock``, bound and listening, is
    served instead of binding ``host``:``port`` (the caller then reports a busy port
    itself). ``announce`` is called with the proxy's URL once it accepts requests (the
    start is also logged at INFO).
    """
    import uvicorn

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                bound = self.servers[0].sockets[0].getsockname()[1]
                url = f"http://{host}:{bound}"
                logger.info("proxying %s on %s", config.base, url)
                if announce is not None:
                    announce(url)
                if ready_file is not None:
                    tmp = ready_file.with_suffix(".tmp")
                    tmp.write_text(json.dumps({"url": url, "port": bound, "pid": os.getpid()}))
                    tmp.replace(ready_file)

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.should_exit:  # a second stop signal forces the exit: no more waiting
                self.force_exit = True
                if tracing is not None:
                    tracing.abandon()
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: Any = None) -> None:
            await super().shutdown(sockets)
            if tracing is not None:  # before uvicorn re-raises SIGTERM (see serve)
                tracing.shutdown()
                if export_stats is not None:
                    tracing.write_stats(export_stats)

    server = _Server(
        uvicorn.Config(
            create_proxy_app(config, tracing),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
    )
    await server.serve(sockets=None if sock is None else [sock])
    return 0 if server.started else 1
