"""Plain descriptions of dashboards: boards of rows of panels of queries.

They are data, so tests can walk every query; :mod:`._render` turns them into Grafana JSON
with the Grafana Foundation SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from open_autoglm.dashboards._queries import PromQuery, TraceQuery

PanelKind = Literal["timeseries", "stat", "table", "piechart"]


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    queries: tuple[PromQuery, ...] | tuple[TraceQuery, ...]
    description: str = ""
    kind: PanelKind = "timeseries"
    unit: str = "short"
    width: int = 8
    height: int = 8
    stacked_percent: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True, slots=True)
class Board:
    uid: str
    title: str
    file_name: str
    description: str
    rows: tuple[Row, ...]
    #: Whether the board filters by ``instance`` (Prometheus boards) or only backend/model.
    instance_variable: bool = True
    #: Whether the board has the ``min_duration`` variable (TraceQL boards).
    duration_variable: bool = False

    def panels(self) -> Iterator[Panel]:
        for row in self.rows:
            yield from row.panels

    def prometheus_queries(self) -> Iterator[tuple[Panel, PromQuery]]:
        for panel in self.panels():
            for query in panel.queries:
                if isinstance(query, PromQuery):
                    yield panel, query
