"""Hotspots: where the time of the slow requests went, against the rest.

Input: :class:`~open_autoglm.analysis._critical_path.CriticalPaths` (critical-path time per
trace and operation), one latency per trace (E2E or TTFT; by default the path's own length),
and numeric attributes per trace (queue depth, batch size, prompt tokens, in-flight requests).

The slow cohort is the traces above the P95/P99 of that latency; the baseline is the rest.
For each operation — each stage, and each stage within an attribute bucket — the report gives
the share of the slow cohort's critical-path time it takes against the baseline's share, the
lift (their ratio), the excess milliseconds per slow request, and a one-sided Mann-Whitney U
test of its critical time, slow against baseline (samples capped, drawn with a fixed seed).
The seed's rule (an operation called more than N times with a mean above M ms) is applied as
configurable thresholds. Attributes over-represented among slow requests are found per bucket
with Fisher's exact test; a single best split says above which value a stage's time rises.
Everything is vectorised over traces; the tests run once over all columns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from open_autoglm.analysis._critical_path import CriticalPaths, SpanSource, span_connection
from open_autoglm.loadgen import is_measured, is_ok
from open_autoglm.telemetry import names

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Metric = Literal["e2e", "ttft"]

IN_FLIGHT: Final = "in_flight"
#: Requests each side of the split (slow cohort and baseline) needs at least.
MIN_COHORT: Final = 3


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """A numeric span attribute read per trace: ``key`` on spans called ``span``."""

    span: str
    key: str
    label: str


DEFAULT_ATTRIBUTES: Final = (
    AttributeSpec(names.SPAN_QUEUE, names.ATTR_QUEUE_DEPTH, "queue depth"),
    AttributeSpec(names.SPAN_PREFILL, names.ATTR_BATCH_SIZE, "batch size"),
    AttributeSpec(names.SPAN_PREFILL, names.ATTR_PROMPT_TOKENS, "prompt tokens"),
    AttributeSpec(names.SPAN_DECODE, names.ATTR_MEAN_BATCH_SIZE, "decode batch size"),
)
_LABELS: Final = {spec.key: spec.label for spec in DEFAULT_ATTRIBUTES} | {
    IN_FLIGHT: "in-flight requests"
}


@dataclass(frozen=True, slots=True)
class HotspotConfig:
    """``quantile`` picks the slow cohort; ``min_calls``/``min_mean_ms`` are the seed's rule
    (more than 100 calls with a mean above 50 ms); a cohort finding needs ``p < alpha`` and
    either a lift of at least ``min_lift`` or at least ``min_explained`` of the slow requests'
    extra latency (a stage that already dominates can explain the tail without a big lift)."""

    metric: Metric = "e2e"
    quantile: float = 0.99
    min_calls: int = 100
    min_mean_ms: float = 50.0
    alpha: float = 0.01
    min_lift: float = 1.2
    min_explained: float = 0.25
    examples: int = 5
    buckets: int = 5
    max_test_samples: int = 20_000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.5 <= self.quantile < 1:
            raise ValueError(f"quantile must be in [0.5, 1), got {self.quantile}")


@dataclass(frozen=True, slots=True)
class Hotspot:
    """One operation (a stage, or a stage within an attribute bucket) and its evidence."""

    operation: str
    stage: str
    attribute: str | None
    bucket: str | None
    slow_share: float  # of the slow cohort's critical-path time
    baseline_share: float
    lift: float | None  # slow_share / baseline_share
    slow_mean_ms: float  # critical-path ms per slow request
    baseline_mean_ms: float
    excess_ms: float  # slow_mean_ms - baseline_mean_ms
    explained: float  # excess_ms over the slow cohort's excess latency (its mean over the rest)
    p_value: float | None  # one-sided Mann-Whitney U, slow > baseline
    effect: float | None  # P(slow > baseline): the U statistic over n1·n2
    calls: int  # spans of the stage in the run (seed rule)
    mean_ms: float | None  # their mean duration (seed rule)
    seed_rule: bool
    significant: bool
    example_trace_ids: tuple[str, ...]
    sentence: str = ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["example_trace_ids"] = list(self.example_trace_ids)
        return out


@dataclass(frozen=True, slots=True)
class AttributeFinding:
    """A bucket of an attribute over-represented among slow requests."""

    attribute: str
    label: str
    bucket: str
    low: float
    high: float
    slow_fraction: float
    baseline_fraction: float
    lift: float | None
    p_value: float
    example_trace_ids: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["example_trace_ids"] = list(self.example_trace_ids)
        return out


@dataclass(frozen=True, slots=True)
class Trend:
    """A stage's critical time against an attribute: the best single split and its rank
    correlation."""

    stage: str
    attribute: str
    label: str
    threshold: float  # the stage is slower for attribute values above this
    mean_below_ms: float
    mean_above_ms: float
    spearman: float
    p_value: float
    rises: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class HotspotReport:
    """The hotspots of one metric; fields in the order of the report's JSON
    (``diagnosis.hotspots.e2e|ttft``)."""

    metric: Metric
    quantile: float
    threshold_ms: float | None
    slow_requests: int
    baseline_requests: int
    summary: tuple[str, ...]  # plain-words sentences, most important first
    note: str | None = None
    hotspots: tuple[Hotspot, ...]  # flagged first, by excess ms
    attributes: tuple[AttributeFinding, ...]
    trends: tuple[Trend, ...]
    config: HotspotConfig = field(default_factory=HotspotConfig)

    @property
    def top(self) -> Hotspot | None:
        flagged = [h for h in self.hotspots if h.significant or h.seed_rule]
        return flagged[0] if flagged else None

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "quantile": self.quantile,
            "threshold_ms": self.threshold_ms,
            "slow_requests": self.slow_requests,
            "baseline_requests": self.baseline_requests,
            "summary": list(self.summary),
            "note": self.note,
            "hotspots": [h.to_json() for h in self.hotspots],
            "attributes": [a.to_json() for a in self.attributes],
            "trends": [t.to_json() for t in self.trends],
            "config": asdict(self.config),
        }


# ---------------------------------------------------------------- inputs aligned to traces


def latency_from_records(
    paths: CriticalPaths, records: Iterable[Mapping[str, Any] | Any], metric: Metric = "e2e"
) -> FloatArray:
    """Client latency (ms) per row of ``paths`` from load-generator records (dicts from
    ``requests.jsonl`` or ``RequestRecord``); NaN for traces without a measured, successful
    record."""
    key = "e2e_s" if metric == "e2e" else "ttft_s"
    ids: list[str] = []
    values: list[float] = []
    for record in records:
        trace_id, value = _field(record, "trace_id"), _field(record, key)
        status = _field(record, "status")
        measured = is_measured(_field(record, "phase"), status) and is_ok(status)
        if trace_id and value is not None and measured:
            ids.append(trace_id)
            values.append(float(value) * 1e3)
    out = np.full(paths.trace_ids.size, np.nan)
    if ids:
        rows = paths.indexes(ids)
        hit = rows >= 0
        out[rows[hit]] = np.asarray(values)[hit]
    return out


def _field(record: Mapping[str, Any] | Any, key: str) -> Any:
    if isinstance(record, Mapping):
        return record.get(key)
    return getattr(record, key, None)


def span_attributes(
    source: SpanSource,
    paths: CriticalPaths,
    specs: Sequence[AttributeSpec] = DEFAULT_ATTRIBUTES,
    *,
    table: str = "spans",
) -> dict[str, FloatArray]:
    """Numeric attributes per row of ``paths`` (NaN where absent), read in one scan, plus
    ``in_flight``: SERVER spans in flight when each trace's SERVER span started."""
    with span_connection(source) as con:
        cases = ", ".join(
            f"max(CASE WHEN name = ? THEN TRY_CAST(attributes->>'$.\"{_quote(s.key)}\"' "
            f"AS DOUBLE) END) AS a{i}"
            for i, s in enumerate(specs)
        )
        params: list[Any] = [s.span for s in specs]
        sql = (
            f"SELECT trace_id, {cases + ', ' if cases else ''}"
            "min(CASE WHEN kind = 'SERVER' THEN start_unix_ns END) AS s_start, "
            "max(CASE WHEN kind = 'SERVER' THEN end_unix_ns END) AS s_end "
            f"FROM {table} WHERE name IN ({', '.join('?' for _ in specs) or 'NULL'}) "
            "OR kind = 'SERVER' GROUP BY trace_id"
        )
        data = con.execute(sql, params + [s.span for s in specs]).fetchnumpy()
    n = paths.trace_ids.size
    rows = paths.indexes(np.asarray(data["trace_id"].astype(str), dtype=np.str_))
    hit = rows >= 0
    out: dict[str, FloatArray] = {}
    for i, spec in enumerate(specs):
        column = np.full(n, np.nan)
        column[rows[hit]] = _floats(data[f"a{i}"])[hit]
        if np.isfinite(column).any():
            out[spec.key] = column
    start, end = _floats(data["s_start"]), _floats(data["s_end"])
    ok = np.isfinite(start) & np.isfinite(end)
    if ok.any():
        starts, ends = np.sort(start[ok]), np.sort(end[ok])
        in_flight = np.searchsorted(starts, start, side="left") - np.searchsorted(
            ends, start, side="right"
        )
        column = np.full(n, np.nan)
        column[rows[hit & ok]] = in_flight[hit & ok]
        out[IN_FLIGHT] = column
    return out


