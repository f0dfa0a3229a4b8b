"""The release gate: objectives checked on a report, and regressions against a baseline.

Each objective is measured per level (all measured levels, or the one asked for) and the worst
level decides. A value that cannot be measured (no successful request measured it, or the
report does not carry the statistic and has no records to compute it from) is "n/a" with the
reason, never "pass" nor "FAIL": the gate neither passes nor fails what it did not see. A
measured level that breaks the objective still fails it; otherwise one unmeasured level
leaves the check unmeasured.

Against a baseline, a latency statistic has regressed only when it moved beyond
run-to-run noise: both runs' per-request samples are bootstrapped (resampled independently,
the statistic recomputed each time) and the change counts as a regression when its 95%
interval lies above zero and the change itself is above ``min_change`` (5% by default). A
one-sided Mann-Whitney U p-value is reported beside it. The error rate regresses when a
one-sided Fisher exact test says the new rate is higher (p < 0.05).

The gate never passes a run it could not judge: a report (or baseline) with no finished
measured request, or whose records are not its own (their counts differ from its results,
as when two runs shared one ``requests.jsonl``), raises :class:`GateUndecidedError` with the
reason; a gate where a check could not be measured (too few requests to tell a change from
noise, no records) and none failed is undecided, exit code 2, its last line saying why. A
comparison measured on both sides against a baseline of zero is no change ("pass") when the
new value is zero too, and "n/a" with the reason otherwise: a relative change from zero has
no size, and that is a verdict, not missing data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from open_autoglm.analysis._errors import AnalysisError
from open_autoglm.analysis._report_view import (
    LevelView,
    ReportReadError,
    ReportView,
    RequestSamples,
    StatName,
)
from open_autoglm.objectives import LATENCY_METRICS, Objective, format_value, parse_gate

Verdict = Literal["pass", "FAIL", "REGRESSION", "improved", "n/a"]
FloatArray = npt.NDArray[np.float64]
_DEFAULT_REGRESSION_STATS: Final = "p50_e2e<=1s,p95_e2e<=1s,p95_ttft<=1s"
_MIN_SAMPLES: Final = 20
_LEVEL_STATS: Final[dict[str, StatName]] = {
    "mean": "mean", "median": "median", "p50": "median", "p90": "p90", "p95": "p95",
    "p99": "p99", "max": "max", "min": "min"}  # fmt: skip


class GateUndecidedError(AnalysisError):
    """The gate cannot judge: no data, or records that are not the run's own. The message
    says which and why."""


@dataclass(frozen=True, slots=True)
class RegressionConfig:
    min_change: float = 0.05  # relative change that matters, beyond noise
    confidence: float = 0.95
    draws: int = 1000
    max_samples: int = 10_000
    alpha: float = 0.05  # error-rate test
    seed: int = 0


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    level: str
    measured: str
    limit: str
    verdict: Verdict
    value: float | None = None
    limit_value: float | None = None
    baseline_value: float | None = None
    change: float | None = None  # relative
    change_low: float | None = None
    change_high: float | None = None
    p_value: float | None = None
    note: str | None = None

    @property
    def failed(self) -> bool:
        return self.verdict in ("FAIL", "REGRESSION")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class GateResult:
    report: str
    baseline: str | None
    checks: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        """Every check was measured and none failed."""
        return not any(c.failed for c in self.checks) and not self.unjudged

    @property
    def unjudged(self) -> list[CheckResult]:
        """The checks that could not be measured (verdict n/a), when none failed: the gate
        cannot pass what it did not see, so such a gate is undecided."""
        if any(c.failed for c in self.checks):
            return []
        # a comparison measured on both sides whose relative size is undefined (a baseline of
        # zero) is judged "n/a" and said so; only what was not measured leaves the gate open
        return [c for c in self.checks if c.verdict == "n/a" and c.value is None]

    @property
    def exit_code(self) -> int:
        """0 passed, 1 a check failed, 2 undecided (a check could not be measured)."""
        if self.unjudged:
            return 2
        return 0 if self.passed else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "report": self.report,
            "baseline": self.baseline,
            "passed": self.passed,
            "undecided": bool(self.unjudged),
            "checks": [c.to_json() for c in self.checks],
        }

    def table(self, markdown: bool = False) -> str:
        header = ("check", "level", "measured", "limit", "verdict")
        rows = [(c.check, c.level, c.measured, c.limit, c.verdict) for c in self.checks]
        lines = _markdown(header, rows) if markdown else _aligned(header, rows)
        failed = [c for c in self.checks if c.failed]
        unjudged = self.unjudged
        if failed:
            why = "; ".join(f"{c.check} {c.measured} ({c.limit})" for c in failed)
            lines.append(f"gate: FAIL, {len(failed)} of {len(self.checks)} checks: {why}")
        elif unjudged:
            why = "; ".join(dict.fromkeys(f"{c.note or 'not measured'}" for c in unjudged))
            lines.append(
                f"gate: CANNOT JUDGE, {len(unjudged)} of {len(self.checks)} checks could not be "
                f"measured: {why}"
            )
        else:
            lines.append(f"gate: PASS, {len(self.checks)} checks")
        for c in self.checks:
            if c.note:
                lines.append(f"note: {c.check}: {c.note}")
        return "\n".join(lines)


def _aligned(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in (header, *rows)]  # fmt: skip


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows)]


# ---------------------------------------------------------------- measuring


def _levels(view: ReportView, level: int | None) -> list[LevelView]:
    out = []
    for lv in view.levels:
        if level is not None and lv.index != level:
            continue
        measured = 1 if lv.measured is None else lv.measured
        if level is None and not (measured or lv.succeeded):
            continue
        out.append(lv)
    if level is not None and not out:
        raise ReportReadError(f"{view.path} has no level {level}")
    return out


def _measure(
    objective: Objective, lv: LevelView, samples: RequestSamples | None
) -> tuple[float | None, str | None]:
    """The objective's statistic for one level (seconds, fraction or per second)."""
    m = objective.metric
    if m == "rps":
        return lv.request_throughput, None
    if m == "tok_s":
        return lv.output_token_throughput, None
    if m == "error_rate":
        if samples is not None and samples.ok + samples.failed:
            return samples.failed / (samples.ok + samples.failed), None
        return lv.error_rate, None
    if samples is not None:
        values = samples.values(m)
        if not values.size:
            return None, "no successful request measured it"
        return _statistic(objective, values), None
    key = _LEVEL_STATS.get(objective.stat or "")
    value = lv.stats(m).stat(key) if key else None
    if value is None:
        return None, f"{objective.name} needs requests.jsonl beside the report"
    return value / 1e3, None


