"""The library's vocabulary the parsers need before any library is imported.

``--help`` lists these choices and defaults, and must not import the heavy libraries
(aiohttp, numpy, duckdb, fastapi) to do so. Each value here is a copy of a library constant;
``tests/unit/test_command_choices.py`` checks that every copy equals its source.
"""

from __future__ import annotations

from typing import Final

#: ``open_autoglm.instrumented_servers.backend_names()``
BACKENDS: Final = ("onnxruntime", "sim", "tensorrt", "vllm")
#: ``open_autoglm.instrumented_servers.ServerConfig().max_body_bytes``
SERVER_MAX_BODY_BYTES: Final = 32 * 1024 * 1024
#: ``ServerConfig().header_timeout_s`` and ``.body_timeout_s``
SERVER_HEADER_TIMEOUT_S: Final = 30.0
SERVER_BODY_TIMEOUT_S: Final = 30.0
#: ``open_autoglm.collector.DEFAULT_MAX_BODY_BYTES``
COLLECTOR_MAX_BODY_BYTES: Final = 20 * 1024 * 1024
#: ``open_autoglm.loadgen.APIS``
APIS: Final = ("chat", "completions")
#: ``open_autoglm.loadgen.ARRIVALS``
ARRIVALS: Final = ("constant", "poisson", "gamma")
#: ``open_autoglm.loadgen.PROFILES``
PROFILES: Final = ("single", "concurrency", "rate", "step", "sweep")
#: ``open_autoglm.loadgen.DATASETS``
DATASETS: Final = ("synthetic", "sharegpt", "jsonl")
#: ``open_autoglm.loadgen.DISTRIBUTIONS``
DISTRIBUTIONS: Final = ("fixed", "uniform", "normal", "lognormal")
#: ``open_autoglm.loadgen.IMAGE_FORMATS``
IMAGE_FORMATS: Final = ("png", "jpeg", "webp")
#: ``open_autoglm.analysis.COMPARE_FORMATS``
COMPARE_FORMATS: Final = ("text", "markdown", "csv", "html", "json")
#: ``open_autoglm.instrumented_servers.models.VARIANTS``
MODEL_VARIANTS: Final = ("hf", "onnx-fp32", "onnx-int4")
#: ``open_autoglm.instrumented_servers.models.DEFAULT_ONNX_VARIANT``
DEFAULT_MODEL_VARIANT: Final = "onnx-int4"
#: ``sorted(open_autoglm.instrumented_servers.models.KNOWN_MODELS)``
KNOWN_MODELS: Final = ("smollm2-135m",)
#: ``open_autoglm.telemetry.env.ENV_GRAFANA_TOKEN``
ENV_GRAFANA_TOKEN: Final = "GRAFANA_TOKEN"
