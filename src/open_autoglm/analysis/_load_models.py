"""Load models over the levels of a ``step`` or ``sweep`` run.

* The seed's decay model of latency against load, R(q) = R₀ + α(1 − e^(−βq)): R₀ the base
  latency, α the most that load adds, β how fast it sets in (95% of α by q₉₅ = ln 20 / β).
* The Universal Scalability Law of throughput against concurrency,
  X(N) = λN / (1 + σ(N−1) + κN(N−1)): λ the throughput of one request stream, σ contention,
  κ coherency; throughput peaks at the knee N* = √((1−σ)/κ).

Both are least-squares fits (scipy) with bounds that keep the parameters meaningful; goodness
of fit is R² and RMSE; confidence intervals come from a bootstrap — resampling each level's
requests when their latencies are given, else the fit's relative residuals — and carry over to
N* and to the prediction at the next untested level. When the data cannot support a model
(too few levels, no curvature, κ indistinguishable from 0) the fit says so in words and gives
no knee rather than an invented one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize

from open_autoglm.loadgen import is_measured, is_ok

FloatArray = npt.NDArray[np.float64]
ModelName = Literal["decay", "usl"]

_MIN_LEVELS: Final = 4  # three parameters and at least one degree of freedom
_CONFIDENCE: Final = 0.95


@dataclass(frozen=True, slots=True)
class LevelPoint:
    """One level: its load (concurrency, or mean requests in flight for a rate level),
    throughput (requests/s or tokens/s) and mean latency (ms), with the per-request latencies
    (ms) when known, for the bootstrap."""

    load: float
    throughput: float
    latency_ms: float
    label: str = ""
    latencies_ms: tuple[float, ...] = ()

    def summary(self) -> PointSummary:
        return PointSummary(
            load=self.load,
            throughput=self.throughput,
            latency_ms=self.latency_ms,
            label=self.label,
            requests=len(self.latencies_ms) or None,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self.summary())


@dataclass(frozen=True, slots=True)
class PointSummary:
    """A level as the report keeps it: the per-request latencies reduced to their count."""

    load: float
    throughput: float
    latency_ms: float
    label: str
    requests: int | None  # per-request latencies the bootstrap resampled (None: none)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A value with its bootstrap interval (``None`` ends when the draws do not bound it)."""

    value: float
    low: float | None = None
    high: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, fmt: str = ".3g", unit: str = "") -> str:
        if self.low is None and self.high is None:
            return f"{self.value:{fmt}}{unit}"
        low = "?" if self.low is None else f"{self.low:{fmt}}"
        high = "∞" if self.high is None else f"{self.high:{fmt}}"
        return f"{self.value:{fmt}}{unit} ({_CONFIDENCE:.0%} CI {low}–{high})"


@dataclass(frozen=True, slots=True)
class ModelFit:
    model: ModelName
    supported: bool
    reason: str | None  # why not, in words, when not supported
    parameters: dict[str, Estimate]
    r_squared: float | None
    rmse: float | None
    knee: Estimate | None  # USL: N*; decay: q₉₅
    peak: Estimate | None  # USL: X(N*)
    next_load: float | None
    prediction: Estimate | None  # at next_load: latency (decay) or throughput (usl)
    points: tuple[LevelPoint, ...]
    sentence: str
    bootstrap_draws: int = 0

    def predict(self, load: npt.ArrayLike) -> FloatArray:
        """The fitted curve at ``load``; NaN when no fit."""
        x = np.asarray(load, dtype=np.float64)
        if not self.parameters:
            return np.full(x.shape, np.nan)
        p = [self.parameters[k].value for k in _PARAMS[self.model]]
        return np.asarray(_MODELS[self.model](x, *p), dtype=np.float64)

    def curve(self, points: int = 64) -> Curve:
        """The fitted curve from 0 to past the last level, for plotting with the points."""
        if not self.points or not self.parameters:
            return Curve(load=[], value=[])
        top = max(p.load for p in self.points)
        top = max(top, self.next_load or 0.0, self.knee.value if self.knee else 0.0) * 1.1
        x = np.linspace(min(1.0, top / points), top, points)
        return Curve(load=x.tolist(), value=self.predict(x).tolist())

    def summary(self) -> FitSummary:
        return FitSummary(
            model=self.model,
            formula=_FORMULAS[self.model],
            supported=self.supported,
            reason=self.reason,
            parameters=dict(self.parameters),
            r_squared=self.r_squared,
            rmse=self.rmse,
            knee=self.knee,
            peak=self.peak,
            next_load=self.next_load,
            prediction=self.prediction,
            bootstrap_draws=self.bootstrap_draws,
            sentence=self.sentence,
            points=[p.summary() for p in self.points],
            curve=self.curve(),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self.summary())


