"""The server's side of a run from Prometheus: PromQL over HTTP for the run's time window.

What it asks (metric names from the telemetry contract):

* TTFT, TPOT, E2E and per-stage percentiles with ``histogram_quantile`` over the buckets that
  grew inside the window. The growth is the exact difference of the counters at the window's
  end and at its start (``max_over_time(...[W] @ end) - (... @ start)``), not ``increase()``:
  ``increase()`` extrapolates to the window's edges and misses the first counts of a series
  born inside it, which is every series of a server started for the run. A server restart
  inside the window (a counter reset) makes the difference meaningless; the answer says so
  through a negative count.
* Queue depth, running batch size, RSS (``process_resident_memory_bytes``), GPU memory and
  utilisation as ``query_range`` series over the window: peak and mean; the server's own
  serving and model-load peaks of resident memory.
* ``/api/v1/query_exemplars``: the ``trace_id`` exemplars of the latency histograms, for
  links from a slow bucket to the trace that landed in it.

Only series with the run's model and provider (backend) labels, ``gen_ai_request_model`` and
``gen_ai_provider_name`` (from ``run.json``), are read; process and GPU series carry no such
labels and are matched to the same scrape targets by ``instance`` and ``job``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import pydantic

from open_autoglm.analysis._errors import AnalysisError
from open_autoglm.analysis._run_directory import RunDirectory
from open_autoglm.telemetry import names as n

#: Trace ids in exemplars: 32 lowercase hex digits.
_TRACE_ID: Final = re.compile(r"[0-9a-f]{32}")
_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: Series the scrape targets of the run are recognised by (every server exposes it).
_TARGET_SERIES: Final = f"{n.METRIC_REQUEST_DURATION}_count"
_HISTOGRAMS: Final = {
    "ttft": n.METRIC_TTFT,
    "tpot": n.METRIC_TPOT,
    "e2e": n.METRIC_REQUEST_DURATION,
}


class PrometheusError(AnalysisError):
    """Prometheus cannot answer (unreachable, an error answer, not its API), or a bad config."""


@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    """Where Prometheus is and how to ask it; checked when built."""

    url: str
    timeout_s: float = 10.0
    max_concurrency: int = 8
    quantiles: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)
    #: Label matchers every server series must carry
    #: (``{"gen_ai_request_model": ..., "gen_ai_provider_name": ...}``).
    matchers: Mapping[str, str] = field(default_factory=dict)
    #: Seconds after the run's end still read: the scrape that follows the last request.
    settle_s: float = 30.0
    #: Points of a ``query_range`` series over the window (the step follows from it).
    range_points: int = 500
    exemplar_limit: int = 1000

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise PrometheusError(f"Prometheus URL must start with http:// or https://: {self.url}")
        if self.timeout_s <= 0 or self.max_concurrency < 1 or self.range_points < 2:
            raise PrometheusError("timeout_s, max_concurrency and range_points must be positive")
        if not self.quantiles or not all(0 < q < 1 for q in self.quantiles):
            raise PrometheusError(f"quantiles must be in (0, 1): {self.quantiles}")
        if self.settle_s < 0:
            raise PrometheusError(f"settle_s must be >= 0, got {self.settle_s}")
        bad = [name for name in self.matchers if not _LABEL_NAME.fullmatch(name)]
        if bad:
            raise PrometheusError(f"invalid Prometheus label names: {', '.join(bad)}")


@dataclass(frozen=True, slots=True)
class HistogramSummary:
    """Observations of one histogram inside the window and their quantiles (ms)."""

    count: float | None
    quantiles_ms: dict[str, float | None]


@dataclass(frozen=True, slots=True)
class GaugeSummary:
    """Peak and time-average of a gauge over the window (``None``: no series)."""

    max: float | None
    mean: float | None


@dataclass(frozen=True, slots=True)
class PrometheusSummary:
    """The server's view of the run as Prometheus recorded it."""

    url: str
    selector: str
    start_unix_s: float
    end_unix_s: float
    ttft: HistogramSummary
    tpot: HistogramSummary
    e2e: HistogramSummary
    stages: dict[str, HistogramSummary]
    queue_depth: GaugeSummary
    batch_size: GaugeSummary
    rss_bytes: GaugeSummary
    peak_rss_bytes: float | None  # the server's serving peak (its high-water mark since load)
    gpu_memory_used_bytes: GaugeSummary
    gpu_utilization: GaugeSummary
    exemplar_trace_ids: list[str]
    queries: int
    load_peak_rss_bytes: float | None = None  # while the server prepared and loaded the model

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PrometheusSummary:
        """The summary back from :meth:`to_json`'s document; :class:`PrometheusError` when a
        field is missing or of the wrong type."""
        try:
            return pydantic.TypeAdapter(cls).validate_python(data)
        except pydantic.ValidationError as exc:
            raise PrometheusError(f"not a Prometheus summary: {exc.errors()[0]}") from None


