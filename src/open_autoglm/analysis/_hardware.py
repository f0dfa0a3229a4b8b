"""What the run ran on: CPU model and cores, GPUs where NVML finds them."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from open_autoglm.telemetry import GpuProbe


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True, slots=True)
class Hardware:
    """What the run ran on (``hardware`` of ``run.json`` and of the report's ``run``)."""

    cpu_model: str | None = None
    cpu_cores: int | None = None
    platform: str | None = None
    python: str | None = None
    gpus: list[str] = field(default_factory=list)  # NVML's device names
    gpu_note: str | None = None  # why no GPU was seen, when none was


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
