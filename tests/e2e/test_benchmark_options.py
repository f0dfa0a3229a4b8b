"""``benchmark`` validates its options alike in every mode, before anything is sent: a bad
``--metric-percentiles`` is one line and exit 2 with ``--url`` as in a managed run (which
once ran the whole load first), and a managed run's server flags are refused with ``--url``
(they were silently ignored)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

#: Nothing listens there; every case must stop before a request would be sent.
_URL = ("--url", "http://127.0.0.1:9", "--model", "m")
_MANAGED = ("--backend", "sim", "--backend-option", "cost=zero")


def _benchmark(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "open_autoglm", "benchmark", "--requests", "2",
                           "--quiet", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


@pytest.mark.parametrize(("mode"), [_URL, _MANAGED], ids=["url", "managed"])
@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--metric-percentiles", "50,200"), "a percentile is in (0, 100], got 200"),
        (("--waterfalls", "-1"), "waterfalls"),
    ],
)
def test_report_options_are_checked_in_every_mode(
    mode: tuple[str, ...], option: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    done = _benchmark(*mode, *option, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("open-autoglm: error: ")
    assert message in line
    assert not (tmp_path / "runs").exists()  # refused before anything ran


@pytest.mark.parametrize(
    "flag",
    [
        ("--max-batch-size", "8"),
        ("--max-model-len", "512"),
        ("--device", "cpu"),
        ("--target-tpot", "20"),
        ("--backend-option", "cost=zero"),
    ],
)
def test_a_managed_servers_flag_is_refused_with_url(flag: tuple[str, str], tmp_path: Path) -> None:
    done = _benchmark(*_URL, *flag, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"open-autoglm: error: {flag[0]} set up the server of a managed run (--backend); a "
        "server given with --url is configured where it runs"
    ]
