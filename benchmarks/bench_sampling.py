"""Load-adaptive tail sampling: exported spans/s against ``--trace-budget`` under a step load.

One ``serve --backend sim`` (simulated costs: 10 ms + 0.1 ms a sequence per decode step,
well under capacity) with ``--trace-budget``
and the default slow threshold (the running p95 of request durations); an open loop steps
through request rates. In every phase a share of requests fails (the sim's ``error_rate``) and
a share is long (64 output tokens instead of 8). Requests are joined to their SERVER spans by
response id. Per phase the table shows the spans/s the server exported against the budget,
the sampling ratio it reported, and how many of the failed requests and of the slowest 5 %
(by client latency) were kept. ``--slow-ms`` sets a fixed threshold instead.

    python benchmarks/bench_sampling.py [--budget 150] [--rates 5,15,40,80] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import time
from dataclasses import dataclass, field

import aiohttp

from open_autoglm.testing import ServerProcess
from sink_process import sink_process

SERVER = 2  # OTLP SPAN_KIND_SERVER
RESPONSE_ID = re.compile(r'"id": ?"(chatcmpl-[0-9a-f]+)"')


@dataclass
class Phase:
    rate: float
    start_ns: int = 0
    end_ns: int = 0
    sent: int = 0
    # (response id, client latency s, failed)
    done: list[tuple[str, float, bool]] = field(default_factory=list)


async def one(session: aiohttp.ClientSession, url: str, phase: Phase, long: bool) -> None:
    body = {"model": "sim-llm", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 64 if long else 8, "ignore_eos": True, "stream": True}  # fmt: skip
    start = time.perf_counter()
    async with session.post(f"{url}/v1/chat/completions", json=body) as r:
        text = await r.text()
    found = RESPONSE_ID.search(text)
    failed = r.status != 200 or '"error"' in text
    phase.done.append((found.group(1) if found else "", time.perf_counter() - start, failed))


async def step_load(url: str, phases: list[Phase], seconds: float, long_share: float) -> None:
    rng = random.Random(7)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks: list[asyncio.Task[None]] = []
        for phase in phases:
            phase.start_ns = time.time_ns()
            deadline = time.perf_counter() + seconds
            next_at = time.perf_counter()
            while next_at < deadline:
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                tasks.append(
                    asyncio.create_task(one(session, url, phase, rng.random() < long_share))
                )
                phase.sent += 1
                next_at += rng.expovariate(phase.rate)
            phase.end_ns = time.time_ns()
        await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--budget", type=float, default=150.0, help="spans per second")
    parser.add_argument("--rates", default="5,15,40,80", help="requests/s of each phase")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each phase")
    parser.add_argument("--slow-ms", type=float, help="fixed always-kept threshold (default p95)")
    parser.add_argument("--error-rate", type=float, default=0.03)
    parser.add_argument("--long-share", type=float, default=0.05)
    args = parser.parse_args()
    phases = [Phase(float(r)) for r in args.rates.split(",")]
    with sink_process(keep_spans=True) as sink:
        server_args = ["--backend", "sim", "--backend-option", f"error_rate={args.error_rate}",
                       "--backend-option", "decode_per_seq_ms=0.1", "--max-batch-size", "256",
                       "--otlp-endpoint", sink.endpoint, "--otlp-protocol", "http/json",
                       "--trace-budget", str(args.budget)]  # fmt: skip
        if args.slow_ms is not None:
            server_args += ["--trace-slow-ms", str(args.slow_ms)]
        env = {**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with ServerProcess(server_args, env=env) as server:
            asyncio.run(step_load(server.url, phases, args.seconds, args.long_share))
        spans = sink.collect()  # the server flushed on stop
    slow_rule = "running p95" if args.slow_ms is None else f"≥ {args.slow_ms:.0f} ms"
    print(f"sim (10 ms + 0.1 ms/seq decode steps), budget {args.budget:.0f} spans/s, "
          f"slow: {slow_rule}, {100 * args.error_rate:.0f} % failing, "
          f"{100 * args.long_share:.0f} % long; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print()
    print("| requests/s offered | spans/s exported | of the budget | ratio reported (mean) "
          "| failed kept | slowest 5 % kept | all kept "
          "| kept as error / slow / ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    by_id = {s.attributes.get("gen_ai.response.id"): s for s in spans if s.kind == SERVER}
    per_trace: dict[str, int] = {}
    for span in spans:
        per_trace[span.trace_id] = per_trace.get(span.trace_id, 0) + 1
    for phase in phases:
        seconds = (phase.end_ns - phase.start_ns) / 1e9
        kept = [(by_id[rid], lat, failed) for rid, lat, failed in phase.done if rid in by_id]
        exported = sum(per_trace[span.trace_id] for span, _, _ in kept)
        ratios = [float(span.attributes["autoglm.sampling.ratio"]) for span, _, _ in kept
                  if span.attributes.get("autoglm.sampling.reason") == "ratio"]  # fmt: skip
        failed = [rid for rid, _, f in phase.done if f]
        ok = sorted((lat, rid) for rid, lat, f in phase.done if not f)
        slowest = [rid for _, rid in ok[int(len(ok) * 0.95) :]]
        mean_ratio = f"{statistics.mean(ratios):.2f}" if ratios else "none kept by ratio"
        why = [span.attributes.get("autoglm.sampling.reason") for span, _, _ in kept]
        reasons = " / ".join(str(why.count(r)) for r in ("error", "slow", "ratio"))
        print(f"| {phase.sent / seconds:.0f} | {exported / seconds:.0f} "
              f"| {100 * exported / seconds / args.budget:.0f} % | {mean_ratio} "
              f"| {sum(r in by_id for r in failed)} of {len(failed)} "
              f"| {sum(r in by_id for r in slowest)} of {len(slowest)} "
              f"| {len(kept)} of {len(phase.done)} | {reasons} |")  # fmt: skip
    print()
    print(
        "Target (issue 17): exported spans/s at or under the budget; every failed and every "
        "slow request kept."
    )


if __name__ == "__main__":
    main()
