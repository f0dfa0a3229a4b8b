"""What ``check`` and ``compare`` read from a report, tolerant of where it sits.

Accepted documents: the report (``version`` ``open-autoglm.report/N``, the load generator's
document under ``load``, server resources under ``resources``, backend and model under
``run``) and the load generator's own results (``open-autoglm.loadgen.results/N``). Fields
read, all optional except ``levels``:

* ``load.levels[]`` (or top-level ``levels[]``): ``index``, ``label``, ``mode``, ``target``,
  ``succeeded``, ``failed``, ``measured``, ``error_rate``, ``request_throughput``,
  ``output_token_throughput``, ``duration_s``, and ``mean``, ``median``, ``p90``, ``p95``,
  ``p99``, ``max`` of ``ttft_ms``, ``tpot_ms``, ``itl_ms``, ``e2e_ms``;
* ``load.records_path`` (else ``requests.jsonl`` beside the report) for per-request samples;
* ``run.backend``, ``run.model`` (else ``load.endpoint.backend|model``) for a row label;
* ``resources.server_rss_peak_bytes``, ``resources.gpu_memory_peak_bytes`` for peak memory.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from open_autoglm.analysis._errors import AnalysisError

FloatArray = npt.NDArray[np.float64]
_METRIC_KEYS = {"ttft": "ttft_s", "tpot": "tpot_s", "e2e": "e2e_s"}


class ReportReadError(AnalysisError):
    """A report that is missing, unreadable or of another kind."""


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
    data: dict[str, Any]
    load: dict[str, Any]
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
        return cls(path, data, load)

    @property
    def levels(self) -> list[dict[str, Any]]:
        return [lv for lv in self.load["levels"] if isinstance(lv, dict)]

    def level_index(self, level: Mapping[str, Any], position: int) -> int:
        return int(level.get("index", position))

    @property
    def label(self) -> str:
        run = self.data.get("run") if isinstance(self.data.get("run"), dict) else {}
        endpoint = self.load.get("endpoint") if isinstance(self.load.get("endpoint"), dict) else {}
        backend = (run or {}).get("backend") or (endpoint or {}).get("backend")
        model = (run or {}).get("model") or (endpoint or {}).get("model")
        parts = [str(p) for p in (backend, model) if p]
        runtime = (run or {}).get("runtime")
        if isinstance(runtime, dict) and runtime.get("device"):
            where = str(runtime["device"])
            kv_cache = runtime.get("kv_cache")
            if kv_cache and kv_cache != where and where != "cpu":  # the host is the CPU
                where += f", KV cache on {kv_cache}"
            parts.append(f"[{where}]")
        return " ".join(parts) if parts else self.path.stem

    def peak_memory_bytes(self) -> tuple[int | None, int | None]:
        """(server RSS peak, GPU memory peak), None where not measured."""
        res = self.data.get("resources")
        if not isinstance(res, dict):
            return None, None
        rss, gpu = res.get("server_rss_peak_bytes"), res.get("gpu_memory_peak_bytes")
        return (int(rss) if rss else None, int(gpu) if gpu else None)

    def records_path(self) -> Path | None:
        candidates = []
        given = self.load.get("records_path")
        if given:
            p = Path(str(given))
            candidates += [p] if p.is_absolute() else [self.path.parent / p, p]
        candidates.append(self.path.parent / "requests.jsonl")
        return next((c for c in candidates if c.is_file()), None)

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
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        _add(out, json.loads(line))
        except (OSError, json.JSONDecodeError, TypeError, ValueError) as exc:
            raise ReportReadError(f"cannot read request records {path}: {exc}") from None
        self._samples = out
        return out


def _add(out: dict[int, RequestSamples], r: dict[str, Any]) -> None:
    if r.get("phase", "measure") != "measure" or r.get("status") == "cancelled":
        return
    s = out.setdefault(int(r.get("level", 0)), RequestSamples())
    if r.get("status", "ok") != "ok":
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
