"""Backends by name, imported lazily so the base install needs no engine."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from open_autoglm.instrumented_servers._backend import Backend
from open_autoglm.instrumented_servers._errors import ServerError

#: name -> "module:factory"; the factory takes :class:`BackendOptions` and returns a Backend.
_REGISTRY: dict[str, str] = {
    "sim": "open_autoglm.instrumented_servers.backends.sim._backend:build",
    "onnxruntime": "open_autoglm.instrumented_servers.backends.onnxruntime._backend:build",
    "tensorrt": "open_autoglm.instrumented_servers.backends.onnxruntime._backend:build_tensorrt",
    "vllm": "open_autoglm.instrumented_servers.backends.vllm._backend:build",
}


class UnknownBackendError(ServerError, ValueError):
    pass


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """What every backend is built from; ``extra`` holds ``--backend-option key=value`` pairs."""

    name: str
    model: str | None = None
    served_model_name: str | None = None
    max_model_len: int | None = None
    max_batch_size: int | None = None
    max_queue: int | None = None
    device: str = "auto"
    seed: int = 0
    #: ``--target-tpot``: turns adaptive batching on in backends that support it.
    target_tpot_ms: float | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def build_backend(options: BackendOptions) -> Backend:
    """Build the backend ``options.name``; engine errors surface as the backend's own."""
    target = _REGISTRY.get(options.name)
    if target is None:
        raise UnknownBackendError(
            f"unknown backend {options.name!r}; choose one of {', '.join(backend_names())}"
        )
    module_name, _, factory_name = target.partition(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    backend: Backend = factory(options)
    if options.target_tpot_ms is not None and not backend.adaptive_batching:
        raise ValueError(f"--target-tpot is not supported by the {options.name} backend")
    return backend


__all__ = ["BackendOptions", "UnknownBackendError", "backend_names", "build_backend"]
