"""Model preparation: known models from installed wheels into HF and ONNX folders.

The public path of :mod:`open_autoglm.instrumented_servers.backends.onnxruntime.models`, where
the code lives (the ONNX variants are what it mostly builds; vLLM runs its HF folder).
Importing this module imports no engine: numpy and onnx load only when a model is prepared.
"""

from open_autoglm.instrumented_servers.backends.onnxruntime.models import (
    DEFAULT_ONNX_VARIANT,
    KNOWN_MODELS,
    VARIANTS,
    KnownModel,
    ModelPreparationError,
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
