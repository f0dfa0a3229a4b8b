"""What the tracing proxy costs: the client going direct vs through ``open-autoglm proxy``.

Side by side in one run, against one zero-cost ``sim`` upstream (tracing off, so only the
proxy's cost shows). The proxy traces every request (100 %, OTLP http/json to an in-process
sink) and is pinned to CPU 0; upstream and load share CPU 1 where ``taskset`` and two CPUs
exist.

* saturated: a closed loop of ``--concurrency`` streams through the proxy (tracing 100 %, and
  tracing off) -> requests/s, the proxy's CPU per request (its process CPU time / requests)
  and what that allows on one core (1 s / CPU per request);
* latency: ``--light`` streams in flight, direct and through the proxy alternated over rounds
  -> client TTFT (first content chunk) p50/p99 and what the proxy adds.

    python benchmarks/bench_proxy.py [--seconds 5] [--rounds 3] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import time

import aiohttp
import numpy as np
import psutil

from open_autoglm.testing import ServerProcess
from sink_process import sink_process

BODY = {
    "model": "sim-llm",
    "messages": [{"role": "user", "content": "Say something about latency."}],
    "max_tokens": 8,
    "ignore_eos": True,
    "stream": True,
}


async def closed_loop(url: str, concurrency: int, seconds: float) -> tuple[int, float, list[float]]:
    """(requests, elapsed s, TTFT of each in s) of ``concurrency`` streams kept in flight."""
    ttfts: list[float] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                first = 0.0
                async with session.post(f"{url}/v1/chat/completions", json=BODY) as r:
                    assert r.status == 200, r.status
                    async for chunk in r.content.iter_any():
                        if not first and b'"content":"' in chunk.replace(b'"content":""', b""):
                            first = time.perf_counter()
                ttfts.append(first - start)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(ttfts), elapsed, ttfts


PINNING = {"on": True}  # --no-pin: on a shared machine other jobs may be pinned to CPU 0


def pin(cpu: int) -> list[str]:
    if PINNING["on"] and shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


def cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--light", type=int, default=4, help="streams in flight for latency")
    parser.add_argument("--max-tokens", type=int, default=8, help="streamed tokens per request")
    parser.add_argument("--no-pin", action="store_true", help="let the OS place every process")
    args = parser.parse_args()
    PINNING["on"] = not args.no_pin
    BODY["max_tokens"] = args.max_tokens
    upstream_args = ["--backend", "sim", "--backend-option", "cost=zero", "--no-tracing"]
    traced, plain = "through the proxy, tracing 100 %", "through the proxy, tracing off"
    saturated: dict[str, list[tuple[float, float, float]]] = {traced: [], plain: []}
    direct_rps: list[float] = []
    ttft: dict[str, list[float]] = {"direct": [], traced: [], plain: []}
    with (
        sink_process({1} if pin(1) else None) as sink,
        ServerProcess(upstream_args, launcher=pin(1)) as upstream,
        ServerProcess(
            ["--upstream", upstream.url, "--otlp-endpoint", sink.endpoint,
             "--otlp-protocol", "http/json"],
            command=("proxy",), launcher=pin(0),
        ) as traced_proxy,
        ServerProcess(
            ["--upstream", upstream.url, "--no-tracing"], command=("proxy",), launcher=pin(0)
        ) as plain_proxy,
    ):  # fmt: skip
        if pin(1):
            os.sched_setaffinity(0, {1})
        proxies = {traced: traced_proxy, plain: plain_proxy}
        for proxy in proxies.values():
            asyncio.run(closed_loop(proxy.url, args.concurrency, 1.0))  # warm-up
        for _ in range(args.rounds):
            for name, proxy in proxies.items():
                before = cpu_s(proxy.pid)
                count, elapsed, _ = asyncio.run(
                    closed_loop(proxy.url, args.concurrency, args.seconds)
                )
                used = cpu_s(proxy.pid) - before
                saturated[name].append((count / elapsed, used / count * 1e6, used / elapsed))
            count, elapsed, _ = asyncio.run(
                closed_loop(upstream.url, args.concurrency, args.seconds)
            )
            direct_rps.append(count / elapsed)
            targets = {"direct": upstream.url, traced: traced_proxy.url, plain: plain_proxy.url}
            for name, url in targets.items():
                _, _, times = asyncio.run(closed_loop(url, args.light, args.seconds))
                ttft[name].extend(times)
        time.sleep(1.0)  # the proxy's exporter flushes every 0.5 s
        exported = sink.span_count
    load = os.getloadavg()[0]
    print(
        f"zero-cost sim upstream, {args.max_tokens} streamed tokens/request, {args.rounds} "
        f"rounds × {args.seconds:.0f} s (spans exported: {exported}); load average {load:.1f}"
    )
    print()
    print(f"| saturated (concurrency {args.concurrency}) | requests/s | proxy CPU per request "
          "| proxy CPU busy | req/s one core allows |")  # fmt: skip
    print("|---|---|---|---|---|")
    print(f"| direct | {np.mean(direct_rps):,.0f} | | | |")
    for name, runs in saturated.items():
        rps = float(np.mean([r[0] for r in runs]))
        us = float(np.mean([r[1] for r in runs]))
        share = float(np.mean([r[2] for r in runs]))
        print(f"| {name} | {rps:,.0f} | {us:.0f} µs | {100 * share:.0f} % | {1e6 / us:,.0f} |")
    print()
    print(f"| TTFT, {args.light} streams in flight | p50 | p99 | added p50 | added p99 |")
    print("|---|---|---|---|---|")
    p = {k: np.percentile(np.array(v) * 1000, [50, 99]) for k, v in ttft.items()}
    for name, (p50, p99) in p.items():
        if name == "direct":
            print(f"| direct | {p50:.2f} ms | {p99:.2f} ms | | |")
            continue
        added = p[name] - p["direct"]
        print(f"| {name} | {p50:.2f} ms | {p99:.2f} ms | {added[0] * 1000:+.0f} µs "
              f"| {added[1] * 1000:+.0f} µs |")  # fmt: skip
    print()
    print("Targets (issue 17): ≥ 1,000 streamed req/s on one core, ≤ 1 ms added TTFT p50.")


if __name__ == "__main__":
    main()
