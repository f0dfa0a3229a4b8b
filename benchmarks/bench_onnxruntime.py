"""SmolLM2-135M on onnxruntime: bare engine step times, and the backend against a bare loop.

Part 1, the bare session (int4 and fp32 side by side in one run): prefill of a 128-token
prompt, and one decode step at batch 1 and batch 8 with a 128-token cache (median of runs).

Part 2, the ``onnxruntime`` backend (its scheduler, sampling, detokenizer; no HTTP) against
a bare greedy loop on the same session: output tokens/s at batch 1 (ratio), and the backend's
tokens/s at concurrency 8 against 1 (batching gain), with its prompt-prefix cache off and on.
Every prompt is distinct after the chat template and system prompt they all share, so the
cache can reuse that shared head and nothing more (a prompt seen twice would flatter it).

    python benchmarks/bench_onnxruntime.py [--threads 0] [--decode-steps 20] [--tokens 32]

The model is prepared first if it is not (``open-autoglm models prepare smollm2-135m``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from open_autoglm.instrumented_servers._backend import (
    ChatMessage,
    Finished,
    GenerationRequest,
    SamplingParams,
    TokenDelta,
)
from open_autoglm.instrumented_servers.backends.onnxruntime._backend import (
    OnnxRuntimeBackend,
    OrtConfig,
)
from open_autoglm.instrumented_servers.backends.onnxruntime._session import (
    DecoderSession,
    find_model_files,
)
from open_autoglm.instrumented_servers.models import prepare_model

QUESTIONS = (
    "What is the capital of France?",
    "Name three colors.",
    "Write a haiku about the sea.",
    "Who wrote Hamlet?",
    "Say hello in Spanish.",
    "What is the largest planet?",
    "Define gravity briefly.",
    "Why is the sky blue?",
)


def _ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


def bench_session(
    engine: DecoderSession, steps: int, batches: tuple[int, ...] = (1, 8), warmup_steps: int = 0
) -> dict[str, float]:
    """Median ms of a 128-token prefill, and of one decode step at each of ``batches`` with a
    128-token cache (after ``warmup_steps`` untimed steps: a GPU's kernels and allocator)."""
    rng = np.random.default_rng(0)
    ids = rng.integers(100, 40000, (1, 128), dtype=np.int64)
    mask = np.ones((1, 128), np.int64)
    positions = np.arange(128, dtype=np.int64)[None]
    for _ in range(max(1, warmup_steps)):  # warm-up
        engine.run(ids, mask, positions, engine.empty_past(1))
    prefill = []
    for _ in range(5):
        started = time.perf_counter()
        engine.run(ids, mask, positions, engine.empty_past(1))
        prefill.append(time.perf_counter() - started)
    result = {"prefill_128_ms": _ms(prefill)}
    for batch in batches:
        rows = np.repeat(ids, batch, 0)
        _, past = engine.run(
            rows,
            np.repeat(mask, batch, 0),
            np.repeat(positions, batch, 0),
            engine.empty_past(batch),
        )
        length, times = 128, []
        for step in range(warmup_steps + steps):
            step_ids = np.full((batch, 1), 42, np.int64)
            step_mask = np.ones((batch, length + 1), np.int64)
            step_pos = np.full((batch, 1), length, np.int64)
            started = time.perf_counter()
            _, past = engine.run(step_ids, step_mask, step_pos, past)
            if step >= warmup_steps:
                times.append(time.perf_counter() - started)
            length += 1
        result[f"decode_b{batch}_ms"] = _ms(times)
    return result


def bare_loop_tokens_per_s(backend: OnnxRuntimeBackend, prompts: list[str], tokens: int) -> float:
    """Greedy generation with the session alone, one prompt at a time (no scheduler)."""
    engine, produced, started = backend.engine, 0, time.perf_counter()
    for prompt in prompts:
        ids = np.array([backend.tokenizer.encode(prompt)], np.int64)
        mask = np.ones_like(ids)
        positions = np.arange(ids.shape[1], dtype=np.int64)[None]
        logits, past = engine.run(ids, mask, positions, engine.empty_past(1))
        for i in range(tokens):
            token = int(np.argmax(logits[0]))
            produced += 1
            if i == tokens - 1:
                break
            length = mask.shape[1]
            mask = np.ones((1, length + 1), np.int64)
            logits, past = engine.run(
                np.array([[token]], np.int64), mask, np.array([[length]], np.int64), past
            )
    return produced / (time.perf_counter() - started)


async def backend_tokens_per_s(
    backend: OnnxRuntimeBackend, prompts: list[str], tokens: int, concurrency: int
) -> float:
    queue = list(prompts)
    produced = 0

    async def worker() -> None:
        nonlocal produced
        while queue:
            prompt = queue.pop()
            params = SamplingParams(max_tokens=tokens, temperature=0.0, ignore_eos=True)
            async for event in backend.generate(GenerationRequest("b", prompt, params)):
                if isinstance(event, TokenDelta):
                    produced += event.token_count
                elif isinstance(event, Finished):
                    break

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return produced / (time.perf_counter() - started)


def unique_prompts(backend: OnnxRuntimeBackend, count: int, tag: str) -> list[str]:
    """``count`` chat prompts that share the template and system prompt, and nothing after."""
    return [
        backend.render_chat([ChatMessage("user", f"{QUESTIONS[i % len(QUESTIONS)]} ({tag}{i})")])
        for i in range(count)
    ]


async def bench_backend(
    folder: Path, threads: int, tokens: int, prefix_cache_mb: float
) -> dict[str, float]:
    backend = OnnxRuntimeBackend(
        "smollm2-135m",
        folder,
        OrtConfig(max_batch_size=8, threads=threads, prefix_cache_mb=prefix_cache_mb),
    )
    await backend.start()
    try:
        await backend_tokens_per_s(backend, unique_prompts(backend, 2, "w"), 4, 1)  # warm-up
        bare = bare_loop_tokens_per_s(backend, unique_prompts(backend, 8, "b"), tokens)
        one = await backend_tokens_per_s(backend, unique_prompts(backend, 8, "s"), tokens, 1)
        eight = await backend_tokens_per_s(backend, unique_prompts(backend, 16, "c"), tokens, 8)
    finally:
        await backend.stop()
    return {"bare_b1": bare, "backend_c1": one, "backend_c8": eight}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: ORT's)")
    parser.add_argument("--decode-steps", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=32, help="output tokens per request")
    args = parser.parse_args()
    folders = prepare_model("smollm2-135m", ["onnx-int4", "onnx-fp32"])
    rows: list[tuple[str, dict[str, Any]]] = []
    for variant in ("onnx-int4", "onnx-fp32"):
        engine = DecoderSession(find_model_files(folders[variant]), "cpu", args.threads)
        rows.append((variant, bench_session(engine, args.decode_steps)))
        del engine
    print("bare onnxruntime session, CPU, median ms")
    print(f"{'model':<10} {'prefill 128 tok':>16} {'decode b=1':>11} {'decode b=8':>11} "
          f"{'b=8 tok/s gain':>15}")  # fmt: skip
    for variant, r in rows:
        gain = 8 * r["decode_b1_ms"] / r["decode_b8_ms"]
        print(f"{variant:<10} {r['prefill_128_ms']:>16.1f} {r['decode_b1_ms']:>11.1f} "
              f"{r['decode_b8_ms']:>11.1f} {gain:>14.1f}x")  # fmt: skip
    print()
    print(f"backend vs bare loop, greedy, {args.tokens} output tokens per request, tokens/s;")
    print("every prompt distinct after the shared chat template and system prompt")
    print(f"{'model':<10} {'prefix cache':<13} {'bare b=1':>9} {'backend c=1':>12} {'ratio':>6} "
          f"{'backend c=8':>12} {'c8/c1':>6}")  # fmt: skip
    for variant in ("onnx-int4", "onnx-fp32"):
        for cache_mb in (0.0, 64.0):
            r = asyncio.run(bench_backend(folders[variant], args.threads, args.tokens, cache_mb))  # type: ignore[index]
            label = "off" if cache_mb == 0 else f"{cache_mb:.0f} MiB"
            print(f"{variant:<10} {label:<13} {r['bare_b1']:>9.1f} {r['backend_c1']:>12.1f} "
                  f"{r['backend_c1'] / r['bare_b1']:>6.2f} {r['backend_c8']:>12.1f} "
                  f"{r['backend_c8'] / r['backend_c1']:>5.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