def _statistic(objective: Objective, values: FloatArray) -> float:
    q = objective.quantile
    if q is not None:
        return float(np.percentile(values, q))
    if objective.stat == "mean":
        return float(values.mean())
    if objective.stat == "min":
        return float(values.min())
    return float(values.max())


# ---------------------------------------------------------------- the gate


def check_report(
    report: ReportView | Path,
    objectives: Sequence[Objective],
    *,
    baseline: ReportView | Path | None = None,
    level: int | None = None,
    regression: RegressionConfig | None = None,
) -> GateResult:
    """Check ``objectives`` on ``report``; with ``baseline``, add regression checks.

    Raises :class:`GateUndecidedError` when it cannot judge (module docstring)."""
    view = report if isinstance(report, ReportView) else ReportView.open(report)
    base = baseline if isinstance(baseline, ReportView | None) else ReportView.open(baseline)
    config = regression or RegressionConfig()
    _require_data(view, level)
    if base is not None:
        _require_data(base, level)
    checks = [_slo_check(view, o, level) for o in objectives]
    if base is not None:
        latency = [o for o in objectives if o.metric in LATENCY_METRICS]
        for o in latency or parse_gate(_DEFAULT_REGRESSION_STATS):
            checks.extend(_regression_checks(view, base, o, level, config))
        checks.extend(_error_rate_regression(view, base, level, config))
    if not checks:
        raise GateUndecidedError(f"cannot judge {view.path}: no check to make")
    return GateResult(str(view.path), None if base is None else str(base.path), tuple(checks))


def _require_data(view: ReportView, level: int | None) -> None:
    """Raise :class:`GateUndecidedError` unless ``view`` has finished measured requests and
    its records (when found) are its own: per level, as many as its results count."""
    counted = [(lv, _finished(lv)) for lv in _levels(view, level)]
    if all(n == 0 for _, n in counted):  # no level, or each says none finished
        raise GateUndecidedError(
            f"cannot judge {view.path}: no measured request finished in it (no data)"
        )
    samples = view.samples()
    if samples is None:
        return
    for lv, expected in counted:
        if expected is None:
            continue
        s = samples.get(lv.index, RequestSamples())
        if s.ok + s.failed != expected:
            raise GateUndecidedError(
                f"cannot judge {view.path}: its records {view.records_path()} hold "
                f"{s.ok + s.failed} measured requests of level {lv.name}, its results "
                f"{expected}: they are not this run's records"
            )