def _floats(values: Any) -> FloatArray:
    if isinstance(values, np.ma.MaskedArray):
        return np.asarray(np.ma.filled(values.astype(np.float64), np.nan), dtype=np.float64)
    return np.asarray(values, dtype=np.float64)


def _quote(key: str) -> str:
    return key.replace("'", "''").replace('"', '\\"')


# ---------------------------------------------------------------- analysis


def find_hotspots(
    paths: CriticalPaths,
    latency_ms: FloatArray | None = None,
    attributes: Mapping[str, FloatArray] | None = None,
    config: HotspotConfig | None = None,
) -> HotspotReport:
    """Rank the operations that the slow requests spent their critical path on."""
    config = config or HotspotConfig()
    attributes = attributes or {}
    lat = paths.root_ns / 1e6 if latency_ms is None else np.asarray(latency_ms, dtype=np.float64)
    valid = paths.complete & np.isfinite(lat)
    if int(valid.sum()) < 20:
        return _empty(config, f"{int(valid.sum())} complete traces with a latency: too few")
    threshold = float(np.quantile(lat[valid], config.quantile))
    slow = valid & (lat > threshold)
    base = valid & ~slow
    if int(slow.sum()) < MIN_COHORT or int(base.sum()) < MIN_COHORT:
        return _empty(config, _unsplit_reason(lat[valid], config.quantile, threshold), threshold)

    crit_ms = paths.critical_ns / 1e6
    root_ms = paths.root_ns / 1e6
    slow_total, base_total = root_ms[slow].sum(), root_ms[base].sum()
    # the stages worth splitting: at least 2% of the slow cohort's path
    stage_share = crit_ms[slow].sum(axis=0) / max(slow_total, 1e-12)
    columns: list[tuple[str, int, str | None, str | None, BoolArray | None]] = []
    for j, op in enumerate(paths.operations):
        columns.append((op, j, None, None, None))
    bucketed = {key: _buckets(values, valid, config.buckets) for key, values in attributes.items()}
    for j, op in enumerate(paths.operations):
        if stage_share[j] < 0.02:
            continue
        for key, buckets in bucketed.items():
            for bucket, _, _, in_bucket in buckets:
                columns.append((op, j, key, bucket, in_bucket))
    matrix = np.empty((paths.trace_ids.size, len(columns)))
    for c, (_, j, _, _, where) in enumerate(columns):
        matrix[:, c] = crit_ms[:, j] if where is None else np.where(where, crit_ms[:, j], 0.0)

    slow_share = matrix[slow].sum(axis=0) / max(slow_total, 1e-12)
    base_share = matrix[base].sum(axis=0) / max(base_total, 1e-12)
    slow_mean, base_mean = matrix[slow].mean(axis=0), matrix[base].mean(axis=0)
    p_values, effects = _mann_whitney(matrix, slow, base, config)

    calls = paths.calls.sum(axis=0)
    mean_dur = np.divide(
        paths.duration_ns.sum(axis=0) / 1e6,
        calls,
        out=np.full(calls.shape, np.nan),
        where=calls > 0,
    )
    slow_rows = np.flatnonzero(slow)
    hotspots = []
    gap = float(root_ms[slow].mean() - root_ms[base].mean())
    for c, (op, j, attr, bucket_label, _) in enumerate(columns):
        lift = float(slow_share[c] / base_share[c]) if base_share[c] > 0 else None
        seed_rule = attr is None and bool(
            calls[j] > config.min_calls and mean_dur[j] > config.min_mean_ms
        )
        p = None if math.isnan(p_values[c]) else float(p_values[c])
        excess = float(slow_mean[c] - base_mean[c])
        explained = excess / gap if gap > 0 else 0.0
        significant = (
            p is not None
            and p < config.alpha
            and excess > 0
            and (lift is None or lift >= config.min_lift or explained >= config.min_explained)
        )
        top = slow_rows[np.argsort(-matrix[slow_rows, c], kind="stable")[: config.examples]]
        examples = tuple(str(t) for t in paths.trace_ids[top] if matrix[slow_rows, c].any())
        hotspots.append(
            Hotspot(
                operation=op if attr is None else f"{op} | {_label(attr)} {bucket_label}",
                stage=op,
                attribute=attr,
                bucket=bucket_label,
                slow_share=float(slow_share[c]),
                baseline_share=float(base_share[c]),
                lift=lift,
                slow_mean_ms=float(slow_mean[c]),
                baseline_mean_ms=float(base_mean[c]),
                excess_ms=excess,
                explained=explained,
                p_value=p,
                effect=None if math.isnan(effects[c]) else float(effects[c]),
                calls=int(calls[j]),
                mean_ms=None if math.isnan(mean_dur[j]) else float(mean_dur[j]),
                seed_rule=seed_rule,
                significant=significant,
                example_trace_ids=examples,
            )
        )
    hotspots.sort(key=lambda h: (not (h.significant or h.seed_rule), -h.excess_ms))
    findings = _over_represented(paths, attributes, bucketed, slow, base, config)
    stage_hotspots = [h for h in hotspots if h.attribute is None and (h.significant or h.seed_rule)]
    trends = tuple(
        t
        for h in stage_hotspots[:3]
        for key, values in attributes.items()
        if (t := _trend(h.stage, paths, crit_ms, key, values, valid, config)) is not None
    )
    metric_name = f"P{config.quantile * 100:g} {config.metric.upper()}"
    summary = _sentences(metric_name, threshold, hotspots, findings, trends)
    hotspots = [
        _with_sentence(h, _sentence(metric_name, threshold, h, trends))
        if h.significant or h.seed_rule
        else h
        for h in hotspots
    ]
    return HotspotReport(
        metric=config.metric,
        quantile=config.quantile,
        threshold_ms=threshold,
        slow_requests=int(slow.sum()),
        baseline_requests=int(base.sum()),
        hotspots=tuple(hotspots),
        attributes=findings,
        trends=trends,
        summary=tuple(summary),
        config=config,
    )


