"""Our instrumented vLLM server against vLLM's own OpenAI server: same engine, same load.

Side by side in one run, on the same model (SmolLM2-135M, the prepared Hugging Face folder)
and the same engine flags (``VLLM_CPU_KVCACHE_SPACE=1``, ``dtype=bfloat16``, eager mode,
``max_model_len``, ``max_num_seqs``):

* A: ``open-autoglm serve --backend vllm --model smollm2-135m``, tracing on (100% sampled,
  OTLP/HTTP to a receiver in this process), as a user runs it;
* B: ``python -m vllm.entrypoints.openai.api_server --model FOLDER`` (the ``vllm`` console
  script of vllm-cpu fails).

Both servers stay up; the same client (our load generator, closed loop, synthetic prompts of
``--input-len`` tokens, ``--output-len`` tokens with ``ignore_eos``) drives them in turn,
A, B, A, B, ... to cancel drift, each round with fresh prompts (same for A and B within a
round) so vLLM's prefix cache helps neither. Reported: output tokens/s (ratio A/B, target
>= 0.95) and p50 TTFT (target <= +5%), per round and pooled; the load average around each
round; the CPU seconds each server's process group used, and what the idle one used while
the other was measured (interference).

Run with the vLLM venv (``scripts/install-vllm-cpu.sh``)::

    .venv-vllm/bin/python benchmarks/bench_vllm_server.py [--rounds 2] [--concurrency 8]
        [--requests 64] [--input-len 64] [--output-len 32] [--max-num-seqs 8]

vLLM's caches and temporary files go to a temporary folder; servers listen on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from open_autoglm.instrumented_servers.models import resolve_model
from open_autoglm.loadgen import (
    BenchmarkConfig,
    EndpointConfig,
    LengthDistribution,
    LevelResult,
    ProfileConfig,
    WorkloadConfig,
    run_benchmark,
)
from open_autoglm.testing import OtlpSink, free_port

MODEL = "smollm2-135m"
_TICKS = os.sysconf("SC_CLK_TCK")


def _vllm_env(workspace: Path) -> dict[str, str]:
    """vLLM's caches and temporary files inside ``workspace`` (as the integration tests)."""
    for sub in ("vllm-cache", "vllm-config", "tmp"):
        (workspace / sub).mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CACHE_ROOT": str(workspace / "vllm-cache"),
        "VLLM_CONFIG_ROOT": str(workspace / "vllm-config"),
        "TMPDIR": str(workspace / "tmp"),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
    }


@dataclass
class Server:
    """One server in its own process group (vLLM spawns an engine-core child)."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    log: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    startup_s: float = 0.0
    results: list[LevelResult] = field(default_factory=list)
    busy_cpu_s: list[float] = field(default_factory=list)  # during its own rounds
    idle_cpu_s: list[float] = field(default_factory=list)  # during the other's rounds

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float) -> None:
        started = time.monotonic()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                start_new_session=True,
            )  # fmt: skip
        deadline = started + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    tail = self.log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{tail}")
                try:
                    if client.get(f"{self.url}/health").status_code == 200:
                        self.startup_s = time.monotonic() - started
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)  # poll interval of the readiness probe
        self.stop()
        raise RuntimeError(f"{self.name} not healthy after {timeout_s} s (log: {self.log})")

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of every live process in the group."""
        if self.proc is None:
            return 0.0
        total = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == self.proc.pid:  # field 5: process group
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / _TICKS

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM to the group, SIGKILL to whatever is left after ``timeout_s``."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.proc.poll()
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self.proc.wait()


def load(
    url: str, args: argparse.Namespace, tokenizer: Path, seed: int, requests: int
) -> LevelResult:
    config = BenchmarkConfig(
        endpoint=EndpointConfig(url=url, api=args.api, model=MODEL, ignore_eos=True),
        profile=ProfileConfig(kind="concurrency", concurrency=args.concurrency, requests=requests),
        workload=WorkloadConfig(
            input_len=LengthDistribution(args.input_len),
            output_len=LengthDistribution(args.output_len),
            output_len_from_dataset=False,
            seed=seed,
        ),
        seed=seed,
        output_path=None,
        tokenizer_path=tokenizer,
    )
    level = run_benchmark(config).levels[0]
    if level.failed or level.succeeded != requests:
        raise RuntimeError(f"{url}: {level.failed} failed of {requests}: {level.errors}")
    return level


