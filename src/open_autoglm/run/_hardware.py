"""What the run ran on: CPU model and cores, GPUs where NVML finds them."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from open_autoglm.telemetry import GpuProbe


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    probe = GpuProbe()
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gpus": probe.names(),
        "gpu_note": None if probe.available else probe.reason,
    }