def _unsplit_reason(latency_ms: FloatArray, quantile: float, threshold: float) -> str:
    """Why no slow cohort of at least :data:`MIN_COHORT` requests exists: too few requests
    for the quantile, or too many of them tied at the threshold."""
    n = int(latency_ms.size)
    above = int((latency_ms > threshold).sum())
    needed = n
    while needed - 1 - math.floor(round(quantile * (needed - 1), 9)) < MIN_COHORT:
        needed += 1  # distinct latencies: those past the interpolated quantile's lower rank
    if n < needed:
        return (
            f"{n} requests leave {above} above P{quantile * 100:g} "
            f"({MIN_COHORT} needed); run at least {needed} requests"
        )
    tied = int((latency_ms == threshold).sum())
    return (
        f"{tied} of {n} latencies equal the P{quantile * 100:g} ({threshold:.1f} ms), "
        f"leaving {above} above it: too uniform to split a slow cohort"
    )


def _empty(config: HotspotConfig, note: str, threshold: float | None = None) -> HotspotReport:
    return HotspotReport(
        metric=config.metric,
        quantile=config.quantile,
        threshold_ms=threshold,
        slow_requests=0,
        baseline_requests=0,
        hotspots=(),
        attributes=(),
        trends=(),
        summary=(f"No hotspot analysis: {note}.",),
        note=note,
        config=config,
    )


