"""Process memory and GPU probes. Without a GPU they say so; they never raise."""

from __future__ import annotations

import logging
import resource
import sys
from dataclasses import dataclass
from typing import Any

import psutil

logger = logging.getLogger(__name__)


def process_rss_bytes() -> int:
    """Resident set size of this process now."""
    return int(psutil.Process().memory_info().rss)


def process_peak_rss_bytes() -> int:
    """Peak resident set size of this process since it started.

    The kernel updates ``ru_maxrss`` lazily, so it can trail the current RSS: take the larger.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(int(peak if sys.platform == "darwin" else peak * 1024), process_rss_bytes())


@dataclass(frozen=True, slots=True)
class GpuSample:
    index: int
    name: str
    memory_used_bytes: int
    memory_total_bytes: int
    utilization_ratio: float


class GpuProbe:
    """Reads GPU memory and utilisation through NVML (``nvidia-ml-py``, imported as ``pynvml``).

    ``available`` is false, and ``reason`` says why ("no GPU: ..."), when the package is not
    installed, the NVML library is missing, or no device is present.
    """

    def __init__(self) -> None:
        self._nvml: Any = None
        self.available = False
        self.reason = ""
        self._handles: list[Any] = []
        try:
            import pynvml
        except ImportError:
            self.reason = "no GPU: nvidia-ml-py is not installed"
            return
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except pynvml.NVMLError as exc:
            self.reason = f"no GPU: {type(exc).__name__}"
            return
        if not self._handles:
            self.reason = "no GPU: NVML found no device"
            return
        self._nvml = pynvml
        self.available = True

    def names(self) -> list[str]:
        if not self.available:
            return []
        out = []
        for handle in self._handles:
            name = self._nvml.nvmlDeviceGetName(handle)
            out.append(name.decode() if isinstance(name, bytes) else str(name))
        return out

    def sample(self) -> list[GpuSample]:
        """One sample per device; an empty list without a GPU or when NVML fails mid-run."""
        if not self.available:
            return []
        samples = []
        try:
            for index, handle in enumerate(self._handles):
                memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
                util = self._nvml.nvmlDeviceGetUtilizationRates(handle)
                name = self._nvml.nvmlDeviceGetName(handle)
                samples.append(
                    GpuSample(
                        index=index,
                        name=name.decode() if isinstance(name, bytes) else str(name),
                        memory_used_bytes=int(memory.used),
                        memory_total_bytes=int(memory.total),
                        utilization_ratio=float(util.gpu) / 100.0,
                    )
                )
        except self._nvml.NVMLError as exc:
            logger.warning("GPU probe failed: %s", type(exc).__name__)
            return []
        return samples
