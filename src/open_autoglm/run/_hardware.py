"""The hardware probe: CPU model and cores, GPUs where NVML finds them (as analysis's
:class:`~open_autoglm.analysis.Hardware`)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from open_autoglm.analysis import Hardware
from open_autoglm.telemetry import GpuProbe


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> Hardware:
    probe = GpuProbe()
    return Hardware(
        cpu_model=cpu_model(),
        cpu_cores=os.cpu_count(),
        platform=platform.platform(),
        python=platform.python_version(),
        gpus=probe.names(),
        gpu_note=None if probe.available else probe.reason,
    )
