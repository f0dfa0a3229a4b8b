"""Grafana dashboards as code: boards described in Python, rendered with the Foundation SDK.

``open-autoglm dashboards generate`` writes them to ``dashboards/``, where the docker compose
stack's Grafana loads them; ``--check`` tells whether the committed files are current.
Needs the ``grafana`` extra (``grafana-foundation-sdk``, pinned to the schema of the Grafana
version in ``deploy/docker-compose.yml``).
"""

from open_autoglm.dashboards._boards import BOARDS
from open_autoglm.dashboards._datasources import DASHBOARD_TAG, PROMETHEUS_UID, TEMPO_UID
from open_autoglm.dashboards._files import rendered_dashboards, stale_dashboards, write_dashboards
from open_autoglm.dashboards._queries import PromQuery, Source, TraceQuery
from open_autoglm.dashboards._render import build_dashboard, render_dashboard
from open_autoglm.dashboards._spec import Board, Panel, Row

__all__ = [
    "BOARDS",
    "DASHBOARD_TAG",
    "PROMETHEUS_UID",
    "TEMPO_UID",
    "Board",
    "Panel",
    "PromQuery",
    "Row",
    "Source",
    "TraceQuery",
    "build_dashboard",
    "render_dashboard",
    "rendered_dashboards",
    "stale_dashboards",
    "write_dashboards",
]
