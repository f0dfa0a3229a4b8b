"""Turn :class:`~._spec.Board` descriptions into Grafana dashboard JSON (Foundation SDK)."""

from __future__ import annotations

import json
import warnings

from open_autoglm.dashboards._datasources import DASHBOARD_TAG, PROMETHEUS_UID, TEMPO_UID
from open_autoglm.dashboards._queries import (
    VAR_BACKEND,
    VAR_INSTANCE,
    VAR_MIN_DURATION,
    VAR_MODEL,
    PromQuery,
    TraceQuery,
)
from open_autoglm.dashboards._spec import Board, Panel
from open_autoglm.telemetry import names as n

with warnings.catch_warnings():
    # The SDK's v0.0.x line warns, on import, that the classic dashboard model has a successor
    # (dashboard v2). We generate the classic JSON on purpose: Grafana's file provisioning loads
    # it on every Grafana version the compose file may pin, without feature toggles.
    warnings.filterwarnings(
        "ignore", message="Prefer using dashboardv2", category=DeprecationWarning
    )
    from grafana_foundation_sdk.builders import common as sdk_common
    from grafana_foundation_sdk.builders import dashboard as sdk_dashboard
    from grafana_foundation_sdk.builders import piechart, prometheus, stat, table, tempo, timeseries
    from grafana_foundation_sdk.cog.builder import Builder
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import common
    from grafana_foundation_sdk.models import dashboard as dashboard_model
    from grafana_foundation_sdk.models import tempo as tempo_model

_PROMETHEUS = common.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
_TEMPO = common.DataSourceRef(type_val="tempo", uid=TEMPO_UID)
_GRID_WIDTH = 24
_MIN_DURATIONS = ("100ms", "250ms", "500ms", "1s", "2s", "5s", "10s", "30s")
_DEFAULT_MIN_DURATION = "500ms"
#: The series the label variables are read from: every server exposes it.
_VARIABLE_SERIES = f"{n.METRIC_REQUEST_DURATION}_count"

_AnyPanel = timeseries.Panel | stat.Panel | table.Panel | piechart.Panel


class _Grid:
    """Places panels left to right, wrapping at the grid's 24 columns."""

    def __init__(self) -> None:
        self._x = 0
        self._y = 0
        self._row_height = 0

    def row(self) -> dashboard_model.GridPos:
        self._newline()
        pos = dashboard_model.GridPos(h=1, w=_GRID_WIDTH, x=0, y=self._y)
        self._y += 1
        return pos

    def place(self, width: int, height: int) -> dashboard_model.GridPos:
        if self._x + width > _GRID_WIDTH:
            self._newline()
        pos = dashboard_model.GridPos(h=height, w=width, x=self._x, y=self._y)
        self._x += width
        self._row_height = max(self._row_height, height)
        return pos

    def _newline(self) -> None:
        self._y += self._row_height
        self._x = 0
        self._row_height = 0


def _prom_target(query: PromQuery, ref_id: str) -> prometheus.Dataquery:
    target = (
        prometheus.Dataquery()
        .datasource(_PROMETHEUS)
        .ref_id(ref_id)
        .expr(query.expr)
        .legend_format(query.legend or "__auto")
    )
    if query.instant:
        return target.instant()
    return target.range().exemplar(query.exemplar)


def _trace_target(query: TraceQuery, ref_id: str) -> tempo.Dataquery:
    table_type = (
        tempo_model.SearchTableType.SPANS
        if query.table == "spans"
        else tempo_model.SearchTableType.TRACES
    )
    return (
        tempo.Dataquery()
        .datasource(_TEMPO)
        .ref_id(ref_id)
        .query_type("traceql")
        .query(query.traceql)
        .limit(query.limit)
        .table_type(table_type)
    )


