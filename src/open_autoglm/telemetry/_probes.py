"""Process memory and GPU probes. Without a GPU they say so; they never raise.

Peak memory comes from the kernel where it keeps one: Linux's ``VmHWM`` (``/proc/PID/status``),
the high-water mark of resident memory, which writing ``5`` to ``/proc/PID/clear_refs``
resets to the current RSS. Elsewhere (or where ``/proc`` refuses the write) the mark cannot be
reset: :func:`reset_peak_rss` says so and callers sample RSS instead.
"""

from __future__ import annotations

import logging
import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

logger = logging.getLogger(__name__)


def process_rss_bytes() -> int:
    """Resident set size of this process now."""
    return int(psutil.Process().memory_info().rss)


def process_peak_rss_bytes() -> int:
    """Peak resident set size of this process, in bytes: since the kernel's high-water mark
    was last reset (:func:`reset_peak_rss`) on Linux, else since the process started.

    The kernel updates its counters lazily, so they can trail the current RSS: take the larger.
    """
    hwm = peak_rss_bytes_of("self")
    if hwm is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        hwm = int(peak if sys.platform == "darwin" else peak * 1024)
    return max(hwm, process_rss_bytes())


def peak_rss_bytes_of(pid: int | str) -> int | None:
    """``VmHWM`` of process ``pid`` (or ``"self"``) in bytes; None without ``/proc`` (not
    Linux), or when the process is gone or not ours to read."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            value, _, unit = line.split(":", 1)[1].strip().partition(" ")
            return int(value) * (1024 if unit.strip().lower() == "kb" else 1)
    return None


def reset_peak_rss(pid: int | str = "self") -> bool:
    """Reset the kernel's high-water mark of resident memory of ``pid`` to its current RSS
    (Linux: ``5`` into ``/proc/PID/clear_refs``, which needs the process to be ours).

    Returns False where that cannot be done (not Linux, a kernel or sandbox that refuses):
    the mark then runs from the start of the process, and a peak over a window must be
    sampled instead.
    """
    if sys.platform != "linux":
        return False
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError as exc:
        logger.debug("cannot reset the peak RSS of %s: %s", pid, type(exc).__name__)
        return False
    return True


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

    def used_bytes(self) -> int | None:
        """GPU memory in use, summed over devices; None without a GPU or when NVML fails."""
        samples = self.sample()
        return sum(s.memory_used_bytes for s in samples) if samples else None

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