def _finished(lv: LevelView) -> int | None:
    """Succeeded + failed measured requests of a level, ``None`` when it does not say."""
    if lv.succeeded is None or lv.failed is None:
        return None
    return lv.succeeded + lv.failed


def _slo_check(view: ReportView, objective: Objective, level: int | None) -> CheckResult:
    samples = view.samples()
    measured: list[tuple[float, str]] = []
    missing: list[tuple[str, str]] = []  # (level, why)
    for lv in _levels(view, level):
        s = None if samples is None else samples.get(lv.index, RequestSamples())
        value, why = _measure(objective, lv, s)
        if value is None:
            missing.append((lv.name, why or "not measured"))
        else:
            measured.append((float(value), lv.name))
    limit = objective.describe_limit()
    if not measured:
        note = missing[0][1] if missing else "the report has no measured level"
        return CheckResult(objective.name, "-", "n/a", limit, "n/a", note=f"cannot measure: {note}")
    worst = max(measured) if objective.lower_is_better else min(measured)
    value, where = worst
    if len(measured) + len(missing) > 1:
        where += " (worst)"
    verdict: Verdict = "pass" if objective.met(value) else "FAIL"
    if missing and verdict == "pass":  # a level it did not see may break it: not judged
        names = ", ".join(name for name, _ in missing)
        return CheckResult(objective.name, where, format_value(objective.metric, value), limit,
                           "n/a", note=f"cannot measure at level {names}: "
                           f"{missing[0][1]}")  # fmt: skip
    return CheckResult(objective.name, where, format_value(objective.metric, value), limit,
                       verdict, value=value, limit_value=objective.limit)  # fmt: skip


def _pairs(
    view: ReportView, base: ReportView, level: int | None
) -> list[tuple[str, RequestSamples, RequestSamples]] | None:
    """Samples to compare: level by level when both runs have the same levels, else pooled."""
    new, old = view.samples(), base.samples()
    if new is None or old is None:
        return None
    new_levels, old_levels = _levels(view, level), _levels(base, level)
    if len(new_levels) == len(old_levels):
        return [
            (lv.name, new.get(lv.index, RequestSamples()), old.get(b.index, RequestSamples()))
            for lv, b in zip(new_levels, old_levels, strict=True)
        ]
    return [("all", _pool(new.values()), _pool(old.values()))]


def _pool(samples: Iterable[RequestSamples]) -> RequestSamples:
    out = RequestSamples()
    for s in samples:
        for m in ("ttft", "tpot", "itl", "itl_max", "e2e"):
            getattr(out, m).extend(getattr(s, m))
        out.ok += s.ok
        out.failed += s.failed
    return out


def _regression_checks(
    view: ReportView,
    base: ReportView,
    objective: Objective,
    level: int | None,
    config: RegressionConfig,
) -> list[CheckResult]:
    name = f"{objective.stat}_{objective.metric} vs baseline"
    limit = f"+{config.min_change:.0%} beyond noise"
    pairs = _pairs(view, base, level)
    if pairs is None:
        return [CheckResult(name, "-", "n/a", limit, "n/a",
                            note="needs requests.jsonl beside both reports")]  # fmt: skip
    out = []
    for label, new, old in pairs:
        a, b = old.values(objective.metric), new.values(objective.metric)
        if a.size < _MIN_SAMPLES or b.size < _MIN_SAMPLES:
            out.append(CheckResult(name, label, "n/a", limit, "n/a",
                                   note=f"too few requests ({b.size} vs {a.size}) to tell change "
                                   "from noise"))  # fmt: skip
            continue
        out.append(_compare_samples(name, label, objective, a, b, limit, config))
    return out


