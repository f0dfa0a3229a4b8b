"""A stop, once begun, finishes: later stop signals only say it is in progress (no sockets;
real signals to this process, on the main thread); the last line of a stopped run is honest."""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

import pytest

from open_autoglm._signals import (
    STOP_SIGNALS,
    begin_stop,
    handle_stop_signals,
    ignore_stop_signals,
    raise_interrupted,
    stop_signal,
)
from open_autoglm.commands._benchmark_output import stopped
from open_autoglm.errors import Interrupted

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGTERM to oneself: POSIX")


def test_only_the_first_signal_unwinds_the_later_ones_say_the_stop_is_in_progress(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with handle_stop_signals(raise_interrupted):
        with pytest.raises(Interrupted) as stopped:
            signal.raise_signal(signal.SIGTERM)
        assert stopped.value.exit_code == 143
        assert stop_signal() == signal.SIGTERM
        signal.raise_signal(signal.SIGINT)  # during the write of what finished: no unwinding
        signal.raise_signal(signal.SIGTERM)
    err = capfd.readouterr().err
    assert err.count("the stop is in progress") == 2
    assert "open-autoglm: SIGINT: the stop is in progress" in err
    assert stop_signal() is None  # the block is over: so is the stop


def test_nested_blocks_share_the_stop() -> None:
    seen: list[bool] = []
    with handle_stop_signals(raise_interrupted):
        with handle_stop_signals(lambda signum, frame: seen.append(begin_stop(signum))):
            signal.raise_signal(signal.SIGINT)  # the load generator's handler starts the stop
        signal.raise_signal(signal.SIGINT)  # the command's handler: a stop is in progress
        assert stop_signal() == signal.SIGINT
    assert seen == [True]
    assert begin_stop(signal.SIGINT)  # outside every block each signal is a first one
    assert stop_signal() is None


def _args(records: Path) -> argparse.Namespace:
    return argparse.Namespace(
        output=None, backend="sim", run_dir=records.parent, records_file=records
    )


def test_a_stop_outside_the_load_names_the_records_it_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "requests.jsonl"
    records.write_text('{"index": 0}\n')  # requests were sent before the signal came
    assert stopped(Interrupted(signal.SIGINT), _args(records)) == 130
    line = capsys.readouterr().err.strip()
    said = "open-autoglm: stopped by SIGINT; the records of the requests sent are in"
    assert line == f"{said} {records}"


def test_a_stop_before_the_load_says_nothing_was_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stopped(Interrupted(signal.SIGTERM), _args(tmp_path / "requests.jsonl")) == 143
    assert capsys.readouterr().err.strip() == (
        "open-autoglm: stopped by SIGTERM before any request was sent"
    )


def test_after_a_finished_stop_later_signals_are_ignored() -> None:
    """The command line's entry, once a stop has finished, only exits: a late Ctrl-C is
    ignored rather than killing the process with SIGINT (its exit status stays 130)."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        ignore_stop_signals()
        for sig in STOP_SIGNALS:
            assert signal.getsignal(sig) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)  # would raise KeyboardInterrupt by default
        time.sleep(0.05)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
