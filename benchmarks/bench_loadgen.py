"""Load-generator capacity: our client side by side with ``vllm bench serve``.

Both clients drive the same zero-cost streaming server (``bench_loadgen_server.py``, pinned to
one core) from one other core (``taskset``), same settings: ``/v1/completions``, 128 input
and 64 output tokens, ``ignore_eos``, one token per SSE chunk. For each open-loop rate (Poisson
arrivals) and for a closed loop at ``--closed`` in flight, the table gives what each client
achieved. A rate counts as sustained when the achieved request throughput is within 5 % of
the target with no errors, and, for ours, the median scheduling lag is under 1 ms (vLLM does
not measure its lag). Runs alternate between the clients at each point so that drift in a
shared machine's load hits both alike.

    python benchmarks/bench_loadgen.py --vllm-python /work/vllm-venv/bin/python \\
        --tokenizer ~/.cache/open-autoglm/models/smollm2-135m/hf

``vllm bench serve`` comes from vLLM's own package (the CPU build's console script is broken,
so it is called as a module); without ``--vllm-python`` only our client is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VLLM_MAIN = """
import sys
from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser()
add_cli_args(parser)
main(parser.parse_args(sys.argv[1:]))
"""


@dataclass
class Point:
    client: str
    mode: str  # "rate" or "closed"
    target: float
    throughput: float
    tokens_per_s: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    sched_lag_p50_ms: float | None
    failed: int
    wall_s: float

    @property
    def sustained(self) -> bool:
        if self.mode != "rate" or self.failed:
            return False
        lag_ok = self.sched_lag_p50_ms is None or self.sched_lag_p50_ms < 1.0
        return self.throughput >= 0.95 * self.target and lag_ok


def start_server(core: int, workdir: Path, kind: str) -> tuple[subprocess.Popen[bytes], str]:
    """``zero``: the raw zero-cost server here; ``sim``: ``open-autoglm serve --backend sim``
    with every cost zeroed (the real instrumented server, tracing on, nothing exported)."""
    ready = workdir / "server-ready.json"
    log = (workdir / "server.log").open("wb")
    if kind == "zero":
        server = [str(HERE / "bench_loadgen_server.py")]
    else:
        server = ["-m", "open_autoglm", "serve", "--backend", "sim", "--model", "zero",
                  "--backend-option", "cost=zero", "--host", "127.0.0.1"]  # fmt: skip
    cmd = ["taskset", "-c", str(core), sys.executable, *server,
           "--port", "0", "--ready-file", str(ready)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"zero-cost server did not start: {workdir / 'server.log'}")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())["url"]


def run_ours(url: str, core: int, mode: str, target: float, n: int, out: Path) -> Point:
    load = ["--rate", f"{target}"] if mode == "rate" else ["--concurrency", f"{int(target)}"]
    cmd = ["taskset", "-c", str(core), sys.executable, "-m", "open_autoglm", "benchmark",
           "--url", url, "--api", "completions", "--model", "zero", *load,
           "--requests", str(n), "--input-len", "128", "--output-len", "64", "--ignore-eos",
           "--quiet", "--output", str(out)]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    level = json.loads(out.read_text())["levels"][0]
    return Point(
        client="open-autoglm",
        mode=mode,
        target=target,
        throughput=level["request_throughput"],
        tokens_per_s=level["output_token_throughput"],
        ttft_p50_ms=level["ttft_ms"]["median"],
        ttft_p99_ms=level["ttft_ms"]["p99"],
        sched_lag_p50_ms=level["health"]["sched_lag_p50_ms"],
        failed=level["failed"],
        wall_s=wall,
    )


def run_vllm(
    python: str, tokenizer: str, url: str, core: int, mode: str, target: float, n: int, out: Path
) -> Point:
    load = (
        ["--request-rate", f"{target}"]
        if mode == "rate"
        else ["--request-rate", "inf", "--max-concurrency", f"{int(target)}"]
    )
    cmd = ["taskset", "-c", str(core), python, "-c", VLLM_MAIN, "--backend", "openai",
           "--base-url", url, "--endpoint", "/v1/completions", "--model", "zero",
           "--tokenizer", tokenizer, "--dataset-name", "random", "--random-input-len", "128",
           "--random-output-len", "64", "--ignore-eos", "--num-prompts", str(n), *load,
           "--seed", "0", "--save-result", "--result-dir", str(out.parent),
           "--result-filename", out.name]  # fmt: skip
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    started = time.perf_counter()
    with (out.parent / (out.stem + ".log")).open("wb") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - started
    data: dict[str, Any] = json.loads(out.read_text())
    return Point(
        client="vllm bench serve",
        mode=mode,
        target=target,
        throughput=data["request_throughput"],
        tokens_per_s=data["output_throughput"],
        ttft_p50_ms=data["median_ttft_ms"],
        ttft_p99_ms=data["p99_ttft_ms"],
        sched_lag_p50_ms=None,
        failed=int(data.get("failed", 0)),
        wall_s=wall,
    )


def table(points: list[Point]) -> str:
    rows = ["| client | load | achieved req/s | output tok/s | TTFT p50 ms | TTFT p99 ms "
            "| sched. lag p50 ms | sustained |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for p in points:
        load = f"rate {p.target:g}/s" if p.mode == "rate" else f"{p.target:g} in flight"
        lag = "n/a" if p.sched_lag_p50_ms is None else f"{p.sched_lag_p50_ms:.3f}"
        ok = ("yes" if p.sustained else "no") if p.mode == "rate" else "-"
        rows.append(f"| {p.client} | {load} | {p.throughput:,.0f} | {p.tokens_per_s:,.0f} "
                    f"| {p.ttft_p50_ms:.1f} | {p.ttft_p99_ms:.1f} | {lag} | {ok} |")  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="250,500,750,1000,1250,1500,1750,2000")
    parser.add_argument("--seconds", type=float, default=8.0, help="per open-loop point")
    parser.add_argument("--closed", type=int, default=256, help="closed-loop concurrency")
    parser.add_argument("--closed-requests", type=int, default=6000)
    parser.add_argument("--server", choices=("zero", "sim"), default="zero")
    parser.add_argument("--server-core", type=int, default=1)
    parser.add_argument("--client-core", type=int, default=0)
    parser.add_argument("--vllm-python", help="python of a venv with vLLM installed")
    parser.add_argument("--tokenizer", help="tokenizer folder for vllm bench serve")
    parser.add_argument("--json", type=Path, help="also write the points here")
    args = parser.parse_args()
    if args.vllm_python and not args.tokenizer:
        parser.error("--vllm-python needs --tokenizer (vllm bench serve runs offline)")
    rates = [float(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as tmp:
        work = Path(tmp)
        server, url = start_server(args.server_core, work, args.server)
        points: list[Point] = []
        try:
            plan = [("rate", r, max(100, int(r * args.seconds))) for r in rates]
            plan.append(("closed", float(args.closed), args.closed_requests))
            for k, (mode, target, n) in enumerate(plan):
                ours = run_ours(url, args.client_core, mode, target, n, work / f"ours-{k}.json")
                points.append(ours)
                print(table([ours]).splitlines()[-1], file=sys.stderr, flush=True)
                if args.vllm_python:
                    theirs = run_vllm(args.vllm_python, args.tokenizer, url, args.client_core,
                                      mode, target, n, work / f"vllm-{k}.json")  # fmt: skip
                    points.append(theirs)
                    print(table([theirs]).splitlines()[-1], file=sys.stderr, flush=True)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(10)
    print(table(points))
    for client in sorted({p.client for p in points}):
        best = max((p.target for p in points if p.client == client and p.sustained), default=0)
        print(f"\n{client}: highest sustained open-loop rate {best:g} req/s", end="")
    print(f"\n\nserver: {args.server}; load average at the end: {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps([p.__dict__ for p in points], indent=2))


if __name__ == "__main__":
    main()