def _with_sentence(h: Hotspot, sentence: str) -> Hotspot:
    values = {k: getattr(h, k) for k in h.__dataclass_fields__}
    values["sentence"] = sentence
    return Hotspot(**values)


def _mann_whitney(
    matrix: FloatArray, slow: BoolArray, base: BoolArray, config: HotspotConfig
) -> tuple[FloatArray, FloatArray]:
    rng = np.random.default_rng(config.seed)
    cap = config.max_test_samples
    rows_slow, rows_base = np.flatnonzero(slow), np.flatnonzero(base)
    if rows_slow.size > cap:
        rows_slow = np.sort(rng.choice(rows_slow, cap, replace=False))
    if rows_base.size > cap:
        rows_base = np.sort(rng.choice(rows_base, cap, replace=False))
    x, y = matrix[rows_slow], matrix[rows_base]
    p = np.full(matrix.shape[1], np.nan)
    effect = np.full(matrix.shape[1], np.nan)
    # a column equal everywhere has no ranks to test
    varies = np.ptp(np.vstack([x, y]), axis=0) > 0
    if varies.any():
        result = stats.mannwhitneyu(
            x[:, varies], y[:, varies], alternative="greater", method="asymptotic", axis=0
        )
        p[varies] = result.pvalue
        effect[varies] = result.statistic / (x.shape[0] * y.shape[0])
    return p, effect


