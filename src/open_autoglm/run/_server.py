"""The server of a managed run, typed: which backend, its options, its limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from open_autoglm.run._errors import RunError


@dataclass(frozen=True, slots=True)
class ManagedServer:
    """What ``open-autoglm serve`` is started with in a managed run.

    ``backend_options`` are the backend's own settings (``cost=zero``, ``decode_base_ms=5``),
    checked by the backend when it starts; the other fields are the server's common limits,
    ``None`` when not given (the server's default applies). ``target_tpot_ms`` turns adaptive
    batching on. Raises :class:`RunError` on a limit below 1 or an empty backend name.
    """

    backend: str
    model: str | None = None
    backend_options: Mapping[str, str] = field(default_factory=dict)
    max_batch_size: int | None = None
    max_model_len: int | None = None
    device: str | None = None
    target_tpot_ms: float | None = None
    start_timeout_s: float = 900.0  # first use of a model may prepare it

    def __post_init__(self) -> None:
        if not self.backend:
            raise RunError("a managed run needs a backend name, e.g. sim")
        for name in ("max_batch_size", "max_model_len"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise RunError(f"{name} must be at least 1, got {value}")
        if self.target_tpot_ms is not None and self.target_tpot_ms <= 0:
            raise RunError(f"target_tpot_ms must be positive, got {self.target_tpot_ms}")
        if self.start_timeout_s <= 0:
            raise RunError(f"start_timeout_s must be positive, got {self.start_timeout_s}")
        object.__setattr__(self, "backend_options", MappingProxyType(dict(self.backend_options)))

    def server_args(self) -> list[str]:
        """The ``serve`` arguments these settings stand for, less backend, model and OTLP
        (recorded in ``run.json`` as ``server_args``)."""
        out: list[str] = []
        for key, value in self.backend_options.items():
            out += ["--backend-option", f"{key}={value}"]
        for flag, given in (
            ("--max-batch-size", self.max_batch_size),
            ("--max-model-len", self.max_model_len),
            ("--device", self.device),
            ("--target-tpot", self.target_tpot_ms),
        ):
            if given is not None:
                out += [flag, str(given)]
        return out

    def serve_args(self, otlp_endpoint: str, export_stats: Path | None = None) -> list[str]:
        """The full ``open-autoglm serve`` command line, exporting spans to ``otlp_endpoint``
        (and writing its export counts to ``export_stats`` on exit)."""
        out = ["--backend", self.backend]
        if self.model:
            out += ["--model", self.model]
        stats = [] if export_stats is None else ["--export-stats", str(export_stats)]
        return [
            *out,
            *self.server_args(),
            "--otlp-endpoint",
            otlp_endpoint,
            "--otlp-protocol",
            "http/json",
            *stats,
        ]
