"""Environment variables of our own, documented in one place.

The standard ``OTEL_*`` variables (endpoint, protocol, service name, resource attributes,
sampler) are read by the OpenTelemetry SDK itself; see :mod:`open_autoglm.telemetry._tracing`.
"""

from typing import Final

#: Folder for prepared models.
#: Default: ``$XDG_CACHE_HOME/open-autoglm``, else ``~/.cache/open-autoglm``.
ENV_CACHE_DIR: Final = "OPEN_AUTOGLM_CACHE_DIR"
#: Set to ``1`` (or ``true``) to record prompt and completion text on the server's spans as
#: ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (off by default; read when the
#: server's ``ServerConfig`` is built).
ENV_CAPTURE_CONTENT: Final = "OPEN_AUTOGLM_CAPTURE_CONTENT"
#: Grafana service account token for ``open-autoglm dashboards push`` (``--token`` wins).
ENV_GRAFANA_TOKEN: Final = "GRAFANA_TOKEN"
