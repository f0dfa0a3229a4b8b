"""Model preparation: known models from installed wheels into HF and ONNX folders."""

from open_autoglm.instrumented_servers.backends.onnxruntime.models._errors import (
    ModelPreparationError,
)
from open_autoglm.instrumented_servers.backends.onnxruntime.models._registry import (
    DEFAULT_ONNX_VARIANT,
    KNOWN_MODELS,
    VARIANTS,
    KnownModel,
    Variant,
    cache_dir,
    is_prepared,
    model_dir,
    prepare_model,
    resolve_model,
)

__all__ = [
    "DEFAULT_ONNX_VARIANT",
    "KNOWN_MODELS",
    "VARIANTS",
    "KnownModel",
    "ModelPreparationError",
    "Variant",
    "cache_dir",
    "is_prepared",
    "model_dir",
    "prepare_model",
    "resolve_model",
]
