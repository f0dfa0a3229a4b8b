"""Paths from the command line are checked before anything runs: each mistake is one line
naming the flag and the path, and nothing is created, replaced or written."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from open_autoglm.analysis import ReportError
from open_autoglm.analysis._report import write_atomically
from open_autoglm.commands import UsageError
from open_autoglm.commands._paths import input_dir, input_file, output_dir, output_file
from open_autoglm.loadgen import (
    RESULTS_VERSION,
    BenchmarkResults,
    ConfigError,
    RecordsExistError,
    RecordWriter,
    records_beside,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="FIFOs and /dev/null: POSIX")


@pytest.fixture
def place(tmp_path: Path) -> Path:
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    return tmp_path


@pytest.mark.parametrize(
    ("check", "name", "message"),
    [
        (output_file, "adir", "is a directory, not a file; give the name of a file inside it"),
        (output_file, "fifo", "is a named pipe (FIFO), not a file"),
        (output_file, "afile/out.json", "afile is a file, not a directory"),
        (output_dir, "afile", "is a file, not a directory"),
        (output_dir, "fifo", "is a named pipe (FIFO), not a directory"),
        (output_dir, "afile/sub", "afile is a file, not a directory"),
        (input_file, "adir", "is a directory, not a file"),
        (input_file, "fifo", "is a named pipe (FIFO), not a file"),
        (input_file, "missing.json", "no such file"),
        (input_dir, "afile", "is a file, not a directory"),
        (input_dir, "missing", "no such directory"),
    ],
)
def test_each_wrong_kind_of_path_is_one_line(
    place: Path, check: Callable[[Path, str], Path], name: str, message: str
) -> None:
    path = place / name
    before = sorted(place.rglob("*"))
    with pytest.raises(UsageError) as caught:
        check(path, "--flag")
    text = str(caught.value)
    assert text.startswith(f"--flag {path}: ")
    assert message in text
    assert "\n" not in text
    assert sorted(place.rglob("*")) == before  # nothing made, nothing left behind


def test_devices_are_refused_and_left_alone() -> None:
    """``--output /dev/null`` would be renamed over (for root) by an atomic write."""
    for check in (output_file, output_dir, input_file):
        with pytest.raises(UsageError, match="/dev/null: is a device"):
            check(Path("/dev/null"), "--output")


def test_an_unwritable_place_is_found_by_trying() -> None:
    """``/proc`` cannot take a file even for root: a probe file finds it, permissions do not."""
    with pytest.raises(UsageError, match=r"--output /proc/results.json: cannot write in /proc"):
        output_file(Path("/proc/results.json"), "--output")


def test_good_paths_pass_and_leave_nothing(tmp_path: Path) -> None:
    assert output_file(tmp_path / "new" / "deeper" / "r.json", "--output").name == "r.json"
    assert output_dir(tmp_path / "run[1]", "--run-dir") == tmp_path / "run[1]"  # literal
    (tmp_path / "in.json").write_text("{}")
    assert input_file(tmp_path / "in.json", "--dataset-path") == tmp_path / "in.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json"]


def test_records_go_beside_their_results_under_their_own_name() -> None:
    assert records_beside(Path("out/results.json")) == Path("out/requests.jsonl")
    assert records_beside(Path("a.json")) == Path("a.requests.jsonl")
    assert records_beside(Path("b.json")) != records_beside(Path("a.json"))


def test_records_are_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text('{"index": 0}\n')
    with pytest.raises(RecordsExistError, match="already holds another run's records"):
        RecordWriter(path)
    assert path.read_text() == '{"index": 0}\n'


def test_results_and_reports_are_never_renamed_over_a_special_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ReportError, match="is not a regular file"):
        write_atomically(fifo, "{}")
    results = BenchmarkResults(
        version=RESULTS_VERSION, tool_version="0", started_unix_ns=0, finished_unix_ns=0,
        interrupted=False, endpoint={}, workload={}, profile={}, slo=None, seed=0,
        records_path=None,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="is not a regular file"):
        results.write(fifo)
    with pytest.raises(ConfigError, match="is not a regular file"):
        results.write(tmp_path)
    assert fifo.is_fifo()
    results.write(tmp_path / "results.json")  # a regular place still works
    assert json.loads((tmp_path / "results.json").read_text())["version"] == RESULTS_VERSION
