"""Settings checked when built, the command line, the public surface."""

from __future__ import annotations

from pathlib import Path

import pytest

import open_autoglm.collector as collector
from open_autoglm.cli import build_parser, main
from open_autoglm.collector import CollectorConfig, CollectorConfigError, CollectorProcess


def test_public_names_are_sorted_and_importable() -> None:
    assert collector.__all__ == sorted(collector.__all__, key=lambda n: (not n.isupper(), n))
    for name in collector.__all__:
        assert getattr(collector, name) is not None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"http_port": 70000}, "http port 70000 is not in 0..65535"),
        ({"grpc_port": -1}, "grpc port -1"),
        ({"http_port": None, "grpc_port": None}, "at least one"),
        ({"http_port": 4318, "grpc_port": 4318}, "cannot share port 4318"),
        ({"max_body_bytes": 10}, "at least 1024"),
        ({"flush_interval_s": 0}, "above 0"),
        ({"host": ""}, "host"),
    ],
)
def test_impossible_settings_raise_when_built(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(CollectorConfigError, match=message):
        CollectorConfig(db_path=tmp_path / "s.duckdb", **changes)  # type: ignore[arg-type]


def test_the_store_must_be_a_file_in_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(CollectorConfigError, match="does not exist"):
        CollectorConfig(db_path=tmp_path / "missing" / "s.duckdb")
    with pytest.raises(CollectorConfigError, match="is a folder"):
        CollectorConfig(db_path=tmp_path)
    (tmp_path / "run?").mkdir()
    with pytest.raises(CollectorConfigError, match="has a '\\?'"):
        CollectorConfig(db_path=tmp_path / "run?" / "spans.duckdb")
    (tmp_path / "run[1]").mkdir()  # brackets are fine: DuckDB opens a database file literally
    assert CollectorConfig(db_path=tmp_path / "run[1]" / "spans.duckdb").db_path.parent.name == (
        "run[1]"
    )


def test_cli_defaults_are_the_otlp_ports() -> None:
    args = build_parser().parse_args(["collector"])
    assert (args.host, args.http_port, args.grpc_port) == ("127.0.0.1", 4318, 4317)
    assert args.db == Path("spans.duckdb")
    args = build_parser().parse_args(["collector", "--http-port", "0", "--grpc-port", "off"])
    assert (args.http_port, args.grpc_port) == (0, None)


def test_cli_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "nowhere" / "s.duckdb"
    assert main(["collector", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err == f"open-autoglm: error: the folder of the span store {db} does not exist\n"


def test_the_child_command_carries_every_setting(tmp_path: Path) -> None:
    config = CollectorConfig(db_path=tmp_path / "s.duckdb", http_port=0, grpc_port=None)
    command = CollectorProcess(config, python="python").command(tmp_path / "ready.json")
    assert command[:3] == ["python", "-m", "open_autoglm"]
    args = build_parser().parse_args(command[3:])
    assert (args.http_port, args.grpc_port, args.db) == (0, None, config.db_path)
    assert args.ready_file == tmp_path / "ready.json"
