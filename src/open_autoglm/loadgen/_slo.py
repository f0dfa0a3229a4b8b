"""Service-level objectives for goodput: ``ttft<=500ms,tpot<=50ms,e2e<=2s,itl<=100ms``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from open_autoglm.loadgen._errors import ConfigError
from open_autoglm.loadgen._records import RequestRecord

SloMetric = Literal["ttft", "tpot", "e2e", "itl"]
SLO_METRICS: tuple[SloMetric, ...] = ("ttft", "tpot", "e2e", "itl")
_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
_TERM = re.compile(r"^\s*(\w+)\s*<=?\s*([0-9]*\.?[0-9]+)\s*(us|µs|ms|s)?\s*$")


@dataclass(frozen=True, slots=True)
class Slo:
    """Upper limits in seconds; ``itl`` applies to a request's largest gap."""

    limits_s: Mapping[str, float]

    def met(self, record: RequestRecord) -> bool:
        if not record.ok:
            return False
        for metric, limit in self.limits_s.items():
            if metric == "ttft":
                value = record.ttft_s
            elif metric == "e2e":
                value = record.e2e_s
            elif metric == "tpot":
                value = record.tpot_s if record.tpot_s is not None else 0.0
            else:
                gaps = record.itl_s()
                value = max(gaps) if gaps else 0.0
            if value is None or value > limit:
                return False
        return True

    def describe(self) -> str:
        return ",".join(f"{k}<={v * 1e3:g}ms" for k, v in self.limits_s.items())


def parse_slo(text: str) -> Slo:
    limits: dict[str, float] = {}
    for term in filter(None, (t.strip() for t in text.split(","))):
        match = _TERM.match(term)
        if match is None:
            raise ConfigError(f"bad --slo term {term!r}: expected e.g. ttft<=500ms")
        metric, number, unit = match.group(1).lower(), float(match.group(2)), match.group(3)
        if metric not in SLO_METRICS:
            raise ConfigError(f"bad --slo metric {metric!r}; use {', '.join(SLO_METRICS)}")
        if unit is None:
            raise ConfigError(f"--slo term {term!r} needs a unit (ms, s or us)")
        limits[metric] = number * _UNITS[unit]
    if not limits:
        raise ConfigError("--slo is empty")
    return Slo(MappingProxyType(limits))
