"""The managed run's own errors (those of its parts keep their own types)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from open_autoglm.errors import OpenAutoGLMError

if TYPE_CHECKING:
    from open_autoglm.analysis import Report
    from open_autoglm.loadgen import BenchmarkResults
    from open_autoglm.run._child_watch import ChildDeath


class RunError(OpenAutoGLMError):
    """Base of every error the managed run raises itself."""


class RunDirectoryError(RunError):
    """The run directory cannot be used (it already holds another run's records)."""


class ChildDiedError(RunError):
    """A child of the managed run (server or collector) died while the load ran.

    Raised once the run has stopped sending and written the results and report of what
    finished; ``results`` and ``report`` are those (``report`` ``None`` if it could not be
    built), ``death`` names the child and its exit status.
    """

    def __init__(self, death: ChildDeath, results: BenchmarkResults, report: Report | None) -> None:
        finished = sum(level.succeeded + level.failed for level in results.levels)
        super().__init__(
            f"{death.describe()}: the run stopped sending; {finished} requests finished "
            "and are in its results"
        )
        self.death = death
        self.results = results
        self.report = report