@dataclass(frozen=True, slots=True)
class Curve:
    """A fitted curve sampled for plotting: ``value`` (throughput, or latency in ms) at
    ``load`` (requests in flight); both empty without a fit."""

    load: list[float]
    value: list[float]


@dataclass(frozen=True, slots=True)
class FitSummary:
    """A fit as the report keeps it (``diagnosis.load_models.decay|usl``): the parameters
    and intervals, the formula in words, the levels and the curve to plot."""

    model: ModelName
    formula: str
    supported: bool
    reason: str | None
    parameters: dict[str, Estimate]
    r_squared: float | None
    rmse: float | None
    knee: Estimate | None
    peak: Estimate | None
    next_load: float | None
    prediction: Estimate | None
    bootstrap_draws: int
    sentence: str
    points: list[PointSummary]
    curve: Curve


@dataclass(frozen=True, slots=True)
class LoadModelsSummary:
    """The load models as the report keeps them (``diagnosis.load_models``)."""

    decay: FitSummary
    usl: FitSummary
    summary: list[str]


@dataclass(frozen=True, slots=True)
class LoadModels:
    decay: ModelFit
    usl: ModelFit
    summary: tuple[str, ...] = field(default=())

    def report(self) -> LoadModelsSummary:
        return LoadModelsSummary(self.decay.summary(), self.usl.summary(), list(self.summary))

    def to_json(self) -> dict[str, Any]:
        return asdict(self.report())


# ---------------------------------------------------------------- the models


def decay(q: FloatArray, r0: float, alpha: float, beta: float) -> FloatArray:
    """R(q) = R₀ + α(1 − e^(−βq))."""
    return np.asarray(r0 + alpha * (1.0 - np.exp(-beta * q)), dtype=np.float64)


def usl(n: FloatArray, lam: float, sigma: float, kappa: float) -> FloatArray:
    """X(N) = λN / (1 + σ(N−1) + κN(N−1))."""
    return np.asarray(lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0)), dtype=np.float64)


def _decay_jac(q: FloatArray, r0: float, alpha: float, beta: float) -> FloatArray:
    e = np.exp(-beta * q)
    return np.column_stack([np.ones_like(q), 1.0 - e, alpha * q * e])


def _usl_jac(n: FloatArray, lam: float, sigma: float, kappa: float) -> FloatArray:
    d = 1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0)
    return np.column_stack([n / d, -lam * n * (n - 1.0) / d**2, -lam * n * n * (n - 1.0) / d**2])


_MODELS: Final[dict[str, Callable[..., FloatArray]]] = {"decay": decay, "usl": usl}
_JACOBIANS: Final[dict[str, Callable[..., FloatArray]]] = {"decay": _decay_jac, "usl": _usl_jac}
_PARAMS: Final = {"decay": ("r0", "alpha", "beta"), "usl": ("lambda", "sigma", "kappa")}
_FORMULAS: Final = {
    "decay": "R(q) = R0 + alpha * (1 - exp(-beta * q))",
    "usl": "X(N) = lambda * N / (1 + sigma * (N - 1) + kappa * N * (N - 1))",
}


# ---------------------------------------------------------------- inputs


def points_from_levels(
    levels: Sequence[Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]] | None = None,
    *,
    throughput: Literal["requests", "output_tokens"] = "requests",
) -> list[LevelPoint]:
    """Points from the load generator's per-level results (``LevelResult`` as JSON): load is
    the concurrency of a closed-loop level, else its mean requests in flight; latency the mean
    E2E. ``records`` (``requests.jsonl`` lines) add each level's request latencies."""
    by_level: dict[int, list[float]] = {}
    for r in records or ():
        measured = is_measured(r.get("phase"), r.get("status")) and is_ok(r.get("status"))
        if measured and r.get("e2e_s") is not None:
            by_level.setdefault(int(r.get("level", 0)), []).append(float(r["e2e_s"]) * 1e3)
    out = []
    for i, level in enumerate(levels):
        e2e = level.get("e2e_ms") or {}
        mean = e2e.get("mean")
        if mean is None or not level.get("succeeded", 1):
            continue
        if level.get("mode", "concurrency") == "concurrency":
            load = float(level.get("target") or level.get("mean_in_flight") or 0)
        else:
            load = float(level.get("mean_in_flight") or 0)
        key = "request_throughput" if throughput == "requests" else "output_token_throughput"
        out.append(
            LevelPoint(
                load=load,
                throughput=float(level.get(key) or 0.0),
                latency_ms=float(mean),
                label=str(level.get("label", "")),
                latencies_ms=tuple(by_level.get(int(level.get("index", i)), ())),
            )
        )
    return [p for p in out if p.load > 0]


# ---------------------------------------------------------------- fitting


