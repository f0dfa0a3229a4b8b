"""The telemetry contract of design.md: span names, attribute keys, metric names.

Everything that dashboards, analysis and tests rely on is named here once.
"""

from typing import Final

# ---------------------------------------------------------------- instrumentation scope
TRACER_NAME: Final = "open_autoglm"
SERVER_SERVICE_NAME: Final = "open-autoglm-server"
PROXY_SERVICE_NAME: Final = "open-autoglm-proxy"
LOADGEN_SERVICE_NAME: Final = "open-autoglm-loadgen"

# ---------------------------------------------------------------- span names
SPAN_TOKENIZE: Final = "tokenize"
SPAN_PREPROCESS: Final = "preprocess"
SPAN_QUEUE: Final = "queue"
SPAN_PREFILL: Final = "prefill"
SPAN_DECODE: Final = "decode"
SPAN_DETOKENIZE: Final = "detokenize"
STAGES: Final = (
    SPAN_TOKENIZE,
    SPAN_PREPROCESS,
    SPAN_QUEUE,
    SPAN_PREFILL,
    SPAN_DECODE,
    SPAN_DETOKENIZE,
)
EVENT_FIRST_TOKEN: Final = "first_token"
# children of the tracing proxy's SERVER span (open-autoglm proxy)
SPAN_UPSTREAM_HEADERS: Final = "upstream.headers"  # request sent -> upstream response headers
SPAN_FIRST_OUTPUT: Final = "upstream.first_output"  # response headers -> first output chunk
SPAN_STREAMING: Final = "upstream.streaming"  # first output chunk -> end of the response
PROXY_STAGES: Final = (SPAN_UPSTREAM_HEADERS, SPAN_FIRST_OUTPUT, SPAN_STREAMING)

OPERATION_CHAT: Final = "chat"
OPERATION_TEXT_COMPLETION: Final = "text_completion"


def client_span_name(operation: str, model: str) -> str:
    """The CLIENT span of one request: ``{operation} {model}``, e.g. ``chat smollm2-135m``."""
    return f"{operation} {model}"


def server_span_name(route: str) -> str:
    """The SERVER span as FastAPI instrumentation names it, e.g. ``POST /v1/chat/completions``."""
    return f"POST {route}"


# ---------------------------------------------------------------- GenAI semconv attributes
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
#: Prompt and completion as GenAI semconv message JSON; recorded only on opt-in
#: (``OPEN_AUTOGLM_CAPTURE_CONTENT``), never by default.
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
ERROR_TYPE: Final = "error.type"

#: ``gen_ai.provider.name`` (required on every GenAI span and metric). Our server names its
#: backend (``sim``, ``onnxruntime``, ``tensorrt``, ``vllm``): the engine that generated. The
#: load generator, speaking the OpenAI API to a server it may know nothing about, says
#: ``openai`` as the conventions ask of OpenAI-compatible clients, unless told the provider
#: (a managed run knows its backend).
PROVIDER_OPENAI: Final = "openai"

# ---------------------------------------------------------------- HTTP and server semconv (stable)
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
HTTP_ROUTE: Final = "http.route"
URL_PATH: Final = "url.path"
URL_SCHEME: Final = "url.scheme"
URL_FULL: Final = "url.full"
NETWORK_PROTOCOL_VERSION: Final = "network.protocol.version"
CLIENT_ADDRESS: Final = "client.address"
CLIENT_PORT: Final = "client.port"
USER_AGENT_ORIGINAL: Final = "user_agent.original"

# ---------------------------------------------------------------- project attributes
ATTR_BACKEND: Final = "autoglm.backend"
#: ``autoglm.backend`` of the proxy's spans and the provider label of its metrics.
BACKEND_PROXY: Final = "proxy"
ATTR_REQUEST_ID: Final = "autoglm.request.id"
ATTR_QUEUE_DEPTH: Final = "autoglm.queue.depth"
ATTR_BATCH_SIZE: Final = "autoglm.batch.size"
ATTR_BATCH_CAP: Final = "autoglm.batch.cap"  # adaptive batching's cap at admission
ATTR_MEAN_BATCH_SIZE: Final = "autoglm.batch.mean_size"
ATTR_PROMPT_TOKENS: Final = "autoglm.prompt.tokens"
ATTR_CACHED_TOKENS: Final = "autoglm.prompt.cached_tokens"
ATTR_OUTPUT_TOKENS: Final = "autoglm.output.tokens"
ATTR_DECODE_STEPS: Final = "autoglm.decode.steps"
ATTR_PREEMPTIONS: Final = "autoglm.decode.preemptions"
ATTR_IMAGE_COUNT: Final = "autoglm.image.count"
ATTR_IMAGE_BYTES: Final = "autoglm.image.bytes"
ATTR_IMAGE_PIXELS: Final = "autoglm.image.pixels"
ATTR_CANCELLED: Final = "autoglm.cancelled"
ATTR_SIMULATED: Final = "autoglm.simulated"
ATTR_LEVEL: Final = "autoglm.level"
#: On a span derived from another system's telemetry: the name of the span it came from
#: (``llm_request`` for the stages drawn from vLLM's own span).
ATTR_DERIVED_FROM: Final = "autoglm.derived_from"
ATTR_OUTPUT_CHUNKS: Final = "autoglm.output.chunks"  # streamed chunks carrying output (proxy)
ATTR_UPSTREAM: Final = "autoglm.upstream"  # the proxy's upstream base URL
#: Probability with which the tail sampler kept this request's spans (1.0: always kept, e.g.
#: an error or a slow request); analysis weights a kept request by ``1 / ratio``.
ATTR_SAMPLING_RATIO: Final = "autoglm.sampling.ratio"
#: Why the request was kept: ``error``, ``slow``, ``parent`` (the caller sampled it), ``ratio``.
ATTR_SAMPLING_REASON: Final = "autoglm.sampling.reason"

