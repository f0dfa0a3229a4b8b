"""The onnxruntime backend on the real SmolLM2-135M: answers, batching, cancellation, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from open_autoglm.instrumented_servers import create_app
from open_autoglm.instrumented_servers._backend import (
    ChatMessage,
    Finished,
    GenerationRequest,
    SamplingParams,
    TokenDelta,
)
from open_autoglm.instrumented_servers.backends import BackendOptions, build_backend
from open_autoglm.instrumented_servers.backends.onnxruntime._backend import (
    OnnxRuntimeBackend,
    OrtConfig,
)
from open_autoglm.instrumented_servers.backends.onnxruntime._session import (
    ExecutionProviderError,
    ModelLoadError,
)
from open_autoglm.instrumented_servers.models import Variant

pytestmark = pytest.mark.slow

QUESTIONS = (
    "What is the capital of France?",
    "Name three colors.",
    "What is 2+2?",
    "Write a haiku about the sea.",
    "Who wrote Hamlet?",
    "Say hello in Spanish.",
    "What is the largest planet?",
    "Define gravity briefly.",
)


@pytest.fixture(scope="session")
def engines(smollm2: dict[Variant, Path]) -> dict[str, OnnxRuntimeBackend]:
    return {
        precision: OnnxRuntimeBackend(
            "smollm2-135m",
            smollm2[f"onnx-{precision}"],
            OrtConfig(max_batch_size=8),  # type: ignore[index]
        )
        for precision in ("int4", "fp32")
    }


@pytest.fixture
async def started(engines: dict[str, OnnxRuntimeBackend]) -> AsyncIterator[None]:
    for engine in engines.values():
        await engine.start()
    yield
    for engine in engines.values():
        await engine.stop()


async def complete(
    backend: OnnxRuntimeBackend, question: str, max_tokens: int = 24
) -> tuple[str, Finished]:
    prompt = backend.render_chat([ChatMessage("user", question)])
    request = GenerationRequest("t", prompt, SamplingParams(max_tokens, temperature=0.0))
    text, finished = "", None
    async for event in backend.generate(request):
        if isinstance(event, TokenDelta):
            text += event.text
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None
    return text, finished


@pytest.mark.usefixtures("started")
@pytest.mark.parametrize("precision", ["int4", "fp32"])
async def test_greedy_answer_names_paris(
    engines: dict[str, OnnxRuntimeBackend], precision: str
) -> None:
    text, finished = await complete(engines[precision], QUESTIONS[0])
    assert "Paris" in text
    assert finished.stages.prompt_tokens > 20
    assert finished.stages.first_token_ns > finished.stages.scheduled_ns
    assert engines[precision].execution_provider == "CPUExecutionProvider"


@pytest.mark.usefixtures("started")
async def test_concurrent_requests_batch_and_match_alone(
    engines: dict[str, OnnxRuntimeBackend],
) -> None:
    # fp32: the same kernels run every row, so batching must not change a greedy answer.
    # (int4's MatMulNBits picks other kernels for other batch sizes; its answers may drift.)
    engine = engines["fp32"]
    alone = [await complete(engine, q, 16) for q in QUESTIONS]
    together = await asyncio.gather(*(complete(engine, q, 16) for q in QUESTIONS))
    assert [t for t, _ in together] == [t for t, _ in alone]
    stages = [f.stages for _, f in together]
    assert max(s.prefill_batch_size for s in stages) == len(QUESTIONS)
    assert max(s.mean_batch_size for s in stages) > 4
    assert all(s.prefill_batch_size == 1 for _, f in alone for s in [f.stages])


async def staggered(engine: OnnxRuntimeBackend) -> list[tuple[str, float]]:
    """Requests that arrive while others run and finish at different steps, so rows join a
    running batch (padded on the left), leave it, and padding columns get trimmed."""

    async def one(i: int, question: str) -> tuple[str, float]:
        await asyncio.sleep(0.15 * i)
        text, finished = await complete(engine, question, 6 + 3 * (i % 4))
        return text, finished.stages.mean_batch_size

    return list(await asyncio.gather(*(one(i, q) for i, q in enumerate(QUESTIONS))))


async def test_io_binding_keeps_answers_while_rows_join_and_leave(
    smollm2: dict[Variant, Path],
) -> None:
    # The path a GPU takes (cache on the device, reshaped by ONNX graphs between steps), run
    # here on the CPU provider: answers must be those of the plain host-array path.
    answers = {}
    for binding in ("off", "on"):
        engine = OnnxRuntimeBackend(
            "m", smollm2["onnx-fp32"], OrtConfig(max_batch_size=4, io_binding=binding)
        )
        assert engine.engine.io_binding is (binding == "on")
        # by default the prefix cache is on for the host path, off with IO binding
        assert (engine.prefix_cache is None) is (binding == "on")
        await engine.start()
        try:
            answers[binding] = await staggered(engine)
        finally:
            await engine.stop()
    assert [t for t, _ in answers["on"]] == [t for t, _ in answers["off"]]
    assert "Paris" in answers["on"][0][0]
    assert max(size for _, size in answers["on"]) > 1.5  # rows really shared the batch


async def test_prefix_cache_reuses_the_shared_head_and_keeps_answers(
    smollm2: dict[Variant, Path],
) -> None:
    # Every chat prompt starts with the same template and system prompt: with the cache, later
    # prefills compute only what follows it, and the greedy answers (fp32) are those computed
    # from scratch.
    results = {}
    for cache_mb, binding in ((0.0, "off"), (64.0, "off"), (64.0, "on")):
        config = OrtConfig(max_batch_size=4, prefix_cache_mb=cache_mb, io_binding=binding)
        engine = OnnxRuntimeBackend("m", smollm2["onnx-fp32"], config)
        await engine.start()
        try:
            first = await complete(engine, QUESTIONS[1], 6)  # fills the cache (when on)
            together = await asyncio.gather(*(complete(engine, q, 10) for q in QUESTIONS[:4]))
            again = await complete(engine, QUESTIONS[1], 6)
            results[cache_mb, binding] = [first, *together, again]
        finally:
            await engine.stop()
    scratch = [t for t, _ in results[0.0, "off"]]
    assert [t for t, _ in results[64.0, "off"]] == scratch
    assert [t for t, _ in results[64.0, "on"]] == scratch  # the cache copied to/from a device
    assert all(f.stages.cached_tokens == 0 for _, f in results[0.0, "off"])
    reused = [f.stages.cached_tokens for _, f in results[64.0, "off"]]
    assert [f.stages.cached_tokens for _, f in results[64.0, "on"]] == reused
    assert reused[0] == 0
    assert reused[1] >= 16  # the shared head, in whole 8-token blocks
    assert len(set(reused[1:5])) == 1  # one prefill: every row reuses as much as the least
    assert reused[5] > reused[1]  # the same prompt again: all but its last token's block


async def test_a_failing_prefix_cache_is_turned_off_not_the_requests(
    smollm2: dict[Variant, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine = OnnxRuntimeBackend("m", smollm2["onnx-int4"], OrtConfig(max_batch_size=2))
    assert engine.prefix_cache is not None

    def broken(*_: object) -> None:
        raise MemoryError("no room for the copy")

    monkeypatch.setattr(engine.engine, "host_columns", broken)
    await engine.start()
    try:
        text, finished = await complete(engine, QUESTIONS[0], 8)
        _, again = await complete(engine, QUESTIONS[0], 4)
    finally:
        await engine.stop()
    assert "Paris" in text
    assert finished.stages.output_tokens == 8
    assert engine.prefix_cache is None
    assert again.stages.cached_tokens == 0
    assert "prompt-prefix cache failed" in caplog.text


@pytest.mark.usefixtures("started")
async def test_cancelled_request_frees_its_slot(smollm2: dict[Variant, Path]) -> None:
    engine = OnnxRuntimeBackend("m", smollm2["onnx-int4"], OrtConfig(max_batch_size=1))
    await engine.start()
    try:
        prompt = engine.render_chat([ChatMessage("user", "Count from one to a thousand.")])
        long_request = GenerationRequest("a", prompt, SamplingParams(4000, ignore_eos=True))
        stream = engine.generate(long_request)
        seen = 0
        async for event in stream:
            seen += isinstance(event, TokenDelta)
            if seen == 3:
                break
        assert engine.load().running == 1
        await stream.aclose()  # the client went away
        _, finished = await asyncio.wait_for(complete(engine, QUESTIONS[0], 8), 30)
        assert finished.stages.output_tokens > 0
        assert engine.load().running == 0
    finally:
        await engine.stop()


def test_cuda_on_a_cpu_machine_is_a_clear_error(smollm2: dict[Variant, Path]) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime offers CUDA")
    for name, device in (("onnxruntime", "cuda"), ("tensorrt", "auto")):
        options = BackendOptions(name, model=str(smollm2["onnx-int4"]), device=device)
        with pytest.raises(ExecutionProviderError, match="onnxruntime-gpu"):
            build_backend(options)


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider':UserWarning")
def test_onnxruntime_gpu_without_a_gpu(
    smollm2: dict[Variant, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What onnxruntime-gpu does on a machine without a usable GPU: it lists CUDA, and a session
    # asked for it runs on the CPU. The default device takes the CPU; --device cuda refuses.
    import onnxruntime

    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    folder = str(smollm2["onnx-int4"])
    backend = build_backend(BackendOptions("onnxruntime", model=folder))
    assert backend.runtime()["execution_provider"] == "CPUExecutionProvider"
    assert backend.runtime()["kv_cache"] == "host"
    with pytest.raises(ExecutionProviderError, match="refusing to fall back silently"):
        build_backend(BackendOptions("onnxruntime", model=folder, device="cuda"))


def test_corrupt_or_missing_model_is_a_clear_error(
    smollm2: dict[Variant, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("tokenizer.json", "config.json"):
        (folder / name).write_bytes((smollm2["onnx-int4"] / name).read_bytes())
    with pytest.raises(ModelLoadError, match=r"has no model\.onnx"):
        OnnxRuntimeBackend("m", folder, OrtConfig())
    (folder / "model.onnx").write_bytes(b"not a protobuf" * 100)
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load"):
        OnnxRuntimeBackend("m", folder, OrtConfig())
    with pytest.raises(ModelLoadError, match="does not exist"):
        OnnxRuntimeBackend("m", tmp_path / "nowhere", OrtConfig())


async def test_chat_completions_through_the_server(
    engines: dict[str, OnnxRuntimeBackend],
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = engines["int4"]
    app = create_app(engine, tracer_provider=provider, registry=CollectorRegistry())
    await engine.start()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = {
                "model": "smollm2-135m",
                "messages": [{"role": "user", "content": QUESTIONS[0]}],
                "max_tokens": 16,
                "temperature": 0,
            }
            response = await client.post("/v1/chat/completions", json=body, timeout=60)
            models = (await client.get("/v1/models")).json()
            health = (await client.get("/health")).json()
        assert response.status_code == 200, response.text
        runtime = {"device": "cpu", "execution_provider": "CPUExecutionProvider"}
        runtime["kv_cache"] = "host"
        assert models["data"][0]["runtime"] == runtime
        assert health["runtime"] == runtime
        assert "Paris" in response.json()["choices"][0]["message"]["content"]
    finally:
        await engine.stop()
        provider.shutdown()
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    names = [s.name for s in spans]
    stages = [n for n in names if n in ("tokenize", "queue", "prefill", "decode")]
    assert stages == ["tokenize", "queue", "prefill", "decode"]
    # the engine times its incremental detokenizer: one detokenize span under decode
    by_name = {s.name: s for s in spans}
    detokenize, decode = by_name["detokenize"], by_name["decode"]
    assert detokenize.parent is not None
    assert detokenize.parent.span_id == decode.context.span_id
    assert detokenize.end_time == decode.end_time
    assert 0 < (detokenize.end_time or 0) - (detokenize.start_time or 0) < 1e9
