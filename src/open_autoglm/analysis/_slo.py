"""Gate objectives: ``p95_e2e<=200ms,p99_ttft<=1s,rps>=20`` and ``--max-error-rate 0.5%``.

A term is ``STAT_METRIC OP NUMBER UNIT``: STAT one of ``mean``, ``median``, ``min``, ``max``
or a percentile ``pNN`` (``p50``, ``p99.9``); METRIC one of ``ttft``, ``tpot``, ``itl``,
``e2e`` (a unit is required: ``us``, ``ms``, ``s``); or the run-level ``error_rate`` (``%`` or
a fraction), ``rps`` (requests/s) and ``tok_s`` (output tokens/s), with no statistic.
Percentiles interpolate linearly (numpy), as everywhere in the project.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from open_autoglm.analysis._errors import AnalysisError

Op = Literal["<=", "<", ">=", ">"]
LATENCY_METRICS: Final = ("ttft", "tpot", "itl", "e2e")
RUN_METRICS: Final = ("error_rate", "rps", "tok_s")
_UNITS_S: Final = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
_TERM: Final = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9_.]+)\s*(?P<op><=|>=|<|>|=<|=>)\s*"
    r"(?P<number>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<unit>us|µs|ms|s|%|/s)?\s*$"
)
_OPS: Final[dict[str, Op]] = {"<=": "<=", "=<": "<=", "<": "<", ">=": ">=", "=>": ">=", ">": ">"}
_STAT: Final = re.compile(r"^(mean|median|min|max|p(?:[0-9]{1,2}(?:\.[0-9]+)?|100))$")


class SloError(AnalysisError):
    """An objective that cannot be parsed: one line saying what to write instead."""


@dataclass(frozen=True, slots=True)
class Objective:
    """One check: ``stat`` of ``metric`` compared with ``limit`` (seconds for latencies, a
    fraction for the error rate, per second for throughput)."""

    text: str
    metric: str
    stat: str | None
    op: Op
    limit: float

    @property
    def name(self) -> str:
        return self.metric if self.stat is None else f"{self.stat}_{self.metric}"

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


def format_value(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if metric in LATENCY_METRICS:
        if value >= 1.0:
            return f"{value:.3g} s"
        return f"{value * 1e3:.4g} ms"
    if metric == "error_rate":
        return f"{value * 100:.3g}%"
    return f"{value:.4g}/s"


def parse_slo(text: str) -> tuple[Objective, ...]:
    """Objectives from a comma-separated list; raises :class:`SloError` naming the bad term."""
    terms = [t.strip() for t in text.split(",") if t.strip()]
    if not terms:
        raise SloError("--slo is empty; write e.g. --slo 'p95_e2e<=200ms,p99_ttft<=1s'")
    out = [_term(term) for term in terms]
    names = [o.name for o in out]
    for name in names:
        if names.count(name) > 1:
            raise SloError(f"--slo sets {name} twice")
    return tuple(out)


def parse_error_rate(text: str) -> Objective:
    """``0.5%`` or ``0.005``: the highest error rate allowed."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(%?)\s*", text)
    if match is None:
        raise SloError(f"bad --max-error-rate {text!r}: write e.g. 0.5% or 0.005")
    value = float(match.group(1)) / (100.0 if match.group(2) else 1.0)
    if value > 1:
        raise SloError(f"--max-error-rate {text!r} is above 100%")
    return Objective(f"error_rate<={text.strip()}", "error_rate", None, "<=", value)


def _term(term: str) -> Objective:
    match = _TERM.match(term)
    if match is None:
        raise SloError(f"bad --slo term {term!r}: write e.g. p95_e2e<=200ms")
    name, op, unit = match["name"].lower(), _OPS[match["op"]], match["unit"]
    number = float(match["number"])
    if name in RUN_METRICS:
        return _run_term(term, name, op, number, unit)
    stat, _, metric = name.rpartition("_")
    if metric not in LATENCY_METRICS:
        known = ", ".join((*LATENCY_METRICS, *RUN_METRICS))
        raise SloError(f"bad --slo metric in {term!r}; use one of {known}")
    if not stat:
        raise SloError(f"--slo term {term!r} needs a statistic, e.g. p95_{metric} or mean_{metric}")
    if not _STAT.match(stat):
        raise SloError(f"bad --slo statistic {stat!r} in {term!r}; use mean, median, max or pNN")
    if unit not in _UNITS_S:
        raise SloError(f"--slo term {term!r} needs a time unit (ms, s or us)")
    return Objective(term, metric, stat, op, number * _UNITS_S[unit])


def _run_term(term: str, name: str, op: Op, number: float, unit: str | None) -> Objective:
    if name == "error_rate":
        if unit not in (None, "%"):
            raise SloError(f"--slo term {term!r}: an error rate is a % or a fraction")
        value = number / 100.0 if unit == "%" else number
        if value > 1:
            raise SloError(f"--slo term {term!r} is above 100%")
        return Objective(term, name, None, op, value)
    if unit not in (None, "/s"):
        raise SloError(f"--slo term {term!r}: {name} is per second (write e.g. {name}>=20)")
    return Objective(term, name, None, op, number)