def _buckets(
    values: FloatArray, valid: BoolArray, count: int
) -> list[tuple[str, float, float, BoolArray]]:
    known = valid & np.isfinite(values)
    if not known.any():
        return []
    edges = np.unique(np.quantile(values[known], np.linspace(0, 1, count + 1)))
    if edges.size < 2:
        return []
    out = []
    for i in range(edges.size - 1):
        low, high = float(edges[i]), float(edges[i + 1])
        last = i == edges.size - 2
        mask = known & (values >= low) & ((values <= high) if last else (values < high))
        if mask.any():
            lo, hi = _short(low), _short(high)
            label = f"{lo}–{hi}" if last else f"{lo}–<{hi}"
            out.append((label, low, high, mask))
    return out


def _short(value: float) -> str:
    """A bucket edge for a label: whole numbers as they are, others to 3 significant digits."""
    if value == round(value) or abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3g}"


def _over_represented(
    paths: CriticalPaths,
    attributes: Mapping[str, FloatArray],
    bucketed: Mapping[str, list[tuple[str, float, float, BoolArray]]],
    slow: BoolArray,
    base: BoolArray,
    config: HotspotConfig,
) -> tuple[AttributeFinding, ...]:
    out = []
    for key, buckets in bucketed.items():
        known = np.isfinite(attributes[key])
        n_slow, n_base = int((slow & known).sum()), int((base & known).sum())
        if not n_slow or not n_base:
            continue
        for label, low, high, mask in buckets:
            a, b = int((mask & slow).sum()), int((mask & base).sum())
            slow_frac, base_frac = a / n_slow, b / n_base
            if slow_frac <= base_frac:
                continue
            p = float(stats.fisher_exact([[a, n_slow - a], [b, n_base - b]], "greater")[1])
            if p >= config.alpha:
                continue
            rows = np.flatnonzero(mask & slow)[: config.examples]
            out.append(
                AttributeFinding(
                    attribute=key,
                    label=_label(key),
                    bucket=label,
                    low=low,
                    high=high,
                    slow_fraction=slow_frac,
                    baseline_fraction=base_frac,
                    lift=slow_frac / base_frac if base_frac > 0 else None,
                    p_value=p,
                    example_trace_ids=tuple(str(t) for t in paths.trace_ids[rows]),
                )
            )
    out.sort(key=lambda f: (f.p_value, -(f.lift or math.inf)))
    return tuple(out)