def fit_load_models(
    points: Sequence[LevelPoint],
    *,
    next_load: float | None = None,
    bootstrap: int = 200,
    seed: int = 0,
) -> LoadModels:
    """Fit the decay model to latency and the USL to throughput over ``points``."""
    pts = tuple(sorted(points, key=lambda p: p.load))
    nxt = next_load if next_load is not None else _next_load([float(p.load) for p in pts])
    decay_fit = _fit("decay", pts, nxt, bootstrap, seed)
    usl_fit = _fit("usl", pts, nxt, bootstrap, seed)
    return LoadModels(decay=decay_fit, usl=usl_fit, summary=(usl_fit.sentence, decay_fit.sentence))


def _next_load(loads: Sequence[float]) -> float | None:
    if not loads:
        return None
    if len(loads) == 1:
        return loads[0] * 2
    last, prev = loads[-1], loads[-2]
    if prev > 0 and last / prev >= 1.5:
        return last * (last / prev)
    return last + (last - prev) if last > prev else last * 2


def _fit(
    model: ModelName,
    pts: tuple[LevelPoint, ...],
    next_load: float | None,
    bootstrap: int,
    seed: int,
) -> ModelFit:
    x = np.asarray([p.load for p in pts])
    y = np.asarray([p.latency_ms if model == "decay" else p.throughput for p in pts])
    what = "latency" if model == "decay" else "throughput"

    def refuse(reason: str) -> ModelFit:
        name = "decay model" if model == "decay" else "USL"
        return ModelFit(model, False, reason, {}, None, None, None, None, next_load, None, pts,
                        f"The {name} cannot be fitted: {reason}.")  # fmt: skip

    distinct = np.unique(x).size
    if distinct < _MIN_LEVELS:
        return refuse(
            f"{distinct} distinct load level{'s' if distinct != 1 else ''}; "
            f"a 3-parameter model needs at least {_MIN_LEVELS}"
        )
    if not (np.isfinite(y).all() and (y > 0).all()):
        return refuse(f"a level has no {what}")
    params = _least_squares(model, x, y)
    if params is None:
        return refuse("the least-squares fit did not converge")
    fitted = _MODELS[model](x, *params)
    residual = y - fitted
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / ss_tot if ss_tot > 0 else None
    rmse = float(np.sqrt((residual**2).mean()))
    draws = _bootstrap(model, pts, x, params, fitted, bootstrap, seed)
    names = _PARAMS[model]
    estimates = {k: _estimate(params[i], draws[:, i]) for i, k in enumerate(names)}
    if model == "usl":
        return _usl_result(pts, params, draws, estimates, r2, rmse, next_load)
    return _decay_result(pts, params, draws, estimates, r2, rmse, next_load)


