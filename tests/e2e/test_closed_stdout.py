"""``open-autoglm ... | head``: standard output closed before the command writes ends quietly,
exit 141 (128 + SIGPIPE) and nothing on stderr, never a ``BrokenPipeError`` traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_RESULTS = Path(__file__).parents[1] / "fixtures" / "report_run" / "results.json"


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (("check", str(_RESULTS), "--slo", "p95_e2e<=60s", "--format", "json"), 141),
        (("compare", str(_RESULTS), str(_RESULTS), "--format", "json"), 141),
        # argparse drops a failed write of its help itself and exits 0 as asked
        (("--help",), 0),
    ],
    ids=["check", "compare", "help"],
)
def test_a_closed_stdout_ends_quietly(args: tuple[str, ...], status: int, tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes: every write fails
    try:
        done = subprocess.run([sys.executable, "-m", "open_autoglm", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120, check=False,
                              cwd=tmp_path)  # fmt: skip
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == status
