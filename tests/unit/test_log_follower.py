"""The progress display's view of a starting server: the last line of its log."""

from __future__ import annotations

import threading
from pathlib import Path

from open_autoglm.run._log_follower import LogFollower, last_line


def test_last_line_skips_blanks_and_progress_returns(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    assert last_line(log) == ""  # not written yet
    log.write_text("preparing smollm2-135m\n  reading 10%\r  reading 90%\n\n")
    assert last_line(log) == "reading 90%"
    log.write_text("x" * 500 + "\n")
    assert len(last_line(log)) == 100


def test_follower_reports_each_new_line(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("preparing\n")
    seen: list[str] = []
    changed = threading.Event()

    def on_line(line: str) -> None:
        seen.append(line)
        changed.set()

    follower = LogFollower(log, on_line, interval_s=0.01)
    follower.start()
    assert changed.wait(5)
    changed.clear()
    with log.open("a") as out:
        out.write("loading\n")
    assert changed.wait(5)
    follower.stop()
    assert seen == ["preparing", "loading"]
