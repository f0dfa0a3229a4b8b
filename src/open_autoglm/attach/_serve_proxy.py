"""Run the tracing proxy under uvicorn until SIGINT/SIGTERM, flushing spans on the way out."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path

from open_autoglm.attach._config import ProxyConfig
from open_autoglm.attach._proxy import create_proxy_app
from open_autoglm.telemetry import Tracing, serve_app

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

    def started(url: str) -> None:
        logger.info("proxying %s on %s", config.base, url)
        if announce is not None:
            announce(url)

    return await serve_app(
        uvicorn.Config(
            create_proxy_app(config, tracing),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        ),
        tracing=tracing,
        announce=started,
        ready_file=ready_file,
        export_stats=export_stats,
        sock=sock,
    )
