"""SmolLM2-135M on onnxruntime's CUDA provider: IO binding against copying the cache each step.

Needs ``onnxruntime-gpu`` and an NVIDIA GPU. For each model variant, side by side in one run:

1. the bare session: prefill of a 128-token prompt, one decode step at batch 1, 8 and 32 with a
   128-token cache, with the KV cache kept on the device (IO binding) and without (the cache
   goes to the host and back every step, as ``session.run`` with numpy does);
2. the ``onnxruntime`` backend (scheduler, sampling, detokenizer; no HTTP): output tokens/s at
   concurrency 1 and 8 (every prompt distinct after the shared chat template), IO binding on
   and off, the prompt-prefix cache on and off, and its greedy answer to "What is the capital
   of France?" against the CPU provider's answer on the same model;
3. ``--device tensorrt``: whether onnxruntime's TensorRT provider starts here, or the error
   a user gets;
4. the GPU's memory in use at the end (NVML), and the providers the sessions really ran on.

    python benchmarks/bench_onnxruntime_gpu.py [--device cuda] [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from bench_onnxruntime import QUESTIONS, backend_tokens_per_s, bench_session, unique_prompts
from open_autoglm.instrumented_servers._backend import (
    ChatMessage,
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
    ExecutionProviderError,
    ModelLoadError,
    find_model_files,
)
from open_autoglm.instrumented_servers.models import prepare_model
from open_autoglm.telemetry._probes import GpuProbe


async def _answer(backend: OnnxRuntimeBackend) -> str:
    prompt = backend.render_chat([ChatMessage("user", QUESTIONS[0])])
    text = ""
    async for event in backend.generate(
        GenerationRequest("a", prompt, SamplingParams(24, temperature=0.0))
    ):
        if isinstance(event, TokenDelta):
            text += event.text
    return text


async def bench_backend(
    folder: Path, device: str, io_binding: str, tokens: int, prefix_cache_mb: float = 64.0
) -> dict[str, Any]:
    config = OrtConfig(
        device=device, max_batch_size=8, io_binding=io_binding, prefix_cache_mb=prefix_cache_mb
    )
    backend = OnnxRuntimeBackend("smollm2-135m", folder, config)
    await backend.start()
    try:
        await backend_tokens_per_s(backend, unique_prompts(backend, 2, "w"), 4, 2)  # warm-up
        answer = await _answer(backend)
        one = await backend_tokens_per_s(backend, unique_prompts(backend, 8, "s"), tokens, 1)
        eight = await backend_tokens_per_s(backend, unique_prompts(backend, 16, "c"), tokens, 8)
    finally:
        await backend.stop()
    return {
        "provider": backend.execution_provider,
        "io_binding": backend.engine.io_binding,
        "answer": answer,
        "c1_tok_s": one,
        "c8_tok_s": eight,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "tensorrt", "cpu"])
    parser.add_argument("--variants", nargs="+", default=["onnx-fp32", "onnx-int4"])
    parser.add_argument("--decode-steps", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=64, help="output tokens per request")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    folders = prepare_model("smollm2-135m", args.variants)
    results: dict[str, Any] = {"device": args.device, "session": {}, "backend": {}}
    probe = GpuProbe()
    results["gpus"] = probe.names()

    print(f"bare onnxruntime session, --device {args.device}, median ms")
    print(f"{'model':<10} {'cache':<10} {'prefill 128':>12} {'b=1':>7} {'b=8':>7} {'b=32':>7}")
    for variant in args.variants:
        files = find_model_files(folders[variant])
        for binding in (True, False):
            engine = DecoderSession(files, args.device, io_binding=binding)
            r = bench_session(engine, args.decode_steps, (1, 8, 32), warmup_steps=2)
            r["provider"] = engine.provider
            label = "on device" if binding else "via host"
            results["session"][f"{variant}/{label}"] = r
            print(f"{variant:<10} {label:<10} {r['prefill_128_ms']:>12.2f} "
                  f"{r['decode_b1_ms']:>7.2f} {r['decode_b8_ms']:>7.2f} "
                  f"{r['decode_b32_ms']:>7.2f}")  # fmt: skip
            del engine

    print()
    print(f"backend, greedy, {args.tokens} output tokens per request, tokens/s")
    print(f"{'model':<10} {'io_binding':<11} {'prefix cache':<13} {'c=1':>8} {'c=8':>8} "
          f"{'c8/c1':>6}  answer")  # fmt: skip
    for variant in args.variants:
        for binding, cache_mb in (("on", 64.0), ("on", 0.0), ("off", 64.0)):
            r = asyncio.run(
                bench_backend(folders[variant], args.device, binding, args.tokens, cache_mb)
            )
            cache = "off" if cache_mb == 0 else f"{cache_mb:.0f} MiB"
            results["backend"][f"{variant}/{binding}/{cache}"] = r
            print(f"{variant:<10} {binding:<11} {cache:<13} {r['c1_tok_s']:>8.1f} "
                  f"{r['c8_tok_s']:>8.1f} {r['c8_tok_s'] / r['c1_tok_s']:>5.1f}x  "
                  f"{r['answer']!r}")  # fmt: skip
        cpu = asyncio.run(bench_backend(folders[variant], "cpu", "off", 4))
        same = cpu["answer"] == results["backend"][f"{variant}/on/64 MiB"]["answer"]
        results["backend"][f"{variant}/cpu"] = cpu
        print(f"{variant:<10} {'cpu':<11} answer {cpu['answer']!r} (same as GPU: {same})")

    print()
    try:
        engine = DecoderSession(find_model_files(folders[args.variants[0]]), "tensorrt")
        results["tensorrt"] = {"provider": engine.provider}
        print(f"--device tensorrt: runs on {engine.provider}")
    except (ExecutionProviderError, ModelLoadError) as exc:
        results["tensorrt"] = {"error": str(exc)}
        print(f"--device tensorrt: {type(exc).__name__}: {exc}")
    samples = probe.sample()
    results["gpu_memory_used_bytes"] = [s.memory_used_bytes for s in samples]
    print(f"GPUs: {results['gpus']}; memory used now: {results['gpu_memory_used_bytes']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
