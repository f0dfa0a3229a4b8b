"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from open_autoglm.testing import ServerProcess


@pytest.fixture(scope="session")
def sim_server() -> Iterator[ServerProcess]:
    """A real ``open-autoglm serve --backend sim`` with small costs, shared by a session.

    Adaptive batching is on with a target no step comes near (1 s a token), so the cap never
    moves but its gauge is served: the dashboards' cap query has data to be proven against.
    """
    args = ("--backend", "sim", "--backend-option", "decode_base_ms=1",
            "--backend-option", "decode_per_seq_ms=0.1", "--backend-option",
            "prefill_ms_per_token=0.01", "--target-tpot", "1000")  # fmt: skip
    with ServerProcess(args) as server:
        yield server


@pytest.fixture(scope="session")
def zero_cost_server() -> Iterator[ServerProcess]:
    """``open-autoglm serve --backend sim --backend-option cost=zero``."""
    with ServerProcess(("--backend", "sim", "--backend-option", "cost=zero")) as server:
        yield server


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """The ``prometheus`` binary; a failure under CI=1 when it is missing, else a skip."""
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("CI") == "1":
            pytest.fail("prometheus is not installed; CI installs it (scripts/system-packages.txt)")
        pytest.skip("prometheus is not installed (make setup-system installs it)")
    return path
