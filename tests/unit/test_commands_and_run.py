"""The command line's pieces that carry no I/O: ``--backend-option`` parsing, the typed
server of a managed run, the error tree and its mapping to exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from open_autoglm import analysis, collector, instrumented_servers, loadgen, objectives, telemetry
from open_autoglm.cli import main
from open_autoglm.commands import UsageError, parse_backend_options
from open_autoglm.errors import OpenAutoGLMError
from open_autoglm.instrumented_servers import models
from open_autoglm.run import ManagedServer, RunDirectoryError, RunError, prepare_run_dir


def test_backend_options_parse_into_a_mapping() -> None:
    pairs = ["cost=zero", " decode_base_ms = 5 ", "url=http://x/?a=b", "cost=zero"]
    assert parse_backend_options(pairs) == {
        "cost": "zero",
        "decode_base_ms": "5",
        "url": "http://x/?a=b",
    }


@pytest.mark.parametrize("pair", ["cost", "=zero", " =1"])
def test_a_backend_option_without_key_or_equals_is_a_usage_error(pair: str) -> None:
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_backend_options([pair])


def test_managed_server_renders_the_serve_command_line() -> None:
    server = ManagedServer(
        backend="sim",
        model="m",
        backend_options={"cost": "zero"},
        max_batch_size=4,
        target_tpot_ms=50.0,
    )
    assert server.server_args() == [
        "--backend-option", "cost=zero", "--max-batch-size", "4", "--target-tpot", "50.0",
    ]  # fmt: skip
    assert server.serve_args("http://127.0.0.1:4318") == [
        "--backend", "sim", "--model", "m", *server.server_args(),
        "--otlp-endpoint", "http://127.0.0.1:4318", "--otlp-protocol", "http/json",
    ]  # fmt: skip


def test_managed_server_options_are_frozen_and_checked() -> None:
    given = {"cost": "zero"}
    server = ManagedServer(backend="sim", backend_options=given)
    given["cost"] = "changed"
    assert server.backend_options["cost"] == "zero"
    with pytest.raises(RunError, match="max_batch_size"):
        ManagedServer(backend="sim", max_batch_size=0)
    with pytest.raises(RunError, match="backend"):
        ManagedServer(backend="")


def test_a_run_directory_of_another_run_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    prepare_run_dir(run_dir)
    (run_dir / loadgen.RECORDS_FILE).write_text("")
    with pytest.raises(RunDirectoryError, match="already holds a run"):
        prepare_run_dir(run_dir)


@pytest.mark.parametrize(
    "error",
    [
        analysis.AnalysisError,
        analysis.ReportError,
        objectives.ObjectiveError,
        analysis.ReportReadError,
        analysis.PrometheusError,
        analysis.TempoError,
        analysis.CriticalPathError,
        collector.CollectorError,
        loadgen.LoadgenError,
        loadgen.ConfigError,
        loadgen.RequestError,
        instrumented_servers.ServerError,
        instrumented_servers.ServerStartError,
        instrumented_servers.BackendError,
        instrumented_servers.UnknownBackendError,
        models.ModelPreparationError,
        telemetry.TelemetryError,
        RunError,
        UsageError,
    ],
)
def test_every_package_tree_is_under_the_one_root(error: type[Exception]) -> None:
    assert issubclass(error, OpenAutoGLMError)


@pytest.mark.parametrize(
    "error",
    [
        analysis.ReportError,
        objectives.ObjectiveError,
        loadgen.ConfigError,
        models.ModelPreparationError,
    ],
)
def test_library_errors_are_not_the_command_lines_usage_error(error: type[Exception]) -> None:
    assert not issubclass(error, UsageError)


def test_cli_maps_a_library_error_to_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothing-here"
    assert main(["analyze", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("open-autoglm: error: ")
    assert err.count("\n") == 1