def _trend(
    stage: str,
    paths: CriticalPaths,
    crit_ms: FloatArray,
    key: str,
    values: FloatArray,
    valid: BoolArray,
    config: HotspotConfig,
) -> Trend | None:
    ok = valid & np.isfinite(values)
    if int(ok.sum()) < 20:
        return None
    x, y = values[ok], crit_ms[ok, paths.operation(stage)]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    # the single split on x that best separates y (least squared error), between distinct x
    cut = np.flatnonzero(x[1:] != x[:-1]) + 1
    if not cut.size:
        return None
    csum = np.cumsum(y)
    n, total = y.size, csum[-1]
    left_n, left_sum = cut.astype(np.float64), csum[cut - 1]
    right_n, right_sum = n - left_n, total - left_sum
    gain = left_sum**2 / left_n + right_sum**2 / right_n
    best = int(np.argmax(gain))
    k = int(cut[best])
    below, above = float(left_sum[best] / left_n[best]), float(right_sum[best] / right_n[best])
    sample = np.random.default_rng(config.seed).permutation(x.size)[: config.max_test_samples]
    rho, p = stats.spearmanr(x[sample], y[sample])
    rho = 0.0 if math.isnan(rho) else float(rho)
    p = 1.0 if math.isnan(p) else float(p)
    rises = rho > 0.1 and p < config.alpha and above >= 1.5 * below and above > below
    return Trend(
        stage=stage,
        attribute=key,
        label=_label(key),
        threshold=float(x[k - 1]),
        mean_below_ms=below,
        mean_above_ms=above,
        spearman=rho,
        p_value=p,
        rises=rises,
    )


def _label(key: str) -> str:
    return _LABELS.get(key, key)


def _sentence(metric: str, threshold: float, h: Hotspot, trends: Sequence[Trend]) -> str:
    if h.attribute is not None:
        return (
            f"{metric} (above {threshold:.1f} ms): {h.stage} time with {_label(h.attribute)} "
            f"{h.bucket} is {h.slow_share:.0%} of the slow requests' time against "
            f"{h.baseline_share:.0%} of the others' (+{h.excess_ms:.1f} ms per slow request)."
        )
    sentence = (
        f"{metric} (above {threshold:.1f} ms) is {h.slow_share:.0%} {h.stage} time, "
        f"against {h.baseline_share:.0%} for the other requests "
        f"(+{h.excess_ms:.1f} ms per slow request, {h.explained:.0%} of their extra latency)"
    )
    rising = sorted(
        (t for t in trends if t.stage == h.stage and t.rises), key=lambda t: -t.spearman
    )
    if rising:
        t = rising[0]
        sentence += (
            f"; {h.stage} time rises with {t.label} above {_short(t.threshold)} "
            f"({t.mean_below_ms:.1f} → {t.mean_above_ms:.1f} ms)"
        )
    if h.seed_rule and not h.significant:
        sentence += f"; flagged by the call-count rule ({h.calls} calls, mean {h.mean_ms:.1f} ms)"
    return sentence + "."


def _sentences(
    metric: str,
    threshold: float,
    hotspots: Sequence[Hotspot],
    findings: Sequence[AttributeFinding],
    trends: Sequence[Trend],
) -> list[str]:
    flagged = [h for h in hotspots if h.attribute is None and (h.significant or h.seed_rule)]
    out = [_sentence(metric, threshold, h, trends) for h in flagged[:3]]
    for f in findings[:2]:
        out.append(
            f"{f.label} {f.bucket} is {f.slow_fraction:.0%} of slow requests "
            f"against {f.baseline_fraction:.0%} of the others."
        )
    if not out:
        out.append(f"No operation stands out in the {metric} slow cohort.")
    return out
