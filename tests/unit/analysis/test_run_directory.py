"""The run directory: each file named once, opened once per report, paths read literally."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

import open_autoglm.analysis._run_directory as run_directory
from open_autoglm.analysis import ReportError, RunDirectory, build_report
from open_autoglm.analysis._report_view import ReportView
from open_autoglm.analysis._tempo_source import run_trace_ids
from open_autoglm.collector import CollectorError, SpanStore
from open_autoglm.loadgen import read_record_dicts
from open_autoglm.testing import SyntheticRun


def _run(directory: Path, requests: int, seed: int) -> Path:
    SyntheticRun(requests=requests, seed=seed, levels=(4,)).write(directory)
    return directory


@pytest.mark.parametrize("name", ["run[1]", "run*", "run?"])
def test_a_directory_named_like_a_glob_is_read_literally(tmp_path: Path, name: str) -> None:
    _run(tmp_path / "runs" / "run1", requests=40, seed=1)  # what a glob would match instead
    mine = _run(tmp_path / "runs" / name, requests=25, seed=2)
    report = build_report(mine)
    assert report.stages is not None
    assert report.stages.requests == 25
    assert report.stages.with_server_spans == 25
    ids = [str(r["trace_id"]) for r in read_record_dicts(mine / "requests.jsonl")]
    assert run_trace_ids(mine) == ids
    report.write(mine / "report.json")
    samples = ReportView.open(mine / "report.json").samples()
    assert samples is not None
    assert samples[0].ok == 25


def test_a_report_opens_the_span_store_and_reads_the_records_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _run(tmp_path / "run", requests=60, seed=3)
    opened: list[Path] = []
    loads: list[Path] = []

    class CountingStore(SpanStore):
        def __init__(self, path: Path | str, *, read_only: bool = True) -> None:
            opened.append(Path(path))
            super().__init__(path, read_only=read_only)

    real_load = run_directory.load_records_table

    def counting_load(con: duckdb.DuckDBPyConnection, path: Path, table: str = "requests") -> int:
        loads.append(path)
        return real_load(con, path, table)

    monkeypatch.setattr(run_directory, "SpanStore", CountingStore)
    monkeypatch.setattr(run_directory, "load_records_table", counting_load)
    report = build_report(run)
    assert report.diagnosis is not None
    assert report.distributions[0].level == 0
    assert opened == [run / "spans.duckdb"]
    assert loads == [run / "requests.jsonl"]


def test_every_file_of_a_run_has_a_name(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path)
    paths = (run.results_path, run.records_path, run.spans_path, run.metrics_path,
             run.run_path, run.report_path, *run.logs)  # fmt: skip
    names = [p.name for p in paths]
    assert names == ["results.json", "requests.jsonl", "spans.duckdb", "server_metrics.jsonl",
                     "run.json", "report.json", "collector.log", "server.log"]  # fmt: skip
    with pytest.raises(ReportError, match=r"results\.json is missing"):
        run.results()
    assert run.run_info() == {}
    assert run.span_store() is None


def test_a_file_that_is_not_a_span_store_is_a_report_error(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", requests=10, seed=4)
    (run / "spans.duckdb").unlink()
    duckdb.connect(str(run / "spans.duckdb")).close()  # a DuckDB file without the schema
    with pytest.raises(ReportError, match="not a span store") as raised:
        build_report(run)
    assert isinstance(raised.value.__cause__, CollectorError)
