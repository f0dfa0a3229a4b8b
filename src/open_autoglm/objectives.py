"""Service-level objectives: one grammar for goodput (per request) and the gate (per run).

``--slo`` is a comma-separated list of terms ``NAME OP NUMBER [UNIT]``:

* a **per-request** objective names a latency, ``ttft``, ``tpot``, ``itl`` or ``e2e``, with an
  upper limit and a time unit (``us``, ``ms``, ``s``): ``ttft<=500ms``, ``e2e<2s``. A request
  meets it or not; goodput counts the requests that meet every one (``itl`` applies to a
  request's largest gap).
* a **run-level** objective (the gate) puts a statistic before the latency, ``mean``,
  ``median``, ``min``, ``max`` or a percentile ``pNN`` (``p50``, ``p99.9``): ``p95_e2e<=200ms``;
  or names a run metric with no statistic: ``error_rate`` (``%`` or a fraction), ``rps``
  (requests/s) and ``tok_s`` (output tokens/s): ``rps>=20``, ``error_rate<=0.5%``.

``OP`` is ``<=``, ``<``, ``>=`` or ``>`` (``=<`` and ``=>`` read as ``<=`` and ``>=``). Limits
are held in seconds for latencies, a fraction for the error rate, per second for throughput.
Percentiles interpolate linearly (numpy), as everywhere in the project. Every mistake raises
:class:`ObjectiveError` naming the term and what to write instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, Protocol

from open_autoglm.errors import OpenAutoGLMError

__all__ = [
    "LATENCY_METRICS",
    "RUN_METRICS",
    "Goodput",
    "Objective",
    "ObjectiveError",
    "RequestLatencies",
    "format_value",
    "parse_error_rate",
    "parse_gate",
    "parse_goodput",
    "parse_objectives",
    "split_objectives",
]

Op = Literal["<=", "<", ">=", ">"]
#: Latencies, per request (goodput) or under a statistic (the gate).
LATENCY_METRICS: Final = ("ttft", "tpot", "itl", "e2e")
#: Metrics of a whole run, with no statistic.
RUN_METRICS: Final = ("error_rate", "rps", "tok_s")
_UNITS_S: Final = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
_TERM: Final = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9_.]+)\s*(?P<op><=|>=|<|>|=<|=>)\s*"
    r"(?P<number>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<unit>us|µs|ms|s|%|/s)?\s*$"
)
_OPS: Final[dict[str, Op]] = {"<=": "<=", "=<": "<=", "<": "<", ">=": ">=", "=>": ">=", ">": ">"}
_STAT: Final = re.compile(r"^(mean|median|min|max|p(?:[0-9]{1,2}(?:\.[0-9]+)?|100))$")


class ObjectiveError(OpenAutoGLMError):
    """An objective that cannot be parsed: one line saying what to write instead."""


class RequestLatencies(Protocol):
    """What a per-request objective reads of a request (the load generator's record)."""

    @property
    def ok(self) -> bool: ...

    ttft_s: float | None
    tpot_s: float | None
    e2e_s: float | None

    def itl_s(self) -> list[float]: ...


@dataclass(frozen=True, slots=True)
class Objective:
    """One check: ``stat`` of ``metric`` compared with ``limit`` (seconds for latencies, a
    fraction for the error rate, per second for throughput); ``stat`` is None for a
    per-request latency and for the run metrics."""

    text: str
    metric: str
    stat: str | None
    op: Op
    limit: float

    @property
    def name(self) -> str:
        return self.metric if self.stat is None else f"{self.stat}_{self.metric}"

    @property
    def per_request(self) -> bool:
        """True for a goodput term (a latency with no statistic), False for a gate term."""
        return self.stat is None and self.metric in LATENCY_METRICS

    @property
    def quantile(self) -> float | None:
        """The percentile as a number 0..100 (``median`` is 50), else None."""
        if self.stat == "median":
            return 50.0
        if self.stat is not None and self.stat.startswith("p"):
            return float(self.stat[1:])
        return None

    def met(self, value: float) -> bool:
        if self.op == "<=":
            return value <= self.limit
        if self.op == "<":
            return value < self.limit
        if self.op == ">=":
            return value >= self.limit
        return value > self.limit

    @property
    def lower_is_better(self) -> bool:
        return self.op in ("<=", "<")

    def describe_limit(self) -> str:
        return f"{self.op} {format_value(self.metric, self.limit)}"


@dataclass(frozen=True, slots=True)
class Goodput:
    """Per-request objectives: a request is good when it succeeded and meets every one."""

    objectives: tuple[Objective, ...]

    @property
    def limits_s(self) -> Mapping[str, float]:
        """Metric to upper limit in seconds."""
        return MappingProxyType({o.metric: o.limit for o in self.objectives})

    def met(self, record: RequestLatencies) -> bool:
        """Whether ``record`` succeeded within every limit; a missing TTFT or E2E fails, a
        missing TPOT (one output token) or ITL (one chunk) counts as 0."""
        if not record.ok:
            return False
        for objective in self.objectives:
            value: float | None
            if objective.metric == "ttft":
                value = record.ttft_s
            elif objective.metric == "e2e":
                value = record.e2e_s
            elif objective.metric == "tpot":
                value = record.tpot_s if record.tpot_s is not None else 0.0
            else:
                gaps = record.itl_s()
                value = max(gaps) if gaps else 0.0
            if value is None or not objective.met(value):
                return False
        return True

    def describe(self) -> str:
        """``ttft<=500ms,e2e<=2000ms``: the limits in milliseconds (the results' ``slo``)."""
        return ",".join(f"{o.metric}{o.op}{o.limit * 1e3:g}ms" for o in self.objectives)


def format_value(metric: str, value: float | None) -> str:
    """A measured or limit value in its metric's unit: ``250 ms``, ``1.5 s``, ``0.5%``,
    ``20/s``; ``n/a`` for None."""
    if value is None:
        return "n/a"
    if metric in LATENCY_METRICS:
        if value >= 1.0:
            return f"{value:.3g} s"
        return f"{value * 1e3:.4g} ms"
    if metric == "error_rate":
        return f"{value * 100:.3g}%"
    return f"{value:.4g}/s"


def parse_objectives(text: str, *, option: str = "--slo") -> tuple[Objective, ...]:
    """Every term of a comma-separated list, per-request and run-level alike.

    Raises :class:`ObjectiveError` on an empty list, a bad term or a name set twice."""
    terms = [t.strip() for t in text.split(",") if t.strip()]
    if not terms:
        raise ObjectiveError(f"{option} is empty; write e.g. {option} 'p95_e2e<=200ms,ttft<=1s'")
    out = tuple(_term(term, option) for term in terms)
    names = [o.name for o in out]
    for name in names:
        if names.count(name) > 1:
            raise ObjectiveError(f"{option} sets {name} twice")
    return out


def split_objectives(text: str | None) -> tuple[Goodput | None, tuple[Objective, ...]]:
    """``--slo`` of ``benchmark``: the goodput objectives (None if there are none) and the
    run-level ones, in the order written. Nothing (None or blank) gives ``(None, ())``."""
    if text is None or not text.strip(" ,"):
        return None, ()
    objectives = parse_objectives(text)
    per_request = tuple(o for o in objectives if o.per_request)
    run_level = tuple(o for o in objectives if not o.per_request)
    return (Goodput(per_request) if per_request else None), run_level


def parse_goodput(text: str) -> Goodput:
    """Per-request objectives only (``ttft<=500ms,e2e<=2s``); a run-level term is an error."""
    objectives = parse_objectives(text)
    for o in objectives:
        if not o.per_request:
            raise ObjectiveError(
                f"--slo term {o.text!r} is a run-level objective; goodput takes per-request "
                f"latencies, e.g. ttft<=500ms"
            )
    return Goodput(objectives)


def parse_gate(text: str) -> tuple[Objective, ...]:
    """Run-level objectives only (``p95_e2e<=200ms,rps>=20``); a per-request term is an
    error, since a gate checks a statistic."""
    objectives = parse_objectives(text)
    for o in objectives:
        if o.per_request:
            raise ObjectiveError(
                f"--slo term {o.text!r} needs a statistic, e.g. p95_{o.metric} or mean_{o.metric}"
            )
    return objectives


def parse_error_rate(text: str, *, option: str = "--max-error-rate") -> Objective:
    """``0.5%`` or ``0.005``: the highest error rate allowed."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(%?)\s*", text)
    if match is None:
        raise ObjectiveError(f"bad {option} {text!r}: write e.g. 0.5% or 0.005")
    value = float(match.group(1)) / (100.0 if match.group(2) else 1.0)
    if value > 1:
        raise ObjectiveError(f"{option} {text!r} is above 100%")
    return Objective(f"error_rate<={text.strip()}", "error_rate", None, "<=", value)


def _term(term: str, option: str) -> Objective:
    match = _TERM.match(term)
    if match is None:
        raise ObjectiveError(
            f"bad {option} term {term!r}: write e.g. ttft<=500ms (per request) or "
            "p95_e2e<=200ms (per run)"
        )
    name, op, unit = match["name"].lower(), _OPS[match["op"]], match["unit"]
    number = float(match["number"])
    if name in RUN_METRICS:
        return _run_term(term, name, op, number, unit, option)
    stat, _, metric = name.rpartition("_")
    if metric not in LATENCY_METRICS:
        known = ", ".join((*LATENCY_METRICS, *RUN_METRICS))
        raise ObjectiveError(f"bad {option} metric in {term!r}; use one of {known}")
    if stat and not _STAT.match(stat):
        raise ObjectiveError(
            f"bad {option} statistic {stat!r} in {term!r}; use mean, median, max or pNN"
        )
    if unit not in _UNITS_S:
        raise ObjectiveError(f"{option} term {term!r} needs a time unit (ms, s or us)")
    if not stat and op not in ("<=", "<"):
        raise ObjectiveError(
            f"{option} term {term!r}: a per-request latency takes an upper limit ({metric}<=...)"
        )
    return Objective(term, metric, stat or None, op, number * _UNITS_S[unit])


def _run_term(
    term: str, name: str, op: Op, number: float, unit: str | None, option: str
) -> Objective:
    if name == "error_rate":
        if unit not in (None, "%"):
            raise ObjectiveError(f"{option} term {term!r}: an error rate is a % or a fraction")
        value = number / 100.0 if unit == "%" else number
        if value > 1:
            raise ObjectiveError(f"{option} term {term!r} is above 100%")
        return Objective(term, name, None, op, value)
    if unit not in (None, "/s"):
        raise ObjectiveError(
            f"{option} term {term!r}: {name} is per second (write e.g. {name}>=20)"
        )
    return Objective(term, name, None, op, number)
