"""The results a reader looks for first: one summary per level, with the percentiles the user
asked for (``--metric-percentiles``, as ``vllm bench serve`` names it).

Each level gives its requests, errors, request and output-token throughput, and TTFT, TPOT,
ITL and E2E (ms) as count, mean and the chosen percentiles, computed from the measured,
successful records (``requests.jsonl``, linear interpolation as numpy's default). Without
records, the load generator's per-level statistics are used for the percentiles it keeps
(50, 90, 95, 99); any other is None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from open_autoglm.analysis._run_directory import RECORDS_TABLE, RunDirectory
from open_autoglm.errors import OpenAutoGLMError
from open_autoglm.loadgen import LevelResult, Stats

#: The default percentiles of the summary: the tail a reader asks about and the median.
DEFAULT_PERCENTILES: Final = (50.0, 90.0, 95.0, 99.0)
SummaryMetric = Literal["ttft", "tpot", "itl", "e2e"]
METRICS: Final[tuple[SummaryMetric, ...]] = ("ttft", "tpot", "itl", "e2e")
METRIC_NAMES: Final = {"ttft": "TTFT", "tpot": "TPOT", "itl": "ITL", "e2e": "E2E"}
_STATS_KEYS: Final = {50.0: "median", 90.0: "p90", 95.0: "p95", 99.0: "p99"}


class PercentileError(OpenAutoGLMError, ValueError):
    """A percentile list that is not comma-separated numbers in (0, 100]."""


def parse_percentiles(text: str) -> tuple[float, ...]:
    """``"50,90,99"`` → ``(50.0, 90.0, 99.0)``: sorted, duplicates dropped.

    Raises :class:`PercentileError` for an empty list, a non-number, or a value outside
    (0, 100]."""
    values: list[float] = []
    for part in text.split(","):
        part = part.strip().removeprefix("p")
        try:
            value = float(part)
        except ValueError:
            raise PercentileError(
                f"percentiles are numbers separated by commas, e.g. 50,90,99 (got {text!r})"
            ) from None
        if not 0 < value <= 100:
            raise PercentileError(f"a percentile is in (0, 100], got {part}")
        values.append(value)
    if not values:
        raise PercentileError("give at least one percentile, e.g. 50,90,99")
    return tuple(sorted(set(values)))


def percentile_key(q: float) -> str:
    """The JSON key and column name of a percentile: ``p50``, ``p99.9``."""
    return f"p{q:g}"


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """One latency metric of one level in ms: count, mean and ``percentiles`` keyed
    ``p50``, ``p99.9`` (None: no value)."""

    count: int = 0
    mean: float | None = None
    percentiles: dict[str, float | None] = field(default_factory=dict)

    def at(self, q: float) -> float | None:
        return self.percentiles.get(percentile_key(q))


@dataclass(frozen=True, slots=True)
class LevelSummary:
    """One level's results. ``load`` is what the level set (a concurrency, or a request rate
    for ``load_kind`` ``rate``); ``achieved_rate`` is successful requests per second."""

    level: int
    label: str
    load_kind: str  # "concurrency" or "rate"
    load: float
    requests: int  # measured requests
    errors: int
    request_throughput: float
    output_token_throughput: float
    ttft_ms: MetricSummary = field(default_factory=MetricSummary)
    tpot_ms: MetricSummary = field(default_factory=MetricSummary)
    itl_ms: MetricSummary = field(default_factory=MetricSummary)
    e2e_ms: MetricSummary = field(default_factory=MetricSummary)

    def metric(self, name: SummaryMetric) -> MetricSummary:
        value: MetricSummary = getattr(self, f"{name}_ms")
        return value


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _from_stats(stats: Stats, percentiles: Sequence[float]) -> MetricSummary:
    values = {
        percentile_key(q): _round(getattr(stats, key)) if (key := _STATS_KEYS.get(q)) else None
        for q in percentiles
    }
    return MetricSummary(stats.count, _round(stats.mean), values)


def summarize_levels(
    levels: Sequence[LevelResult],
    run: RunDirectory | None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
) -> list[LevelSummary]:
    """One :class:`LevelSummary` per level of ``levels`` (the load generator's results), its
    latencies from the run's records when ``run`` has them (see :meth:`RunDirectory.database`),
    else from the results' statistics."""
    quantiles = [q / 100 for q in percentiles]
    measured: dict[tuple[int, str], MetricSummary] = {}
    if run is not None and run.has_records():
        con = run.database()
        sql = f"""
            WITH ok AS (SELECT * FROM {RECORDS_TABLE} WHERE measured AND ok),
            gaps AS (
                SELECT level, (chunk_offsets_s[i + 1] - chunk_offsets_s[i]) * 1e3 AS v
                FROM (SELECT level, chunk_offsets_s,
                             unnest(range(1, len(chunk_offsets_s))) AS i
                      FROM ok WHERE len(chunk_offsets_s) > 1)
            ),
            pooled AS (
                SELECT level, 'ttft' AS m, ttft_s * 1e3 AS v FROM ok WHERE ttft_s IS NOT NULL
                UNION ALL
                SELECT level, 'tpot', tpot_s * 1e3 FROM ok WHERE tpot_s IS NOT NULL
                UNION ALL
                SELECT level, 'e2e', e2e_s * 1e3 FROM ok WHERE e2e_s IS NOT NULL
                UNION ALL
                SELECT level, 'itl', v FROM gaps
            )
            SELECT level, m, count(*), avg(v), quantile_cont(v, $q) FROM pooled
            GROUP BY level, m
        """
        for level, metric, count, mean, values in con.execute(sql, {"q": quantiles}).fetchall():
            measured[(int(level), str(metric))] = MetricSummary(
                int(count),
                _round(mean),
                {percentile_key(q): _round(v) for q, v in zip(percentiles, values, strict=True)},
            )
    out = []
    for lv in levels:

        def metric(name: SummaryMetric, lv: LevelResult = lv) -> MetricSummary:
            found = measured.get((lv.index, name))
            if found is None and measured:  # records, but none with this metric
                return MetricSummary(percentiles={percentile_key(q): None for q in percentiles})
            return found or _from_stats(getattr(lv, f"{name}_ms"), percentiles)

        out.append(
            LevelSummary(
                level=lv.index,
                label=lv.label,
                load_kind="rate" if lv.mode == "rate" else "concurrency",
                load=float(lv.target),
                requests=lv.measured,
                errors=lv.failed,
                request_throughput=round(lv.request_throughput, 4),
                output_token_throughput=round(lv.output_token_throughput, 4),
                ttft_ms=metric("ttft"),
                tpot_ms=metric("tpot"),
                itl_ms=metric("itl"),
                e2e_ms=metric("e2e"),
            )
        )
    return out
