"""Per-level statistics and the versioned results document (``results.json``)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from open_autoglm import _strict_json as strict_json
from open_autoglm.loadgen._health import ClientHealth
from open_autoglm.loadgen._profiles import Level, ProfileConfig
from open_autoglm.loadgen._records import RequestRecord
from open_autoglm.loadgen._workloads import WorkloadConfig
from open_autoglm.objectives import Goodput

ResultsVersion = Literal["open-autoglm.loadgen.results/1"]
RESULTS_VERSION: ResultsVersion = "open-autoglm.loadgen.results/1"


@dataclass(frozen=True, slots=True)
class Stats:
    """A latency distribution in milliseconds; percentiles interpolate linearly (numpy)."""

    count: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    median: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of_seconds(cls, values: Sequence[float]) -> Stats:
        if not len(values):
            return cls(count=0)
        ms = np.asarray(values, dtype=np.float64) * 1e3
        p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
        return cls(
            count=int(ms.size),
            mean=float(ms.mean()),
            std=float(ms.std()),
            min=float(ms.min()),
            median=float(p50),
            p90=float(p90),
            p95=float(p95),
            p99=float(p99),
            max=float(ms.max()),
        )


@dataclass(frozen=True, slots=True)
class LevelResult:
    index: int
    label: str
    mode: str
    target: int | float  # concurrency (a whole number), or requests per second
    role: str
    arrival: str | None
    burstiness: float | None
    max_concurrency: int | None
    started_unix_ns: int
    requests: int  # every record of the level, warm-up and cool-down included
    measured: int  # measured records (RequestRecord.measured): in the window, not cancelled
    succeeded: int
    failed: int
    cancelled: int
    errors: dict[str, int]
    error_rate: float
    duration_s: float  # last completion - first send, measured requests
    request_throughput: float
    input_token_throughput: float
    output_token_throughput: float
    goodput: float | None  # requests per second meeting every SLO
    goodput_fraction: float | None
    send_rate: float  # requests sent per second over the window
    mean_in_flight: float  # time-averaged requests in flight (Little's law)
    input_tokens_mean: float | None
    output_tokens_mean: float | None
    output_tokens_from_usage: int
    output_tokens_from_tokenizer: int
    ttft_ms: Stats
    tpot_ms: Stats
    itl_ms: Stats
    e2e_ms: Stats
    client_queue_ms: Stats
    health: ClientHealth
    #: to the first answer (non-reasoning) output; empty in results written before it existed
    answer_ttft_ms: Stats = field(default_factory=lambda: Stats(count=0))
    not_streamed: int = 0  # successes answered with one JSON completion (their TTFT = E2E)


def summarize_level(
    index: int,
    level: Level,
    records: Sequence[RequestRecord],
    started_unix_ns: int,
    slo: Goodput | None,
    health: ClientHealth,
) -> LevelResult:
    finished = [r for r in records if r.measured]  # the measured rule drops cancelled ones
    ok = [r for r in finished if r.ok]
    failed = [r for r in finished if not r.ok]
    errors = Counter(r.error_type or "unknown" for r in failed)
    if finished:
        first_send = min(r.sent_s for r in finished)
        last_done = max(r.done_s or r.sent_s for r in finished)
        duration = max(last_done - first_send, 1e-9)
        last_send = max(r.sent_s for r in finished)
        send_span = last_send - first_send
        busy = sum((r.done_s or r.sent_s) - r.sent_s for r in finished)
    else:
        duration, send_span, busy = 0.0, 0.0, 0.0
    out_tokens = sum(r.output_tokens or 0 for r in ok)
    in_tokens = sum(r.input_tokens or 0 for r in ok)

    def rate(n: float) -> float:
        return n / duration if duration > 0 else 0.0

    goodput = goodput_fraction = None
    if slo is not None:
        good = sum(1 for r in finished if slo.met(r))
        goodput = rate(good)
        goodput_fraction = good / len(finished) if finished else None
    itl = [gap for r in ok for gap in r.itl_s()]
    return LevelResult(
        index=index,
        label=level.label,
        mode=level.mode,
        target=level.value,
        role=level.role,
        arrival=level.arrival if level.mode == "rate" else None,
        burstiness=level.burstiness if level.arrival == "gamma" else None,
        max_concurrency=level.max_concurrency,
        started_unix_ns=started_unix_ns,
        requests=len(records),
        measured=len(finished),
        succeeded=len(ok),
        failed=len(failed),
        cancelled=sum(1 for r in records if r.status == "cancelled"),
        errors=dict(errors.most_common()),
        error_rate=len(failed) / len(finished) if finished else 0.0,
        duration_s=duration,
        request_throughput=rate(len(ok)),
        input_token_throughput=rate(in_tokens),
        output_token_throughput=rate(out_tokens),
        goodput=goodput,
        goodput_fraction=goodput_fraction,
        send_rate=(len(finished) - 1) / send_span if send_span > 0 else 0.0,
        mean_in_flight=busy / duration if duration > 0 else 0.0,
        input_tokens_mean=in_tokens / len(ok) if ok else None,
        output_tokens_mean=out_tokens / len(ok) if ok else None,
        output_tokens_from_usage=sum(1 for r in ok if r.output_tokens_source == "usage"),
        output_tokens_from_tokenizer=sum(1 for r in ok if r.output_tokens_source == "tokenizer"),
        ttft_ms=Stats.of_seconds([r.ttft_s for r in ok if r.ttft_s is not None]),
        tpot_ms=Stats.of_seconds([r.tpot_s for r in ok if r.tpot_s is not None]),
        itl_ms=Stats.of_seconds(itl),
        e2e_ms=Stats.of_seconds([r.e2e_s for r in ok if r.e2e_s is not None]),
        client_queue_ms=Stats.of_seconds([r.queue_s for r in finished]),
        health=health,
        answer_ttft_ms=Stats.of_seconds(
            [r.answer_ttft_s for r in ok if r.answer_ttft_s is not None]
        ),
        not_streamed=sum(1 for r in ok if not r.streamed),
    )


@dataclass(frozen=True, slots=True)
class EndpointSummary:
    """Where the requests went (``endpoint`` of ``results.json``); header names only, since
    their values may be secrets, and whether an API key was sent, never the key."""

    url: str  # the URL that got the POSTs
    api: str  # "chat" or "completions"
    model: str | None
    ignore_eos: bool
    timeout_s: float
    headers: list[str]
    extra_body: dict[str, Any]  # the user's fixed body fields, any JSON
    api_key: bool


@dataclass(frozen=True, slots=True)
class BenchmarkResults:
    """The run's results; :meth:`to_json` is the versioned document written to disk."""

    version: ResultsVersion
    tool_version: str
    started_unix_ns: int
    finished_unix_ns: int
    interrupted: bool
    endpoint: EndpointSummary
    workload: WorkloadConfig  # as asked for
    profile: ProfileConfig  # as asked for
    slo: str | None
    seed: int
    records_path: str | None
    levels: list[LevelResult] = field(default_factory=list)
    client_bound: bool = False
    summary: str = ""
    #: what counted output tokens where a server sent no usage: a tokenizer.json, or "simple"
    #: (an estimate, never fewer tokens than output chunks); each record says which it used
    tokenizer: str = "simple"

    def to_json(self) -> dict[str, Any]:
        """The document as JSON values (paths as strings)."""
        out: dict[str, Any] = json.loads(json.dumps(asdict(self), default=str))
        return out

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        text = strict_json.dumps(self.to_json(), indent=2)
        tmp.write_text(text + "\n", encoding="utf-8")
        tmp.replace(path)
