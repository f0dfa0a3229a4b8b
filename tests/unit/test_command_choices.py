"""The parsers' copies of the library's vocabulary (``commands/_choices.py``) equal their
sources, so ``--help`` stays light without drifting from what the library accepts."""

from __future__ import annotations

from open_autoglm import analysis, collector, instrumented_servers, loadgen, telemetry
from open_autoglm.commands import _choices as choices
from open_autoglm.instrumented_servers import models


def test_each_copy_equals_the_library_constant() -> None:
    assert tuple(instrumented_servers.backend_names()) == choices.BACKENDS
    assert instrumented_servers.ServerConfig().max_body_bytes == choices.SERVER_MAX_BODY_BYTES
    assert instrumented_servers.ServerConfig().header_timeout_s == choices.SERVER_HEADER_TIMEOUT_S
    assert instrumented_servers.ServerConfig().body_timeout_s == choices.SERVER_BODY_TIMEOUT_S
    assert choices.COLLECTOR_MAX_BODY_BYTES == collector.DEFAULT_MAX_BODY_BYTES
    assert choices.APIS == loadgen.APIS
    assert choices.ARRIVALS == loadgen.ARRIVALS
    assert choices.PROFILES == loadgen.PROFILES
    assert choices.DATASETS == loadgen.DATASETS
    assert choices.DISTRIBUTIONS == loadgen.DISTRIBUTIONS
    assert choices.IMAGE_FORMATS == loadgen.IMAGE_FORMATS
    assert choices.COMPARE_FORMATS == analysis.COMPARE_FORMATS
    assert choices.MODEL_VARIANTS == models.VARIANTS
    assert choices.DEFAULT_MODEL_VARIANT == models.DEFAULT_ONNX_VARIANT
    assert tuple(sorted(models.KNOWN_MODELS)) == choices.KNOWN_MODELS
    assert choices.ENV_GRAFANA_TOKEN == telemetry.env.ENV_GRAFANA_TOKEN