def _visualisation(panel: Panel) -> _AnyPanel:
    if panel.kind == "stat":
        return stat.Panel().datasource(_PROMETHEUS)
    if panel.kind == "table":
        return table.Panel().datasource(_TEMPO)
    if panel.kind == "piechart":
        return (
            piechart.Panel()
            .datasource(_PROMETHEUS)
            .reduce_options(sdk_common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        )
    legend = (
        sdk_common.VizLegendOptions()
        .show_legend(True)
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
    )
    tooltip = (
        sdk_common.VizTooltipOptions()
        .mode(common.TooltipDisplayMode.MULTI)
        .sort(common.SortOrder.DESCENDING)
    )
    series = (
        timeseries.Panel().datasource(_PROMETHEUS).legend(legend).tooltip(tooltip).fill_opacity(10)
    )
    if panel.stacked_percent:
        series = series.stacking(sdk_common.StackingConfig().mode(common.StackingMode.PERCENT))
        series = series.fill_opacity(60).max(1)
    return series


def _panel(panel: Panel, panel_id: int, grid: _Grid) -> _AnyPanel:
    built = (
        _visualisation(panel)
        .id(panel_id)
        .title(panel.title)
        .unit(panel.unit)
        .grid_pos(grid.place(panel.width, panel.height))
    )
    if panel.description:
        built = built.description(panel.description)
    queries: tuple[PromQuery | TraceQuery, ...] = panel.queries
    for index, query in enumerate(queries):
        ref_id = chr(ord("A") + index)
        if isinstance(query, PromQuery):
            built = built.with_target(_prom_target(query, ref_id))
        else:
            built = built.with_target(_trace_target(query, ref_id))
    return built


def _label_variable(
    name: str, label: str, matchers: str, prom_label: str
) -> sdk_dashboard.QueryVariable:
    """Variable ``name`` (shown as ``label``) holding the values of ``prom_label``."""
    query = f"label_values({_VARIABLE_SERIES}{matchers}, {prom_label})"
    return (
        sdk_dashboard.QueryVariable(name)
        .label(label)
        .datasource(_PROMETHEUS)
        .query(query)
        .definition(query)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dashboard_model.VariableOption(selected=True, text="All", value="$__all"))
        .refresh(dashboard_model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_model.VariableSort.ALPHABETICAL_ASC)
    )


def _variables(board: Board) -> list[Builder[dashboard_model.VariableModel]]:
    backend = f'{{{n.LABEL_PROVIDER}=~"${VAR_BACKEND}"}}'
    backend_model = f'{{{n.LABEL_PROVIDER}=~"${VAR_BACKEND}", {n.LABEL_MODEL}=~"${VAR_MODEL}"}}'
    variables: list[Builder[dashboard_model.VariableModel]] = [
        _label_variable(VAR_BACKEND, "Backend", "", n.LABEL_PROVIDER),
        _label_variable(VAR_MODEL, "Model", backend, n.LABEL_MODEL),
    ]
    if board.instance_variable:
        variables.append(_label_variable(VAR_INSTANCE, "Instance", backend_model, "instance"))
    if board.duration_variable:
        variables.append(
            sdk_dashboard.CustomVariable(VAR_MIN_DURATION)
            .label("Slower than")
            .values(",".join(_MIN_DURATIONS))
            .current(
                dashboard_model.VariableOption(
                    selected=True, text=_DEFAULT_MIN_DURATION, value=_DEFAULT_MIN_DURATION
                )
            )
        )
    return variables


def build_dashboard(board: Board) -> dashboard_model.Dashboard:
    """The Grafana dashboard model of one board."""
    builder = (
        sdk_dashboard.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags([DASHBOARD_TAG])
        .time("now-15m", "now")
        .refresh("10s")
        .timezone("browser")
        .tooltip(dashboard_model.DashboardCursorSync.CROSSHAIR)
        .readonly()
        .variables(_variables(board))
        .link(
            sdk_dashboard.DashboardLink("Open-AutoGLM")
            .type(dashboard_model.DashboardLinkType.DASHBOARDS)
            .tags([DASHBOARD_TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    grid = _Grid()
    panel_id = 0
    for row in board.rows:
        panel_id += 1
        builder = builder.with_row(sdk_dashboard.Row(row.title).id(panel_id).grid_pos(grid.row()))
        for panel in row.panels:
            panel_id += 1
            builder = builder.with_panel(_panel(panel, panel_id, grid))
    return builder.build()


def render_dashboard(board: Board) -> str:
    """The board as the JSON text committed under ``dashboards/`` (stable key order)."""
    return json.dumps(build_dashboard(board), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
