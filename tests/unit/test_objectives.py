"""One objectives grammar: per-request terms for goodput, run-level terms for the gate."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from open_autoglm.errors import OpenAutoGLMError
from open_autoglm.objectives import (
    ObjectiveError,
    parse_error_rate,
    parse_gate,
    parse_goodput,
    parse_objectives,
    split_objectives,
)


@dataclass
class _Request:
    ttft_s: float | None
    e2e_s: float | None
    tpot_s: float | None = None
    gaps: list[float] = field(default_factory=list)
    ok: bool = True

    def itl_s(self) -> list[float]:
        return self.gaps


def test_goodput_terms_and_their_limits() -> None:
    slo = parse_goodput("ttft<=500ms, tpot<=50ms,e2e<=2s,itl<=300us")
    assert dict(slo.limits_s) == pytest.approx(
        {"ttft": 0.5, "tpot": 0.05, "e2e": 2.0, "itl": 0.0003}
    )
    assert slo.describe() == "ttft<=500ms,tpot<=50ms,e2e<=2000ms,itl<=0.3ms"


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("ttft<=5", "needs a time unit"),
        ("speed<=1s", "use one of ttft"),
        ("ttft>=1s", "upper limit"),
        ("", "is empty"),
        ("p95_e2e<=1s", "run-level objective"),
        ("ttft<=1s,ttft<=2s", "twice"),
    ],
)
def test_goodput_mistakes_say_what_to_write(bad: str, says: str) -> None:
    with pytest.raises(ObjectiveError, match=says):
        parse_goodput(bad)


def test_goodput_meets_every_limit() -> None:
    slo = parse_goodput("ttft<=200ms,itl<100ms")
    assert slo.met(_Request(ttft_s=0.2, e2e_s=1.0, gaps=[0.05, 0.099]))
    assert not slo.met(_Request(ttft_s=0.2, e2e_s=1.0, gaps=[0.1]))  # < is strict
    assert not slo.met(_Request(ttft_s=0.1, e2e_s=1.0, ok=False))
    assert not slo.met(_Request(ttft_s=None, e2e_s=1.0))
    assert slo.met(_Request(ttft_s=0.1, e2e_s=1.0))  # one chunk: no gap, ITL counts as 0


def test_gate_terms_units_and_operators() -> None:
    (ttft, rps, err) = parse_gate("p99_TTFT <= 1.5s, rps>=20, error_rate<1%")
    assert (ttft.name, ttft.limit, ttft.quantile) == ("p99_ttft", 1.5, 99.0)
    assert rps.met(25)
    assert not rps.met(19)
    assert err.limit == pytest.approx(0.01)
    assert not err.met(0.01)
    assert parse_error_rate("0.005").limit == pytest.approx(0.005)
    assert parse_error_rate("0.5%").limit == pytest.approx(0.005)
    (median,) = parse_gate("median_e2e=<2e2ms")
    assert (median.op, median.limit, median.quantile) == ("<=", pytest.approx(0.2), 50.0)
    with pytest.raises(ObjectiveError, match="twice"):
        parse_gate("p95_e2e<=1s,p95_e2e<=2s")
    with pytest.raises(ObjectiveError, match=r"needs a statistic, e\.g\. p95_ttft"):
        parse_gate("ttft<=1s")
    for bad, says in [("p95_e2e<=1", "time unit"), ("foo_e2e<=1s", "statistic 'foo'"),
                      ("rps>=20ms", "per second"), ("error_rate<=150%", "above 100%")]:  # fmt: skip
        with pytest.raises(ObjectiveError, match=says):
            parse_gate(bad)
    with pytest.raises(ObjectiveError, match="--max-error-rate"):
        parse_error_rate("half")


def test_benchmark_slo_splits_into_goodput_and_gate() -> None:
    goodput, gate = split_objectives("ttft<=10s, p95_e2e<=1us,error_rate<=1%,e2e<2s")
    assert goodput is not None
    assert [o.name for o in goodput.objectives] == ["ttft", "e2e"]
    assert [o.name for o in gate] == ["p95_e2e", "error_rate"]
    assert split_objectives(None) == (None, ())
    assert split_objectives(" , ") == (None, ())
    only_gate, _ = split_objectives("p95_e2e<=200ms")
    assert only_gate is None
    assert [o.per_request for o in parse_objectives("ttft<=1s,p50_ttft<=1s")] == [True, False]


def test_objective_errors_are_library_errors() -> None:
    assert issubclass(ObjectiveError, OpenAutoGLMError)