def quantile_key(q: float) -> str:
    """``0.99`` -> ``"p99"``, ``0.999`` -> ``"p99.9"``."""
    return f"p{round(q * 100, 6):g}"


def selector(matchers: Mapping[str, str]) -> str:
    """``{gen_ai_provider_name="b",gen_ai_request_model="m"}`` (empty string for no matchers),
    values escaped."""
    if not matchers:
        return ""
    parts = [f"{k}={json.dumps(v)}" for k, v in sorted(matchers.items())]
    return "{" + ",".join(parts) + "}"


class _Api:
    """GET on Prometheus's HTTP API; every failure becomes a :class:`PrometheusError`."""

    def __init__(self, config: PrometheusConfig, client: httpx.Client) -> None:
        self._base = config.url.rstrip("/")
        self._client = client
        self.calls = 0

    def get(self, path: str, params: dict[str, str]) -> Any:
        self.calls += 1
        url = f"{self._base}{path}"
        try:
            response = self._client.get(url, params=params)
        except httpx.TimeoutException as exc:
            raise PrometheusError(f"Prometheus at {self._base} timed out ({path})") from exc
        except httpx.HTTPError as exc:
            raise PrometheusError(
                f"cannot reach Prometheus at {self._base}: {type(exc).__name__}"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "status" not in body:
            raise PrometheusError(
                f"{url} answered HTTP {response.status_code} with no Prometheus API body"
            )
        if body["status"] != "success":
            raise PrometheusError(
                f"Prometheus rejected {params.get('query', path)!r}: "
                f"{body.get('errorType', 'error')}: {body.get('error', '')}"
            )
        return body.get("data")


def _number(value: Any) -> float | None:
    """A sample value (a string in the API: ``"0.25"``, ``"NaN"``, ``"+Inf"``) or ``None``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _vector(data: Any) -> list[tuple[dict[str, str], float | None]]:
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        raise PrometheusError(f"expected an instant vector, got {type(data).__name__}")
    return [(item.get("metric", {}), _number(item["value"][1])) for item in data["result"]]


def _matrix_values(data: Any) -> list[float]:
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        raise PrometheusError(f"expected a range vector, got {type(data).__name__}")
    return [v for series in data["result"] for _, raw in series["values"] if (v := _number(raw))]


class _Window:
    """PromQL pieces for the window ``(start, end]``."""

    def __init__(self, start: float, end: float, sel: str) -> None:
        self.start = start
        self.end = end
        self.range = f"{max(1, math.ceil(end - start))}s"
        self.sel = sel

    def growth(self, series: str, by: str) -> str:
        """How much every counter of ``series`` grew inside the window, summed by ``by``."""
        at_end = f"max_over_time({series}{self.sel}[{self.range}] @ {self.end:.3f})"
        at_start = f"{series}{self.sel} @ {self.start:.3f}"
        return f"sum by ({by}) ({at_end} - ({at_start} or {at_end} * 0))"

    def of_targets(self, series: str) -> str:
        """``series`` of the scrape targets that serve the run's model (matched by target)."""
        return f"({series} and on (instance, job) {_TARGET_SERIES}{self.sel})"


def query_prometheus(
    config: PrometheusConfig,
    start_unix_s: float,
    end_unix_s: float,
    *,
    transport: httpx.BaseTransport | None = None,
) -> PrometheusSummary:
    """Ask Prometheus about the window ``(start, end + settle]``; see the module docstring.

    ``transport`` replaces the network (``httpx.MockTransport`` in tests)."""
    if end_unix_s < start_unix_s:
        raise PrometheusError(f"the window ends before it starts: {start_unix_s} > {end_unix_s}")
    end = end_unix_s + config.settle_s
    sel = selector(config.matchers)
    w = _Window(start_unix_s, end, sel)
    stage_bucket = f"{n.METRIC_STAGE_DURATION}_bucket"
    stage = n.LABEL_STAGE
    instant: dict[str, str] = {}
    for key, metric in _HISTOGRAMS.items():
        instant[f"{key}:count"] = f"sum({w.growth(f'{metric}_count', 'le')})"
        for q in config.quantiles:
            expr = f"histogram_quantile({q}, {w.growth(f'{metric}_bucket', 'le')})"
            instant[f"{key}:{quantile_key(q)}"] = expr
    instant["stage:count"] = w.growth(f"{n.METRIC_STAGE_DURATION}_count", stage)
    for q in config.quantiles:
        expr = f"histogram_quantile({q}, {w.growth(stage_bucket, f'le, {stage}')})"
        instant[f"stage:{quantile_key(q)}"] = expr
    ranged = {
        "queue_depth": f"sum({n.METRIC_QUEUE_DEPTH}{sel})",
        "batch_size": f"sum({n.METRIC_BATCH_SIZE}{sel})",
        "rss_bytes": f"max{w.of_targets(n.METRIC_PROCESS_RSS)}",
        "peak_rss_bytes": f"max{w.of_targets(n.METRIC_PROCESS_PEAK_RSS)}",
        "load_peak_rss_bytes": f"max{w.of_targets(n.METRIC_PROCESS_LOAD_PEAK_RSS)}",
        "gpu_memory_used_bytes": f"sum{w.of_targets(n.METRIC_GPU_MEMORY_USED)}",
        "gpu_utilization": f"avg{w.of_targets(n.METRIC_GPU_UTILIZATION)}",
    }
    step = f"{max(1.0, (end - start_unix_s) / config.range_points):.3f}"
    limits = httpx.Limits(max_connections=config.max_concurrency)
    with httpx.Client(timeout=config.timeout_s, limits=limits, transport=transport) as client:
        api = _Api(config, client)
        # one probe first: an unreachable Prometheus fails once, with one clear message
        api.get("/api/v1/query", {"query": "vector(1)", "time": f"{end:.3f}"})
        jobs: dict[str, Callable[[], Any]] = {
            key: _bound(api.get, "/api/v1/query", {"query": expr, "time": f"{end:.3f}"})
            for key, expr in instant.items()
        }
        for key, expr in ranged.items():
            params = {"query": expr, "start": f"{start_unix_s:.3f}", "end": f"{end:.3f}"}
            jobs[f"range:{key}"] = _bound(api.get, "/api/v1/query_range", {**params, "step": step})
        exemplar_query = "{__name__=~" + json.dumps(
            f"{n.METRIC_REQUEST_DURATION}_bucket|{n.METRIC_TTFT}_bucket"
        )
        exemplar_query += "," + sel[1:] if sel else "}"
        jobs["exemplars"] = _bound(
            api.get,
            "/api/v1/query_exemplars",
            {"query": exemplar_query, "start": f"{start_unix_s:.3f}", "end": f"{end:.3f}"},
        )
        with ThreadPoolExecutor(max_workers=config.max_concurrency) as pool:
            futures = {key: pool.submit(job) for key, job in jobs.items()}
            answers = {key: future.result() for key, future in futures.items()}
        calls = api.calls

    def histogram(key: str) -> HistogramSummary:
        count = _vector(answers[f"{key}:count"])
        return HistogramSummary(
            count=count[0][1] if count else None,
            quantiles_ms={
                quantile_key(q): _ms(_vector(answers[f"{key}:{quantile_key(q)}"]))
                for q in config.quantiles
            },
        )

    stage_counts = {m.get(stage, ""): v for m, v in _vector(answers["stage:count"])}
    stage_quantiles = {
        quantile_key(q): {
            m.get(stage, ""): v for m, v in _vector(answers[f"stage:{quantile_key(q)}"])
        }
        for q in config.quantiles
    }
    stages = {
        name: HistogramSummary(
            count=count,
            quantiles_ms={
                k: (None if (v := by_stage.get(name)) is None else v * 1e3)
                for k, by_stage in stage_quantiles.items()
            },
        )
        for name, count in sorted(stage_counts.items())
        if count
    }
    gauges = {key: _gauge(_matrix_values(answers[f"range:{key}"])) for key in ranged}
    return PrometheusSummary(
        url=config.url,
        selector=sel,
        start_unix_s=start_unix_s,
        end_unix_s=end,
        ttft=histogram("ttft"),
        tpot=histogram("tpot"),
        e2e=histogram("e2e"),
        stages=stages,
        queue_depth=gauges["queue_depth"],
        batch_size=gauges["batch_size"],
        rss_bytes=gauges["rss_bytes"],
        peak_rss_bytes=gauges["peak_rss_bytes"].max,
        load_peak_rss_bytes=gauges["load_peak_rss_bytes"].max,
        gpu_memory_used_bytes=gauges["gpu_memory_used_bytes"],
        gpu_utilization=gauges["gpu_utilization"],
        exemplar_trace_ids=_exemplar_trace_ids(answers["exemplars"], config.exemplar_limit),
        queries=calls,
    )


def _bound(get: Callable[[str, dict[str, str]], Any], path: str, params: dict[str, str]) -> Any:
    return lambda: get(path, params)


def _ms(vector: list[tuple[dict[str, str], float | None]]) -> float | None:
    value = vector[0][1] if vector else None
    return None if value is None else value * 1e3


def _gauge(values: list[float]) -> GaugeSummary:
    if not values:
        return GaugeSummary(None, None)
    return GaugeSummary(max(values), sum(values) / len(values))


def _exemplar_trace_ids(data: Any, limit: int) -> list[str]:
    """Distinct ``trace_id`` labels of the exemplars, slowest first."""
    if not isinstance(data, list):
        raise PrometheusError("expected a list of exemplar series from /api/v1/query_exemplars")
    best: dict[str, float] = {}
    for series in data:
        for exemplar in series.get("exemplars") or []:
            trace_id = str(exemplar.get("labels", {}).get(n.EXEMPLAR_TRACE_ID, "")).lower()
            if not _TRACE_ID.fullmatch(trace_id):
                continue
            value = _number(exemplar.get("value")) or 0.0
            best[trace_id] = max(value, best.get(trace_id, 0.0))
    return sorted(best, key=lambda t: (-best[t], t))[:limit]


def run_window(run_dir: Path) -> tuple[float, float]:
    """Start and end (unix seconds) of the run in ``run_dir`` from its ``results.json``."""
    path = RunDirectory(run_dir).results_path
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
        return results["started_unix_ns"] / 1e9, results["finished_unix_ns"] / 1e9
    except FileNotFoundError:
        raise PrometheusError(f"{path} is missing: the run's time window is unknown") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PrometheusError(
            f"{path} gives no time window ({type(exc).__name__}: {exc})"
        ) from None


def run_matchers(run_dir: Path) -> dict[str, str]:
    """Model and provider (backend) label matchers from the run's ``run.json`` (none if
    absent)."""
    path = RunDirectory(run_dir).run_path
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(run, dict):
        return {}
    out = {}
    for label, key in ((n.LABEL_MODEL, "model"), (n.LABEL_PROVIDER, "backend")):
        if isinstance(run.get(key), str) and run[key]:
            out[label] = run[key]
    return out


def prometheus_summary_of_run(run_dir: Path, url: str, **options: Any) -> PrometheusSummary:
    """Prometheus's view of the run in ``run_dir`` (window from ``results.json``, labels from
    ``run.json``); ``options`` go to :class:`PrometheusConfig`."""
    start, end = run_window(run_dir)
    options.setdefault("matchers", run_matchers(run_dir))
    return query_prometheus(PrometheusConfig(url=url, **options), start, end)
