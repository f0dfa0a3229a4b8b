"""What tracing costs the server: zero-cost ``sim``, tracing off vs on (100% sampled, OTLP).

Side by side in one run: the same server command with ``--no-tracing`` and with tracing to a
real OTLP/HTTP receiver, alternated over rounds. The server is pinned to CPU 0 and the load
to CPU 1 where ``taskset`` and two CPUs exist. Two loads per setting:

* saturated: a closed loop of ``--concurrency`` requests in flight -> requests/s, and the
  server process's CPU time per request (measured from its CPU clock, which a busy shared
  machine disturbs less than throughput); the cost per request is the difference of those.
* single: one request at a time -> p50 latency; the difference is the added latency.

    python benchmarks/bench_server_tracing.py [--seconds 5] [--rounds 2] [--concurrency 32]
        [--before-src ../other-checkout/src]

``--before-src`` adds a row for the same server from another source tree (an older commit's
``src``), tracing on with OTLP http/json: before and after, side by side in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import time

import aiohttp
import psutil

from open_autoglm.testing import ServerProcess
from sink_process import SinkHandle, sink_process

BODY = {
    "model": "sim-llm",
    "messages": [{"role": "user", "content": "Say something about latency."}],
    "max_tokens": 8,
    "ignore_eos": True,
    "stream": True,
}


async def closed_loop(url: str, concurrency: int, seconds: float) -> tuple[float, float]:
    """Requests/s and p50 latency (ms) of ``concurrency`` streams kept in flight."""
    rps, p50, _ = await closed_loop_counted(url, concurrency, seconds)
    return rps, p50


async def closed_loop_counted(
    url: str, concurrency: int, seconds: float
) -> tuple[float, float, int]:
    """Requests/s, p50 latency (ms) and requests of ``concurrency`` streams in flight."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                async with session.post(f"{url}/v1/chat/completions", json=BODY) as r:
                    await r.read()
                    assert r.status == 200
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, statistics.median(latencies) * 1000, len(latencies)


def cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


PINNING = {"on": True}  # --no-pin: on a shared machine other jobs may be pinned to CPU 0


def pin(cpu: int) -> list[str]:
    if PINNING["on"] and shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


JSON = "on, OTLP http/json (ours)"
BEFORE = "on, OTLP http/json, --before-src tree"
MODES = {
    "off": ["--no-tracing"],
    "on, OTLP http/protobuf (SDK exporter)": ["--otlp-protocol", "http/protobuf"],
    JSON: ["--otlp-protocol", "http/json"],
}


def measure(mode: str, sink: SinkHandle, args: argparse.Namespace) -> tuple[float, float, float]:
    """Saturated requests/s, p50 latency one in flight (ms), server CPU µs per request."""
    env = dict(os.environ)
    if mode == BEFORE:
        server_args = ["--backend", "sim", "--backend-option", "cost=zero", *MODES[JSON]]
        env["PYTHONPATH"] = args.before_src
    else:
        server_args = ["--backend", "sim", "--backend-option", "cost=zero", *MODES[mode]]
    if mode != "off":
        server_args += ["--otlp-endpoint", sink.endpoint]
    with ServerProcess(server_args, launcher=pin(0), env=env) as server:
        asyncio.run(closed_loop(server.url, args.concurrency, 1.0))  # warm-up
        before = cpu_s(server.pid)
        rps, _, count = asyncio.run(closed_loop_counted(server.url, args.concurrency, args.seconds))
        cpu_us = (cpu_s(server.pid) - before) / count * 1e6
        _, p50 = asyncio.run(closed_loop(server.url, 1, args.seconds))
    return rps, p50, cpu_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=8, help="streamed tokens per request")
    parser.add_argument("--before-src", help="source tree of the server to compare against")
    parser.add_argument("--no-pin", action="store_true", help="let the OS place every process")
    args = parser.parse_args()
    PINNING["on"] = not args.no_pin
    BODY["max_tokens"] = args.max_tokens
    modes = [*MODES, BEFORE] if args.before_src else list(MODES)
    if pin(1):
        os.sched_setaffinity(0, {1})
    results: dict[str, list[tuple[float, float, float]]] = {mode: [] for mode in modes}
    with sink_process({1} if pin(1) else None) as sink:
        for _ in range(args.rounds):
            for mode in modes:
                results[mode].append(measure(mode, sink, args))
        exported = sink.span_count
    load = os.getloadavg()[0]
    print(
        f"zero-cost sim, {args.max_tokens} streamed tokens/request, {args.rounds} rounds × "
        f"{args.seconds:.0f} s, saturated at concurrency {args.concurrency}; spans exported: "
        f"{exported}; load average {load:.1f}"
    )
    print()
    print("| tracing | requests/s (saturated) | cost of req/s | server CPU per request "
          "(measured) | added CPU per request | from req/s | p50 latency, one in flight "
          "| added p50 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    off_rps = statistics.mean(r for r, _, _ in results["off"])
    off_p50 = statistics.mean(p for _, p, _ in results["off"])
    off_cpu = statistics.mean(c for _, _, c in results["off"])
    for mode, runs in results.items():
        rps = statistics.mean(r for r, _, _ in runs)
        p50 = statistics.mean(p for _, p, _ in runs)
        cpu = statistics.mean(c for _, _, c in runs)
        off = mode == "off"
        cost = "" if off else f"{100 * (1 - rps / off_rps):.1f}%"
        added_cpu = "" if off else f"{cpu - off_cpu:+.0f} µs"
        per_request = "" if off else f"{(1 / rps - 1 / off_rps) * 1e6:+.0f} µs"
        added = "" if off else f"{1000 * (p50 - off_p50):+.0f} µs"
        print(f"| {mode} | {rps:,.0f} | {cost} | {cpu:.0f} µs | {added_cpu} | {per_request} "
              f"| {p50:.2f} ms | {added} |")  # fmt: skip
    print()
    print("Targets (issues 2, 17): at most 10% of saturated requests/s, at most 150 µs of CPU "
          "per request.")  # fmt: skip


if __name__ == "__main__":
    main()
