"""``open_autoglm.testing.wait_for``: bounded polling that returns what it waited for."""

from __future__ import annotations

import itertools

import pytest

from open_autoglm.errors import OpenAutoGLMError
from open_autoglm.testing import WaitTimeoutError, wait_for


def test_returns_the_first_truthy_result() -> None:
    calls = itertools.count()
    result = wait_for(
        "the third call", lambda: [n] if (n := next(calls)) >= 2 else [], interval_s=0.001
    )
    assert result == [2]


def test_times_out_naming_what_it_waited_for_and_the_logs() -> None:
    with pytest.raises(WaitTimeoutError, match="waiting for a miracle\nserver log tail") as caught:
        wait_for(
            "a miracle",
            lambda: None,
            timeout_s=0.05,
            interval_s=0.01,
            logs=lambda: "server log tail",
        )
    assert isinstance(caught.value, OpenAutoGLMError)
    assert isinstance(caught.value, TimeoutError)


def test_refuses_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        wait_for("x", lambda: True, interval_s=0)
