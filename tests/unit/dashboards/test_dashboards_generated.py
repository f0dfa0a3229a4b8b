"""The dashboards as code: committed JSON is current, queries follow the telemetry contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import open_autoglm.dashboards as dashboards
from open_autoglm.cli import main
from open_autoglm.dashboards import BOARDS, PROMETHEUS_UID, TEMPO_UID, PromQuery, TraceQuery
from open_autoglm.telemetry import names as n

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "dashboards"
#: Metric names of our contract (``names.METRIC_*``), with the suffixes Prometheus adds.
CONTRACT_METRICS = {getattr(n, name) for name in dir(n) if name.startswith("METRIC_")}


def test_committed_dashboards_are_current() -> None:
    stale = dashboards.stale_dashboards(COMMITTED)
    assert stale == [], (
        f"dashboards/ is out of date ({', '.join(stale)}); run: open-autoglm dashboards generate"
    )


def test_public_names_are_sorted_and_exist() -> None:
    assert len(set(dashboards.__all__)) == len(dashboards.__all__)
    for name in dashboards.__all__:
        assert hasattr(dashboards, name), name
    constants = [name for name in dashboards.__all__ if name.isupper()]
    others = [name for name in dashboards.__all__ if not name.isupper()]
    assert dashboards.__all__ == constants + others
    assert constants == sorted(constants)
    assert others == sorted(others, key=lambda name: (name[0].islower(), name))


def test_the_four_dashboards_exist_with_unique_uids() -> None:
    titles = [board.title.split(" / ")[-1] for board in BOARDS]
    assert titles == ["Latency overview", "Stage breakdown", "Resources", "Slow traces"]
    assert len({board.uid for board in BOARDS}) == len(BOARDS)
    assert len({board.file_name for board in BOARDS}) == len(BOARDS)


def _rendered(file_name: str) -> dict[str, object]:
    text = dashboards.rendered_dashboards()[file_name]
    loaded = json.loads(text)
    assert isinstance(loaded, dict)
    return loaded


def _panels(model: dict[str, object]) -> list[dict[str, object]]:
    panels = model["panels"]
    assert isinstance(panels, list)
    return panels


def test_latency_percentiles_show_exemplars() -> None:
    board = BOARDS[0]
    for metric in (n.METRIC_TTFT, n.METRIC_TPOT, n.METRIC_REQUEST_DURATION):
        queries = [q for _, q in board.prometheus_queries() if f"{metric}_bucket" in q.expr]
        assert {q.legend for q in queries} == {"p50", "p95", "p99"}, metric
        assert all(q.exemplar for q in queries), metric
    model = _rendered(board.file_name)
    targets = [t for p in _panels(model) for t in p.get("targets", [])]  # type: ignore[attr-defined]
    assert sum(1 for t in targets if t.get("exemplar") is True) == 9


def test_every_board_filters_by_backend_and_model() -> None:
    for board in BOARDS:
        model = _rendered(board.file_name)
        templating = model["templating"]
        assert isinstance(templating, dict)
        names = [v["name"] for v in templating["list"]]
        assert names[:2] == ["backend", "model"], board.title
        assert ("instance" in names) == board.instance_variable
        for panel, query in board.prometheus_queries():
            if query.source in ("server", "server_errors", "gpu"):
                assert '=~"$backend"' in query.expr, panel.title
                assert '=~"$model"' in query.expr, panel.title
                assert '=~"$instance"' in query.expr, panel.title


_METRIC_IN_EXPR = re.compile(
    r"\b((?:gen_ai|autoglm|process)_[a-z_]+?)(?:_bucket|_sum|_count|_total)?\b[{\[]"
)


def test_server_queries_name_only_contract_metrics() -> None:
    seen = set()
    for board in BOARDS:
        for panel, query in board.prometheus_queries():
            for metric in _METRIC_IN_EXPR.findall(query.expr):
                assert metric in CONTRACT_METRICS, (board.title, panel.title, metric)
                seen.add(metric)
    # Every server metric of the contract is on some dashboard.
    assert seen == CONTRACT_METRICS


def test_panels_use_the_provisioned_datasources() -> None:
    for board in BOARDS:
        for panel in _panels(_rendered(board.file_name)):
            if panel["type"] == "row":
                continue
            datasource = panel["datasource"]
            assert isinstance(datasource, dict)
            expected = TEMPO_UID if panel["type"] == "table" else PROMETHEUS_UID
            assert datasource["uid"] == expected, panel["title"]


def test_slow_traces_are_traceql_tables() -> None:
    board = BOARDS[3]
    queries = [q for panel in board.panels() for q in panel.queries]
    assert queries
    assert all(isinstance(q, TraceQuery) for q in queries)
    traceql = " ".join(q.traceql for q in queries if isinstance(q, TraceQuery))
    assert "status = error" in traceql
    assert f'"{n.SERVER_SERVICE_NAME}"' in traceql
    assert "$min_duration" in traceql


def test_layout_fits_the_grid_without_overlap() -> None:
    for board in BOARDS:
        cells: set[tuple[int, int]] = set()
        for panel in _panels(_rendered(board.file_name)):
            pos = panel["gridPos"]
            assert isinstance(pos, dict)
            assert pos["x"] + pos["w"] <= 24, panel["title"]
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, (board.title, panel["title"])
                    cells.add((x, y))


def test_schema_matches_the_pinned_grafana() -> None:
    # Grafana 12 and 13 read dashboard schemaVersion 42 without migration.
    for board in BOARDS:
        assert _rendered(board.file_name)["schemaVersion"] == 42
    compose = (REPO / "deploy" / "docker-compose.yml").read_text(encoding="utf-8")
    match = re.search(r"image: grafana/grafana:(\d+)\.", compose)
    assert match is not None
    assert int(match.group(1)) >= 12


def test_cli_generate_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "boards"
    assert main(["dashboards", "generate", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(b.file_name for b in BOARDS)
    assert main(["dashboards", "generate", "--out", str(out), "--check"]) == 0

    (out / BOARDS[0].file_name).write_text("{}", encoding="utf-8")
    (out / "extra.json").write_text("{}", encoding="utf-8")
    capsys.readouterr()
    assert main(["dashboards", "generate", "--out", str(out), "--check"]) == 1
    message = capsys.readouterr().out
    assert BOARDS[0].file_name in message
    assert "extra.json" in message


def test_cli_rejects_a_file_as_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("", encoding="utf-8")
    assert main(["dashboards", "generate", "--out", str(not_a_folder)]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_query_sources_are_declared() -> None:
    sources = {q.source for board in BOARDS for _, q in board.prometheus_queries()}
    assert sources <= {"server", "server_errors", "gpu", "vllm", "collector", "proxy"}
    assert isinstance(BOARDS[0].rows[0].panels[0].queries[0], PromQuery)
