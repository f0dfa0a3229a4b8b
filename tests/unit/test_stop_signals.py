"""A stop, once begun, finishes: later stop signals only say it is in progress (no sockets;
real signals to this process, on the main thread)."""

from __future__ import annotations

import os
import signal

import pytest

from open_autoglm._signals import (
    begin_stop,
    handle_stop_signals,
    raise_interrupted,
    stop_signal,
)
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
