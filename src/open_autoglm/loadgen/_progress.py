"""Live progress on stderr (rich), from the first second: what the run is doing before the
load (preparing prompts, starting the collector, preparing and loading the model, starting
the server), then one bar per level counted in requests (done/total, or done so far with the
seconds of a timed level), the warm-up marked while it lasts, errors, latest TTFT and output
tokens/s."""

from __future__ import annotations

import time
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from open_autoglm.loadgen._records import RequestRecord
from open_autoglm.loadgen._results import LevelResult


class ProgressReporter(Protocol):
    def phase(self, text: str) -> None:
        """What the run is doing now, before or between levels (called again to update)."""

    def level_started(
        self,
        index: int,
        label: str,
        total: int | None,
        duration_s: float | None,
        warmup_s: float = 0.0,
    ) -> None: ...

    def record(self, record: RequestRecord) -> None: ...

    def level_finished(self, result: LevelResult) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    """``--quiet``: nothing on the terminal while the run goes."""

    def phase(self, text: str) -> None:
        pass

    def level_started(
        self,
        index: int,
        label: str,
        total: int | None,
        duration_s: float | None,
        warmup_s: float = 0.0,
    ) -> None:
        pass

    def record(self, record: RequestRecord) -> None:
        pass

    def level_finished(self, result: LevelResult) -> None:
        pass

    def close(self) -> None:
        pass


class _Requests(ProgressColumn):
    """``12/64 requests``, or ``12 requests, 4/30 s`` for a timed level; ``warm-up`` while the
    level's warm-up lasts; the phase's own text for a phase."""

    def render(self, task: Task) -> Text:
        if task.fields.get("phase"):
            return Text("")
        done = task.fields.get("done", 0)
        total = task.fields.get("requests")
        noun = "request" if (total if total is not None else done) == 1 else "requests"
        text = f"{done}/{total} {noun}" if total is not None else f"{done} {noun}"
        duration = task.fields.get("duration")
        elapsed = task.elapsed or 0.0
        if duration:
            text += f", {min(elapsed, duration):.0f}/{duration:.0f} s"
        if elapsed < task.fields.get("warmup", 0.0) and not task.finished:
            text += " (warm-up)"
        return Text(text)


class _Figures(ProgressColumn):
    """Errors, latest TTFT and output tokens/s of a level (nothing for a phase)."""

    def render(self, task: Task) -> Text:
        if task.fields.get("phase"):
            return Text("")
        text = Text(f"errors {task.fields['errors']}", style="red")
        text.append(f"  TTFT {task.fields['ttft']}  {task.fields['tps']} tok/s", style="")
        return text


class RichProgress:
    """A spinner for each phase before the load; one bar per level, counted in requests
    (the bar follows time when the level is timed)."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            SpinnerColumn(finished_text=" "),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            _Requests(),
            _Figures(),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            refresh_per_second=4,
            transient=False,
        )
        self._progress.start()
        self._phase: TaskID | None = None
        self._task: TaskID | None = None
        self._timed = False
        self._duration = 0.0
        self._started = 0.0
        self._done = self._errors = self._tokens = 0

    def phase(self, text: str) -> None:
        if self._phase is None:
            self._phase = self._progress.add_task(text, total=None, phase=True)
        else:
            self._progress.update(self._phase, description=text)

    def _end_phase(self) -> None:
        if self._phase is not None:
            self._progress.update(self._phase, total=1, completed=1)
            self._progress.stop_task(self._phase)
            self._phase = None

    def level_started(
        self,
        index: int,
        label: str,
        total: int | None,
        duration_s: float | None,
        warmup_s: float = 0.0,
    ) -> None:
        self._end_phase()
        self._timed = total is None and duration_s is not None
        self._duration = duration_s or 0.0
        self._started = time.perf_counter()
        self._done = self._errors = self._tokens = 0
        self._task = self._progress.add_task(
            f"level {index} {label}",
            total=duration_s if self._timed else total,
            done=0,
            requests=total,
            duration=duration_s if self._timed else None,
            warmup=warmup_s,
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
        completed = min(elapsed, self._duration) if self._timed else self._done
        self._progress.update(self._task, completed=completed, **fields)

    def level_finished(self, result: LevelResult) -> None:
        if self._task is not None:
            task = self._progress.tasks[-1]
            self._progress.update(self._task, completed=task.total)
            self._task = None

    def close(self) -> None:
        self._end_phase()
        self._progress.stop()
