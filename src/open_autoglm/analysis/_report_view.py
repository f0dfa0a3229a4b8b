"""What ``check`` and ``compare`` read from a report, tolerant of where it sits.

Accepted documents: the report (``version`` ``open-autoglm.report/N``, the load generator's
document under ``load``, server resources under ``resources``, backend and model under
``run``) and the load generator's own results (``open-autoglm.loadgen.results/N``). Fields
read, all optional except ``levels``, each typed (:class:`LevelView`, :class:`RunInfo`); one
of the wrong type is refused with its path in the document:

* ``load.levels[]`` (or top-level ``levels[]``): ``index``, ``label``, ``mode``, ``target``,
  ``succeeded``, ``failed``, ``measured``, ``requests``, ``error_rate``, ``request_throughput``,
  ``output_token_throughput``, and ``mean``, ``min``, ``median``, ``p90``, ``p95``, ``p99``,
  ``max`` of ``ttft_ms``, ``tpot_ms``, ``itl_ms``, ``e2e_ms``;
* ``load.records_path`` (else ``requests.jsonl`` beside the report) for per-request samples;
* ``run.backend``, ``run.model`` (else ``load.endpoint.backend|model``) and
  ``run.runtime.device|kv_cache`` for a row label;
* ``resources.server_rss_peak_bytes``, ``resources.gpu_memory_peak_bytes`` for peak memory.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pydantic

from open_autoglm.analysis._errors import AnalysisError
from open_autoglm.analysis._report import RunInfo
from open_autoglm.analysis._run_directory import find_records
from open_autoglm.loadgen import is_measured, is_ok, read_record_dicts

FloatArray = npt.NDArray[np.float64]
StatName = Literal["mean", "min", "median", "p90", "p95", "p99", "max"]
_METRIC_KEYS = {"ttft": "ttft_s", "tpot": "tpot_s", "e2e": "e2e_s"}


class ReportReadError(AnalysisError):
    """A report that is missing, unreadable or of another kind."""


@dataclass(frozen=True, slots=True)
class LevelStats:
    """One latency distribution of a level in ms, as far as the document has it."""

    mean: float | None = None
    min: float | None = None
    median: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None

    def stat(self, name: StatName) -> float | None:
        value: float | None = getattr(self, name)
        return value


_NO_STATS: Final = LevelStats()


@dataclass(frozen=True, slots=True)
class LevelView:
    """One level of the document: the fields ``check`` and ``compare`` read (None: absent).
    ``index`` is the level's position when the document does not give it."""

    index: int
    label: str | None = None
    mode: str | None = None  # "concurrency" or "rate"
    target: float | None = None  # the level's concurrency or request rate
    measured: int | None = None
    requests: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    error_rate: float | None = None
    request_throughput: float | None = None
    output_token_throughput: float | None = None
    ttft_ms: LevelStats | None = None
    tpot_ms: LevelStats | None = None
    itl_ms: LevelStats | None = None
    e2e_ms: LevelStats | None = None

    @property
    def name(self) -> str:
        return self.label or f"#{self.index}"

    def stats(self, metric: str) -> LevelStats:
        """The level's ``ttft``, ``tpot``, ``itl`` or ``e2e`` distribution (empty when absent
        or another metric)."""
        value = {"ttft": self.ttft_ms, "tpot": self.tpot_ms, "itl": self.itl_ms,
                 "e2e": self.e2e_ms}.get(metric)  # fmt: skip
        return _NO_STATS if value is None else value


@dataclass(frozen=True, slots=True)
class _Endpoint:
    backend: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class _Load:
    levels: list[LevelView]
    records_path: str | None = None
    endpoint: _Endpoint | None = None


@dataclass(frozen=True, slots=True)
class _Resources:
    server_rss_peak_bytes: float | None = None
    gpu_memory_peak_bytes: float | None = None


_LOAD: Final = pydantic.TypeAdapter(_Load)
_RUN: Final = pydantic.TypeAdapter(RunInfo)
_RESOURCES: Final = pydantic.TypeAdapter(_Resources)


@dataclass(slots=True)
class RequestSamples:
    """Per-request values of the measured requests of one level (seconds)."""

    ttft: list[float] = field(default_factory=list)
    tpot: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)  # every gap, pooled
    itl_max: list[float] = field(default_factory=list)  # each request's largest gap
    e2e: list[float] = field(default_factory=list)
    ok: int = 0
    failed: int = 0
    output_tokens: int = 0

    def values(self, metric: str) -> FloatArray:
        return np.asarray(getattr(self, metric), dtype=np.float64)


