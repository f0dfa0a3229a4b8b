"""The instrumented OpenAI-compatible server, its backend interface and backends; the request
telemetry (stage spans, histograms with exemplars) that the vLLM instrumentor reuses."""

from open_autoglm.instrumented_servers._app import create_app
from open_autoglm.instrumented_servers._backend import (
    Accepted,
    Backend,
    BackendError,
    BackendLoad,
    ChatMessage,
    ContextLengthError,
    EngineError,
    Finished,
    GenerationEvent,
    GenerationRequest,
    ImageInput,
    QueueFullError,
    SamplingParams,
    StageTimes,
    TokenDelta,
    TokenLogprob,
)
from open_autoglm.instrumented_servers._config import DEFAULT_MAX_BODY_BYTES, ServerConfig
from open_autoglm.instrumented_servers._errors import ServerError
from open_autoglm.instrumented_servers._read_timeouts import timed_http_protocol
from open_autoglm.instrumented_servers._request_telemetry import RequestTelemetry, ServedRequest
from open_autoglm.instrumented_servers._server_process import ServerProcess, ServerStartError
from open_autoglm.instrumented_servers.backends import (
    BackendOptions,
    MissingEngineError,
    UnknownBackendError,
    backend_names,
    build_backend,
    check_backend_installed,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "Accepted",
    "Backend",
    "BackendError",
    "BackendLoad",
    "BackendOptions",
    "ChatMessage",
    "ContextLengthError",
    "EngineError",
    "Finished",
    "GenerationEvent",
    "GenerationRequest",
    "ImageInput",
    "MissingEngineError",
    "QueueFullError",
    "RequestTelemetry",
    "SamplingParams",
    "ServedRequest",
    "ServerConfig",
    "ServerError",
    "ServerProcess",
    "ServerStartError",
    "StageTimes",
    "TokenDelta",
    "TokenLogprob",
    "UnknownBackendError",
    "backend_names",
    "build_backend",
    "check_backend_installed",
    "create_app",
    "timed_http_protocol",
]
