"""Live progress on stderr (rich): done/total, errors, latest TTFT and output tokens/s."""

from __future__ import annotations

import time
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from open_autoglm.loadgen._records import RequestRecord
from open_autoglm.loadgen._results import LevelResult


class ProgressReporter(Protocol):
    def level_started(
        self, index: int, label: str, total: int | None, duration_s: float | None
    ) -> None: ...

    def record(self, record: RequestRecord) -> None: ...

    def level_finished(self, result: LevelResult) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    """``--quiet``: nothing on the terminal while the run goes."""

    def level_started(
        self, index: int, label: str, total: int | None, duration_s: float | None
    ) -> None:
        pass

    def record(self, record: RequestRecord) -> None:
        pass

    def level_finished(self, result: LevelResult) -> None:
        pass

    def close(self) -> None:
        pass


class RichProgress:
    """One bar per level; the bar follows requests, or time when the level is timed."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("done {task.fields[done]}"),
            TextColumn("[red]errors {task.fields[errors]}"),
            TextColumn("TTFT {task.fields[ttft]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            refresh_per_second=4,
            transient=False,
        )
        self._progress.start()
        self._task: TaskID | None = None
        self._timed = False
        self._duration = 0.0
        self._started = 0.0
        self._done = self._errors = self._tokens = 0

    def level_started(
        self, index: int, label: str, total: int | None, duration_s: float | None
    ) -> None:
        self._timed = total is None and duration_s is not None
        self._duration = duration_s or 0.0
        self._started = time.perf_counter()
        self._done = self._errors = self._tokens = 0
        self._task = self._progress.add_task(
            f"level {index} {label}",
            total=(duration_s or 1.0) * 10 if self._timed else total,
            done=0,
            errors=0,
            ttft="-",
            tps="-",
        )

    def record(self, record: RequestRecord) -> None:
        if self._task is None:
            return
        self._done += 1
        if record.status != "ok":
            self._errors += 1
        self._tokens += record.output_tokens or 0
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        fields: dict[str, Any] = {"done": self._done, "errors": self._errors}
        fields["tps"] = f"{self._tokens / elapsed:,.0f}"
        if record.ttft_s is not None:
            fields["ttft"] = f"{record.ttft_s * 1e3:.1f} ms"
        completed = min(elapsed, self._duration) * 10 if self._timed else self._done
        self._progress.update(self._task, completed=completed, **fields)

    def level_finished(self, result: LevelResult) -> None:
        if self._task is not None:
            task = self._progress.tasks[-1]
            self._progress.update(self._task, completed=task.total)
            self._task = None

    def close(self) -> None:
        self._progress.stop()
