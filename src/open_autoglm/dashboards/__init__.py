"""Grafana dashboards as code: boards described in Python, rendered with the Foundation SDK.

``open-autoglm dashboards generate`` writes them to ``dashboards/``, where the docker compose
stack's Grafana loads them; ``--check`` tells whether the committed files are current.
Needs the ``grafana`` extra (``grafana-foundation-sdk``, pinned to the schema of the Grafana
version in ``deploy/docker-compose.yml``).
"""

import importlib
from typing import Any

# Imported on first use: the renderer needs the ``grafana`` extra, and the CLI imports this
# package to register its command even where the extra is not installed.
_EXPORTS = {
    "BOARDS": "_boards",
    "Board": "_spec",
    "DASHBOARD_TAG": "_datasources",
    "GrafanaPushError": "_push",
    "PROMETHEUS_UID": "_datasources",
    "Panel": "_spec",
    "PromQuery": "_queries",
    "PushConfig": "_push",
    "Row": "_spec",
    "Source": "_queries",
    "TEMPO_UID": "_datasources",
    "TraceQuery": "_queries",
    "build_dashboard": "_render",
    "load_dashboard_files": "_push",
    "push_dashboards": "_push",
    "render_dashboard": "_render",
    "rendered_dashboards": "_files",
    "stale_dashboards": "_files",
    "write_dashboards": "_files",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "BOARDS",
    "DASHBOARD_TAG",
    "PROMETHEUS_UID",
    "TEMPO_UID",
    "Board",
    "GrafanaPushError",
    "Panel",
    "PromQuery",
    "PushConfig",
    "Row",
    "Source",
    "TraceQuery",
    "build_dashboard",
    "load_dashboard_files",
    "push_dashboards",
    "render_dashboard",
    "rendered_dashboards",
    "stale_dashboards",
    "write_dashboards",
]