def _least_squares(
    model: ModelName, x: FloatArray, y: FloatArray, start: FloatArray | None = None
) -> FloatArray | None:
    if model == "decay":
        span = max(float(y.max() - y.min()), 1e-9)
        p0 = [float(y.min()), span, 1.0 / max(float(np.median(x)), 1e-9)]
        bounds = ([0.0, 0.0, 1e-9], [float(y.max()) * 2, span * 100, 100.0 / float(x.min())])
    else:
        lam0 = float((y / x).max())
        p0 = [lam0, 0.05, 1e-4]
        bounds = ([1e-12, 0.0, 0.0], [lam0 * 10, 1.0, 1.0])
    if start is not None:
        p0 = [float(v) for v in start]
    p0 = [min(max(v, lo), hi) for v, lo, hi in zip(p0, bounds[0], bounds[1], strict=True)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = optimize.curve_fit(
                _MODELS[model], x, y, p0=p0, bounds=bounds, jac=_JACOBIANS[model], max_nfev=2_000
            )
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return None
    return np.asarray(params, dtype=np.float64)


def _bootstrap(
    model: ModelName,
    pts: tuple[LevelPoint, ...],
    x: FloatArray,
    params: FloatArray,
    fitted: FloatArray,
    draws: int,
    seed: int,
) -> FloatArray:
    rng = np.random.default_rng(seed)
    samples = [np.asarray(p.latencies_ms) for p in pts]
    by_request = model == "decay" and all(s.size >= 2 for s in samples)
    y = np.asarray([p.latency_ms if model == "decay" else p.throughput for p in pts])
    ratio = y / fitted
    out = []
    for _ in range(draws):
        if by_request:
            y_star = np.asarray([rng.choice(s, s.size).mean() for s in samples])
        else:
            y_star = fitted * rng.choice(ratio, ratio.size)
        refit = _least_squares(model, x, y_star, params)
        if refit is not None:
            out.append(refit)
    return np.asarray(out, dtype=np.float64).reshape(-1, 3)


def _estimate(value: float, draws: FloatArray) -> Estimate:
    finite = draws[np.isfinite(draws)]
    if finite.size < 10:
        return Estimate(float(value))
    tail = (1 - _CONFIDENCE) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return Estimate(float(value), float(low), float(high))


def _usl_result(
    pts: tuple[LevelPoint, ...],
    params: FloatArray,
    draws: FloatArray,
    estimates: dict[str, Estimate],
    r2: float | None,
    rmse: float,
    next_load: float | None,
) -> ModelFit:
    lam, sigma, kappa = (float(v) for v in params)
    prediction = None
    if next_load is not None:
        pred_draws = usl(np.full(draws.shape[0], next_load), *draws.T) if draws.size else draws
        prediction = _estimate(float(usl(np.asarray(next_load), lam, sigma, kappa)), pred_draws)
    fit_words = f"R² {r2:.3f}" if r2 is not None else "no variance to explain"
    n_draws = int(draws.shape[0])

    def result(
        supported: bool, reason: str | None, knee: Estimate | None, peak: Estimate | None, text: str
    ) -> ModelFit:
        return ModelFit("usl", supported, reason, estimates, r2, rmse, knee, peak, next_load,
                        prediction, pts, text, n_draws)  # fmt: skip

    if kappa <= 1e-9 or sigma >= 1.0:
        reason = (
            "κ is 0: throughput shows no retrograde region in the tested range, so no peak "
            "concurrency can be placed (test higher concurrency)"
            if kappa <= 1e-9
            else "σ is 1: throughput does not grow with concurrency at all"
        )
        return result(False, reason, None, None, f"USL fit ({fit_words}): {reason}.")
    with np.errstate(divide="ignore", invalid="ignore"):
        knees = np.sqrt((1 - draws[:, 1]) / draws[:, 2]) if draws.size else np.empty(0)
    knee_value = math.sqrt((1 - sigma) / kappa)
    finite = np.isfinite(knees)
    knee = _estimate(knee_value, knees[finite])
    unbounded = bool(draws.size) and float((~finite).mean()) > (1 - _CONFIDENCE) / 2
    if unbounded:
        knee = Estimate(knee.value, knee.low, None)
    peak_draws = usl(knees[finite], *draws[finite].T) if draws.size else np.empty(0)
    peak = _estimate(float(usl(np.asarray(knee_value), lam, sigma, kappa)), peak_draws)
    top = max(p.load for p in pts)
    where = "inside" if knee_value <= top else "beyond"
    sentence = (
        f"Throughput peaks at N* = {knee.describe('.3g')} concurrent requests "
        f"({where} the tested range, up to {top:g}), at {peak.value:.3g}/s; "
        f"σ = {sigma:.3g}, κ = {kappa:.3g}, {fit_words}"
    )
    if unbounded:
        sentence += "; κ's interval reaches 0, so the knee's upper bound is open"
    if prediction is not None and next_load is not None:
        sentence += f"; predicted {prediction.describe('.3g')}/s at N = {next_load:g}"
    return result(True, None, knee, peak, sentence + ".")


def _decay_result(
    pts: tuple[LevelPoint, ...],
    params: FloatArray,
    draws: FloatArray,
    estimates: dict[str, Estimate],
    r2: float | None,
    rmse: float,
    next_load: float | None,
) -> ModelFit:
    r0, alpha, beta = (float(v) for v in params)
    top = max(p.load for p in pts)
    prediction = None
    if next_load is not None:
        pred_draws = decay(np.full(draws.shape[0], next_load), *draws.T) if draws.size else draws
        prediction = _estimate(float(decay(np.asarray(next_load), r0, alpha, beta)), pred_draws)
    q95_value = math.log(20) / beta
    knee = _estimate(q95_value, math.log(20) / draws[:, 2] if draws.size else np.empty(0))
    reason = None
    if q95_value > 10 * top:
        reason = (
            "latency still rises almost linearly over the tested loads; the plateau the model "
            "assumes is not in the data, so α and β are not identified"
        )
    elif r2 is not None and r2 < 0.5:
        reason = f"the model explains little of the latency (R² {r2:.2f})"
    fit_words = f"R² {r2:.3f}" if r2 is not None else "no variance to explain"
    if reason is not None:
        sentence = f"Decay model ({fit_words}): {reason}."
    else:
        sentence = (
            f"Latency R(q) = {r0:.3g} + {alpha:.3g}·(1 − e^(−{beta:.3g}q)) ms, {fit_words}; "
            f"95% of the load penalty has set in by q = {knee.describe('.3g')}"
        )
        if prediction is not None and next_load is not None:
            sentence += f"; predicted {prediction.describe('.4g', ' ms')} at q = {next_load:g}"
        sentence += "."
    return ModelFit(
        "decay",
        reason is None,
        reason,
        estimates,
        r2,
        rmse,
        knee,
        None,
        next_load,
        prediction,
        pts,
        sentence,
        int(draws.shape[0]),
    )