def wait_for_quiet(threshold: float, max_wait_s: float) -> None:
    """Wait (polling) until the 1-minute load average is below ``threshold``, at most
    ``max_wait_s``; the machine may be shared."""
    deadline = time.monotonic() + max_wait_s
    while os.getloadavg()[0] >= threshold and time.monotonic() < deadline:
        time.sleep(5.0)  # poll interval; the load average moves slowly
    now = os.getloadavg()[0]
    if now >= threshold:
        print(f"note: load average {now:.2f} still >= {threshold} after {max_wait_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="A,B pairs (default 2)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=64, help="per server per round")
    parser.add_argument("--input-len", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--max-num-seqs", type=int, default=8, help="both engines")
    parser.add_argument("--max-model-len", type=int, default=512)
    parser.add_argument("--api", choices=("chat", "completions"), default="chat")
    parser.add_argument("--startup-timeout", type=float, default=420.0)
    parser.add_argument("--quiet-load", type=float, default=2.5, help="wait for loadavg below")
    parser.add_argument("--quiet-wait", type=float, default=180.0, help="at most seconds")
    args = parser.parse_args()

    folder = resolve_model(MODEL, variant="hf")
    tokenizer = folder / "tokenizer.json"
    with tempfile.TemporaryDirectory(prefix="bench-vllm-") as tmp, OtlpSink(False) as sink:
        work = Path(tmp)
        env = _vllm_env(work)
        ours_cmd = [sys.executable, "-m", "open_autoglm", "serve", "--backend", "vllm",
                    "--model", MODEL, "--host", "127.0.0.1", "--max-model-len",
                    str(args.max_model_len), "--max-batch-size", str(args.max_num_seqs),
                    "--otlp-endpoint", sink.endpoint, "--otlp-protocol", "http/protobuf",
                    "--backend-option", "dtype=bfloat16",
                    "--backend-option", "enforce_eager=true"]  # fmt: skip
        theirs_cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                      "--model", str(folder), "--served-model-name", MODEL,
                      "--host", "127.0.0.1", "--max-model-len", str(args.max_model_len),
                      "--max-num-seqs", str(args.max_num_seqs), "--dtype", "bfloat16",
                      "--enforce-eager", "--seed", "0"]  # fmt: skip
        ours = Server("open-autoglm serve", ours_cmd, env, work / "ours.log", free_port())
        ours.cmd += ["--port", str(ours.port)]
        theirs = Server("vllm api_server", theirs_cmd, env, work / "vllm.log", free_port())
        theirs.cmd += ["--port", str(theirs.port)]
        servers = (ours, theirs)
        loads: list[tuple[float, float]] = []
        run_started = time.monotonic()
        try:
            for server in servers:
                print(f"starting {server.name} ...", file=sys.stderr, flush=True)
                server.start(args.startup_timeout)
                print(f"  healthy in {server.startup_s:.0f} s", file=sys.stderr, flush=True)
            for server in servers:  # warm-up, not measured
                load(server.url, args, tokenizer, seed=1000, requests=args.concurrency)
            wait_for_quiet(args.quiet_load, args.quiet_wait)
            for r in range(args.rounds):
                for server in servers:
                    other = theirs if server is ours else ours
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
                server.stop()
        report(args, ours, theirs, loads, sink.span_count, time.monotonic() - run_started)


def _p50(levels: list[LevelResult]) -> float:
    return statistics.median(lv.ttft_ms.median or 0.0 for lv in levels)


def report(
    args: argparse.Namespace,
    ours: Server,
    theirs: Server,
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
        for server in (ours, theirs):
            lv = server.results[r]
            print(f"{r + 1:<6} {server.name:<20} {lv.output_token_throughput:>10.1f} "
                  f"{lv.ttft_ms.median or 0:>12.1f} {lv.tpot_ms.median or 0:>12.2f} "
                  f"{server.busy_cpu_s[r]:>11.1f} {server.idle_cpu_s[r]:>11.1f}")  # fmt: skip
    print()
    print(f"{'':<6} {'':<20} {'out tok/s':>10} {'TTFT p50 ms':>12}   per-round ratios")
    tok = {s.name: [lv.output_token_throughput for lv in s.results] for s in (ours, theirs)}
    ttft = {s.name: [lv.ttft_ms.median or 0.0 for lv in s.results] for s in (ours, theirs)}
    for server in (ours, theirs):
        print(f"{'mean':<6} {server.name:<20} {statistics.fmean(tok[server.name]):>10.1f} "
              f"{statistics.fmean(ttft[server.name]):>12.1f}")  # fmt: skip
    tok_ratios = [a / b for a, b in zip(tok[ours.name], tok[theirs.name], strict=True)]
    ttft_ratios = [a / b for a, b in zip(ttft[ours.name], ttft[theirs.name], strict=True)]
    tok_ratio = statistics.fmean(tok[ours.name]) / statistics.fmean(tok[theirs.name])
    ttft_ratio = statistics.fmean(ttft[ours.name]) / statistics.fmean(ttft[theirs.name])
    print(f"ours / vLLM: output tok/s {tok_ratio:.3f} (target >= 0.95; rounds "
          f"{', '.join(f'{x:.3f}' for x in tok_ratios)}) -> "
          f"{'met' if tok_ratio >= 0.95 else 'NOT met'}")  # fmt: skip
    print(f"ours / vLLM: p50 TTFT {ttft_ratio:.3f} (target <= 1.05; rounds "
          f"{', '.join(f'{x:.3f}' for x in ttft_ratios)}) -> "
          f"{'met' if ttft_ratio <= 1.05 else 'NOT met'}")  # fmt: skip
    cpu_ours = sum(ours.busy_cpu_s) / sum(lv.requests for lv in ours.results) * 1000
    cpu_theirs = sum(theirs.busy_cpu_s) / sum(lv.requests for lv in theirs.results) * 1000
    print(f"server CPU per request: ours {cpu_ours:.0f} ms, vLLM {cpu_theirs:.0f} ms; "
          f"spans exported by ours: {spans}")  # fmt: skip
    print(f"start-up to healthy: ours {ours.startup_s:.0f} s, vLLM {theirs.startup_s:.0f} s; "
          f"1-min load average around rounds: "
          f"{', '.join(f'{a:.2f}->{b:.2f}' for a, b in loads)}; "
          f"total {elapsed_s:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
