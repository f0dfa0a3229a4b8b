"""aiohttp or httpx for the streaming client? Measured, not guessed.

Both libraries drive the same zero-cost streaming server (``bench_loadgen_server.py``) in a
closed loop: N requests in flight, each streaming ``--output-len`` one-token SSE chunks that
the client reads to the end without parsing. Reported per library: requests/s and the
client's CPU milliseconds per request (``time.process_time``), best of ``--repeat``.

    python benchmarks/bench_loadgen_http_clients.py --url http://127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx

_REQUEST = {"model": "zero", "prompt": "word " * 128, "max_tokens": 64, "stream": True,
            "stream_options": {"include_usage": True}, "ignore_eos": True}  # fmt: skip
BODY = json.dumps(_REQUEST).encode()
HEADERS = {"Content-Type": "application/json"}


async def closed_loop(one: Callable[[], Awaitable[int]], concurrency: int, total: int) -> int:
    left = [total]
    received = [0]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            n = await one()
            received[0] += n

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return received[0]


async def run_aiohttp(url: str, concurrency: int, total: int) -> int:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, read_bufsize=4 << 20) as session:

        async def one() -> int:
            n = 0
            async with session.post(url, data=BODY, headers=HEADERS) as resp:
                async for data in resp.content.iter_any():
                    n += len(data)
            return n

        return await closed_loop(one, concurrency, total)


async def run_httpx(url: str, concurrency: int, total: int) -> int:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one() -> int:
            n = 0
            async with client.stream("POST", url, content=BODY, headers=HEADERS) as resp:
                async for data in resp.aiter_raw():
                    n += len(data)
            return n

        return await closed_loop(one, concurrency, total)


def measure(name: str, url: str, concurrency: int, total: int) -> tuple[float, float]:
    fn = run_aiohttp if name == "aiohttp" else run_httpx
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        cpu, wall = time.process_time(), time.perf_counter()
        received = runner.run(fn(url, concurrency, total))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert received > total * 64 * 10, "the server sent less than expected"
    return total / wall, cpu / total * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="zero-cost server base URL")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    url = args.url.rstrip("/") + "/v1/completions"
    print("| library | req/s (best) | client CPU ms / request (best) |")
    print("|---|---|---|")
    for name in ("aiohttp", "httpx"):
        runs = [measure(name, url, args.concurrency, args.requests) for _ in range(args.repeat)]
        print(f"| {name} | {max(r[0] for r in runs):,.0f} | {min(r[1] for r in runs):.3f} |")


if __name__ == "__main__":
    main()