# ---------------------------------------------------------------- resource attributes (server)
#: Where the engine really runs, from ``Backend.runtime()``: ``autoglm.backend.device`` (cpu,
#: cuda), ``autoglm.backend.execution_provider`` (onnxruntime), ``autoglm.backend.kv_cache``.
RESOURCE_RUNTIME_PREFIX: Final = "autoglm.backend."


def runtime_resource_attributes(backend: str, runtime: dict[str, str]) -> dict[str, str]:
    """The server's resource attributes for ``backend`` and its ``runtime()``."""
    return {ATTR_BACKEND: backend} | {RESOURCE_RUNTIME_PREFIX + k: v for k, v in runtime.items()}


# ---------------------------------------------------------------- Prometheus metrics (server)
METRIC_TTFT: Final = "gen_ai_server_time_to_first_token_seconds"
METRIC_TPOT: Final = "gen_ai_server_time_per_output_token_seconds"
METRIC_REQUEST_DURATION: Final = "gen_ai_server_request_duration_seconds"
METRIC_STAGE_DURATION: Final = "autoglm_stage_duration_seconds"
METRIC_QUEUE_DEPTH: Final = "autoglm_queue_depth"
METRIC_BATCH_SIZE: Final = "autoglm_running_batch_size"
METRIC_BATCH_CAP: Final = "autoglm_batch_cap"  # adaptive batching (--target-tpot) only
METRIC_PROMPT_TOKENS: Final = "autoglm_prompt_tokens"  # exposed as ..._total
METRIC_GENERATION_TOKENS: Final = "autoglm_generation_tokens"  # exposed as ..._total
METRIC_REQUESTS: Final = "autoglm_requests"  # exposed as ..._total
METRIC_REQUEST_ERRORS: Final = "autoglm_request_errors"  # exposed as ..._total
#: The standard process families of ``prometheus_client``'s ``ProcessCollector`` (Linux).
METRIC_PROCESS_RSS: Final = "process_resident_memory_bytes"
METRIC_PROCESS_CPU: Final = "process_cpu_seconds"  # exposed as ..._total
#: Peak RSS since serving began: the kernel's high-water mark (Linux ``VmHWM``), reset when
#: the model has loaded (and again by whoever resets it: a managed run, at every sample).
METRIC_PROCESS_PEAK_RSS: Final = "autoglm_process_peak_resident_memory_bytes"
#: Peak RSS from process start until the model was prepared and loaded (set once).
METRIC_PROCESS_LOAD_PEAK_RSS: Final = "autoglm_process_load_peak_resident_memory_bytes"
METRIC_GPU_MEMORY_USED: Final = "autoglm_gpu_memory_used_bytes"
METRIC_GPU_MEMORY_TOTAL: Final = "autoglm_gpu_memory_total_bytes"
METRIC_GPU_UTILIZATION: Final = "autoglm_gpu_utilization_ratio"
# span export (telemetry/_batch.py): every span handed to export is exported or counted dropped
METRIC_SPANS_EXPORTED: Final = "autoglm_spans_exported"  # exposed as ..._total
METRIC_SPANS_DROPPED: Final = "autoglm_spans_dropped"  # exposed as ..._total
METRIC_SPANS_QUEUED: Final = "autoglm_spans_queued"  # spans waiting for export now
METRIC_TRACES_SAMPLED_OUT: Final = "autoglm_traces_sampled_out"  # tail sampler, ..._total
#: The proxy's upstream (``upstream`` label: its base URL without credentials), value 1:
#: tells a scraper of the proxy's page where the server's own ``/metrics`` is.
METRIC_PROXY_UPSTREAM: Final = "autoglm_proxy_upstream_info"
LABEL_UPSTREAM: Final = "upstream"


def prometheus_label(attribute: str) -> str:
    """An attribute's name as a Prometheus label, as the OpenTelemetry Prometheus exporter
    writes it: ``gen_ai.request.model`` -> ``gen_ai_request_model``."""
    return attribute.replace(".", "_")


# metric labels: the semantic conventions' attribute names where one exists
LABEL_MODEL: Final = "gen_ai_request_model"
LABEL_PROVIDER: Final = "gen_ai_provider_name"
LABEL_OPERATION: Final = "gen_ai_operation_name"
LABEL_ERROR_TYPE: Final = "error_type"
LABEL_STAGE: Final = "stage"
LABEL_FINISH_REASON: Final = "finish_reason"
LABEL_GPU: Final = "gpu"
EXEMPLAR_TRACE_ID: Final = "trace_id"
