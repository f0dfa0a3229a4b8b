"""What a run ran on, as ``run.json`` and the report record it (the probe is in ``run/``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Hardware:
    """What the run ran on (``hardware`` of ``run.json`` and of the report's ``run``)."""

    cpu_model: str | None = None
    cpu_cores: int | None = None
    platform: str | None = None
    python: str | None = None
    gpus: list[str] = field(default_factory=list)  # NVML's device names
    gpu_note: str | None = None  # why no GPU was seen, when none was
