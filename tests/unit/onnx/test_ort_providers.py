"""Execution-provider choice and the no-silent-fallback check, with no model and no GPU."""

from __future__ import annotations

import pytest

from open_autoglm.instrumented_servers.backends import BackendOptions
from open_autoglm.instrumented_servers.backends.onnxruntime._backend import OrtConfig
from open_autoglm.instrumented_servers.backends.onnxruntime._session import (
    ExecutionProviderError,
    check_providers,
    choose_providers,
)

CPU_ONLY = ["CPUExecutionProvider"]
GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_cpu_and_auto_on_a_cpu_build() -> None:
    assert choose_providers("cpu", CPU_ONLY) == ("CPUExecutionProvider",)
    assert choose_providers("auto", CPU_ONLY) == ("CPUExecutionProvider",)


def test_auto_prefers_cuda_when_offered() -> None:
    assert choose_providers("auto", GPU_BUILD)[0] == "CUDAExecutionProvider"
    assert choose_providers("tensorrt", GPU_BUILD)[0] == "TensorrtExecutionProvider"


@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_gpu_device_on_a_cpu_build_is_a_clear_error(device: str) -> None:
    with pytest.raises(ExecutionProviderError, match="onnxruntime-gpu"):
        choose_providers(device, CPU_ONLY)


def test_unknown_device() -> None:
    with pytest.raises(ExecutionProviderError, match="unknown device 'tpu'"):
        choose_providers("tpu", GPU_BUILD)


def test_silent_cpu_fallback_is_refused() -> None:
    # What onnxruntime-gpu does on a machine without a usable GPU: lists CUDA, runs on CPU.
    with pytest.raises(ExecutionProviderError, match="refusing to fall back silently"):
        check_providers("cuda", GPU_BUILD[1:], ["CPUExecutionProvider"])
    assert check_providers("cuda", GPU_BUILD[1:], GPU_BUILD[1:]) == "CUDAExecutionProvider"


def test_auto_falls_back_to_the_cpu_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    # onnxruntime-gpu on a machine with no usable GPU: auto asked for CUDA first, got the CPU.
    assert check_providers("auto", GPU_BUILD[1:], CPU_ONLY) == "CPUExecutionProvider"
    assert "could not start it here" in caplog.text
    with pytest.raises(ExecutionProviderError, match="would have run on nothing"):
        check_providers("auto", GPU_BUILD[1:], [])


def test_options_are_checked_when_built() -> None:
    opts = BackendOptions("onnxruntime", model="smollm2-135m", extra={"precision": "int3"})
    with pytest.raises(ValueError, match="precision must be one of"):
        OrtConfig.from_options(opts)
    with pytest.raises(ValueError, match="unknown onnxruntime option 'beams'"):
        OrtConfig.from_options(BackendOptions("onnxruntime", extra={"beams": "2"}))
    with pytest.raises(ValueError, match="unknown device"):
        OrtConfig.from_options(BackendOptions("onnxruntime", device="npu"))
    with pytest.raises(ValueError, match="prefix_cache_mb must be 0"):
        OrtConfig.from_options(BackendOptions("onnxruntime", extra={"prefix_cache_mb": "-1"}))
    with pytest.raises(ValueError, match="io_binding must be one of auto, on, off"):
        OrtConfig.from_options(BackendOptions("onnxruntime", extra={"io_binding": "yes"}))
    assert (
        OrtConfig.from_options(BackendOptions("onnxruntime", extra={"io_binding": "on"})).io_binding
        == "on"
    )
    config = OrtConfig.from_options(BackendOptions("tensorrt", max_batch_size=4), "tensorrt")
    assert (config.device, config.max_batch_size, config.model) == ("tensorrt", 4, "smollm2-135m")
