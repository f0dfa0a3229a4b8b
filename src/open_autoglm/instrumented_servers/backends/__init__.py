"""Backends by name, imported lazily so the base install needs no engine."""

from __future__ import annotations

import importlib
import importlib.util
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


#: name -> (modules the engine needs, the extra that installs them).
_ENGINES: dict[str, tuple[tuple[str, ...], str]] = {
    "onnxruntime": (("onnxruntime",), "onnx"),
    "tensorrt": (("onnxruntime",), "onnx-gpu"),
    "vllm": (("vllm",), "vllm"),
}


class UnknownBackendError(ServerError, ValueError):
    pass


class MissingEngineError(ServerError, ImportError):
    """The backend's engine is not installed; the message names the extra to install."""


def _missing(name: str, module: str) -> MissingEngineError:
    extra = _ENGINES[name][1] if name in _ENGINES else None
    how = f": pip install 'open-autoglm[{extra}]'" if extra else ""
    return MissingEngineError(f"the {name} backend needs {module}, which is not installed{how}")


def check_backend_installed(name: str) -> None:
    """Raise :class:`MissingEngineError` when the engine of backend ``name`` is not
    importable (the base install has only ``sim``); unknown names are left to
    :func:`build_backend`."""
    modules, _ = _ENGINES.get(name, ((), ""))
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a module set to None, or a broken package
            found = False
        if not found:
            raise _missing(name, module)


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
    """Build the backend ``options.name``; engine errors surface as the backend's own.

    Raises :class:`UnknownBackendError` for a name not in :func:`backend_names`, and
    :class:`MissingEngineError` (one line naming the extra) when its engine is not installed.
    """
    target = _REGISTRY.get(options.name)
    if target is None:
        raise UnknownBackendError(
            f"unknown backend {options.name!r}; choose one of {', '.join(backend_names())}"
        )
    check_backend_installed(options.name)
    module_name, _, factory_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # an engine's own dependency missing: the same one line
        if exc.name is None or exc.name.startswith("open_autoglm"):
            raise
        raise _missing(options.name, exc.name) from exc
    factory = getattr(module, factory_name)
    backend: Backend = factory(options)
    if options.target_tpot_ms is not None and not backend.adaptive_batching:
        raise ValueError(f"--target-tpot is not supported by the {options.name} backend")
    return backend


__all__ = [
    "BackendOptions",
    "MissingEngineError",
    "UnknownBackendError",
    "backend_names",
    "build_backend",
    "check_backend_installed",
]