@dataclass(slots=True)
class ReportView:
    path: Path
    levels: list[LevelView]
    run: RunInfo | None = None
    resources: _Resources | None = None
    records_path_given: str | None = None
    endpoint: _Endpoint | None = None
    _samples: dict[int, RequestSamples] | None = None
    _records_checked: bool = False

    @classmethod
    def open(cls, path: Path) -> ReportView:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ReportReadError(f"no report at {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ReportReadError(f"{path} is not a readable JSON report: {exc}") from None
        if not isinstance(data, dict):
            raise ReportReadError(f"{path} is not a report (not a JSON object)")
        version = str(data.get("version", ""))
        load = data.get("load") if version.startswith("open-autoglm.report/") else data
        if not isinstance(load, dict) or not isinstance(load.get("levels"), list):
            raise ReportReadError(
                f"{path} is not an open-autoglm report or results file (no levels)"
            )
        levels = [
            {"index": position, **lv}
            for position, lv in enumerate(load["levels"])
            if isinstance(lv, dict)
        ]
        try:
            parsed = _LOAD.validate_python({**_dicts(load, "endpoint"), "levels": levels})
            run = data.get("run")
            resources = data.get("resources")
            return cls(
                path,
                parsed.levels,
                run=_RUN.validate_python(run) if isinstance(run, dict) else None,
                resources=(
                    _RESOURCES.validate_python(resources) if isinstance(resources, dict) else None
                ),
                records_path_given=parsed.records_path,
                endpoint=parsed.endpoint,
            )
        except pydantic.ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise ReportReadError(f"{path}: {where}: {error['msg']}") from None

    @property
    def label(self) -> str:
        run, endpoint = self.run or RunInfo(), self.endpoint or _Endpoint()
        backend = run.backend or endpoint.backend
        model = run.model or endpoint.model
        parts = [p for p in (backend, model) if p]
        if run.runtime.get("device"):
            where = run.runtime["device"]
            kv_cache = run.runtime.get("kv_cache")
            if kv_cache and kv_cache != where and where != "cpu":  # the host is the CPU
                where += f", KV cache on {kv_cache}"
            parts.append(f"[{where}]")
        return " ".join(parts) if parts else self.path.stem

    def peak_memory_bytes(self) -> tuple[int | None, int | None]:
        """(server RSS peak, GPU memory peak), None where not measured."""
        res = self.resources
        if res is None:
            return None, None
        rss, gpu = res.server_rss_peak_bytes, res.gpu_memory_peak_bytes
        return (int(rss) if rss else None, int(gpu) if gpu else None)

    def records_path(self) -> Path | None:
        """Beside the report, else in the run directory the report names (a report written
        elsewhere with ``--output``); None when neither holds them."""
        given = str(self.records_path_given) if self.records_path_given else None
        found = find_records(self.path.parent, given)
        run_dir = self.run.run_dir if self.run is not None else None
        if found is None and run_dir:
            found = find_records(Path(run_dir), given)
        return found

    def samples(self) -> dict[int, RequestSamples] | None:
        """Measured requests per level index from ``requests.jsonl``; None if not found."""
        if self._records_checked:
            return self._samples
        self._records_checked = True
        path = self.records_path()
        if path is None:
            return None
        out: dict[int, RequestSamples] = {}
        try:
            for record in read_record_dicts(path):
                _add(out, record)
        except (OSError, TypeError, ValueError) as exc:
            raise ReportReadError(f"cannot read request records {path}: {exc}") from None
        self._samples = out
        return out


def _dicts(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    """``doc`` with the ``keys`` that are not JSON objects left out (read as absent)."""
    return {k: v for k, v in doc.items() if k not in keys or isinstance(v, dict)}


def _add(out: dict[int, RequestSamples], r: dict[str, Any]) -> None:
    if not is_measured(r.get("phase"), r.get("status")):
        return
    s = out.setdefault(int(r.get("level", 0)), RequestSamples())
    if not is_ok(r.get("status")):
        s.failed += 1
        return
    s.ok += 1
    s.output_tokens += int(r.get("output_tokens") or 0)
    for metric, key in _METRIC_KEYS.items():
        value = r.get(key)
        if value is not None:
            getattr(s, metric).append(float(value))
    offsets = r.get("chunk_offsets_s") or []
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    s.itl.extend(gaps)
    if gaps:
        s.itl_max.append(max(gaps))
