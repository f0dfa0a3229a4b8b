"""``open-autoglm --version`` and ``--help`` answer without importing the heavy libraries: the
commands import their library only when they run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
HEAVY = ("fastapi", "aiohttp", "duckdb", "scipy", "numpy", "onnxruntime")
#: Not forbidden by the issue, but nothing in argument parsing needs them either.
AVOIDED = ("httpx", "pydantic", "opentelemetry", "uvicorn", "rich")


def imported_modules(*argv: str) -> tuple[set[str], str]:
    """Top-level names of every module ``python -X importtime -m open_autoglm ARGV`` imported,
    and its stdout."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "open_autoglm", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    names = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    assert "open_autoglm" in names, done.stderr[-2000:]  # the probe itself works
    return names, done.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ("--version",),
        ("--help",),
        ("benchmark", "--help"),
        ("serve", "--help"),
        ("collector", "--help"),
        ("models", "prepare", "--help"),
        ("dashboards", "push", "--help"),
        ("compare", "--help"),
    ],
)
def test_version_and_help_import_no_heavy_library(argv: tuple[str, ...]) -> None:
    names, stdout = imported_modules(*argv)
    assert stdout.strip()  # it answered
    assert not names & set(HEAVY), sorted(names & set(HEAVY))
    assert not names & set(AVOIDED), sorted(names & set(AVOIDED))


def test_benchmark_help_lists_the_library_choices() -> None:
    _, stdout = imported_modules("benchmark", "--help")
    for word in ("poisson", "sharegpt", "lognormal", "webp", "sweep", "completions"):
        assert word in stdout
