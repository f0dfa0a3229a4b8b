"""The Grafana datasources the dashboards query, by the uids ``deploy/grafana`` provisions."""

from typing import Final

#: uid of the Prometheus datasource (``deploy/grafana/provisioning/datasources``).
PROMETHEUS_UID: Final = "prometheus"
#: uid of the Tempo datasource (``deploy/grafana/provisioning/datasources``).
TEMPO_UID: Final = "tempo"
#: Tag on every generated dashboard; the dashboards link to each other through it.
DASHBOARD_TAG: Final = "open-autoglm"