def _compare_samples(
    name: str,
    label: str,
    objective: Objective,
    old: FloatArray,
    new: FloatArray,
    limit: str,
    config: RegressionConfig,
) -> CheckResult:
    rng = np.random.default_rng(config.seed)
    a = _cap(old, config.max_samples, rng)
    b = _cap(new, config.max_samples, rng)
    stat_a, stat_b = _statistic(objective, old), _statistic(objective, new)
    m = objective.metric
    both = f"{format_value(m, stat_b)} vs {format_value(m, stat_a)}"
    if not stat_a > 0:  # a relative change from zero is undefined
        if stat_b == stat_a:  # measured on both sides and equal: no change, no regression
            return CheckResult(name, label, both, limit, "pass", value=stat_b,
                               baseline_value=stat_a, change=0.0,
                               note=f"{label}: no change ({both})")  # fmt: skip
        return CheckResult(name, label, both, limit, "n/a", value=stat_b, baseline_value=stat_a,
                           note=f"{label}: not judgeable: a change from zero has no relative "
                           f"size ({both}); a relative change needs a baseline above "
                           "zero")  # fmt: skip
    boot_a = _boot(objective, a, config.draws, rng)
    boot_b = _boot(objective, b, config.draws, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = (boot_b - boot_a) / boot_a
    rel = rel[np.isfinite(rel)]
    if rel.size < 2:  # nearly every resample of the baseline has the statistic at zero
        return CheckResult(name, label, both, limit, "n/a", value=stat_b, baseline_value=stat_a,
                           note=f"{label}: not judgeable: the baseline's resampled statistic "
                           "is zero too often to bound the change")  # fmt: skip
    tail = (1 - config.confidence) / 2
    low, high = (float(v) for v in np.quantile(rel, [tail, 1 - tail]))
    change = (stat_b - stat_a) / stat_a
    p_raw = float(stats.mannwhitneyu(b, a, alternative="greater", method="asymptotic").pvalue)
    p = p_raw if np.isfinite(p_raw) else None  # identical samples: no test statistic
    verdict: Verdict = "pass"
    if low > 0 and change > config.min_change:
        verdict = "REGRESSION"
    elif high < 0 and change < -config.min_change:
        verdict = "improved"
    measured = f"{both} ({change:+.1%}, {config.confidence:.0%} CI {low:+.1%}..{high:+.1%})"
    note = None
    if verdict == "pass" and change > config.min_change:
        note = f"{label}: {change:+.1%} is within run-to-run noise (CI {low:+.1%}..{high:+.1%})"
    return CheckResult(
        name,
        label,
        measured,
        limit,
        verdict,
        value=stat_b,
        baseline_value=stat_a,
        change=change,
        change_low=low,
        change_high=high,
        p_value=p,
        note=note,
    )


def _cap(values: FloatArray, cap: int, rng: np.random.Generator) -> FloatArray:
    return values if values.size <= cap else rng.choice(values, cap, replace=False)


def _boot(
    objective: Objective, values: FloatArray, draws: int, rng: np.random.Generator
) -> FloatArray:
    """The statistic over ``draws`` resamples, in chunks to bound memory."""
    out = np.empty(draws)
    chunk = max(1, 4_000_000 // max(values.size, 1))
    for start in range(0, draws, chunk):
        stop = min(draws, start + chunk)
        resampled = values[rng.integers(0, values.size, (stop - start, values.size))]
        q = objective.quantile
        if q is not None:
            out[start:stop] = np.percentile(resampled, q, axis=1)
        elif objective.stat == "mean":
            out[start:stop] = resampled.mean(axis=1)
        elif objective.stat == "min":
            out[start:stop] = resampled.min(axis=1)
        else:
            out[start:stop] = resampled.max(axis=1)
    return out


def _error_rate_regression(
    view: ReportView, base: ReportView, level: int | None, config: RegressionConfig
) -> list[CheckResult]:
    new = _error_counts(view, level)
    old = _error_counts(base, level)
    if new is None or old is None:
        return []
    (nf, nt), (of, ot) = new, old
    rate_new, rate_old = nf / nt, of / ot
    p = float(stats.fisher_exact([[nf, nt - nf], [of, ot - of]], alternative="greater")[1])
    verdict: Verdict = "REGRESSION" if p < config.alpha and rate_new > rate_old else "pass"
    measured = f"{rate_new:.3%} vs {rate_old:.3%} ({nf}/{nt} vs {of}/{ot}, p={p:.2g})"
    return [CheckResult("error_rate vs baseline", "all", measured, f"Fisher p < {config.alpha:g}",
                        verdict, value=rate_new, baseline_value=rate_old, p_value=p)]  # fmt: skip


def _error_counts(view: ReportView, level: int | None) -> tuple[int, int] | None:
    failed = total = 0
    for lv in _levels(view, level):
        ok, bad = lv.succeeded, lv.failed
        if ok is None or bad is None:
            return None
        failed += bad
        total += ok + bad
    return (failed, total) if total else None
