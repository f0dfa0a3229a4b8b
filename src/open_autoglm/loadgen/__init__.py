"""The load generator: workloads, arrival processes and load profiles, the streaming client,
per-request records, results, live progress and client-health checks."""

from open_autoglm.loadgen._arrivals import ARRIVALS, Arrival, arrival_offsets, level_rng
from open_autoglm.loadgen._client import StreamingClient
from open_autoglm.loadgen._endpoint import APIS, Api, EndpointConfig, parse_body_field, parse_header
from open_autoglm.loadgen._errors import (
    Cancelled,
    ConfigError,
    ConnectError,
    DatasetError,
    HTTPStatusError,
    IncompleteStream,
    LoadgenError,
    MalformedStream,
    ReadTimeout,
    RequestError,
    StreamDropped,
    StreamError,
)
from open_autoglm.loadgen._health import ClientHealth, assess
from open_autoglm.loadgen._images import (
    IMAGE_FORMATS,
    EncodedImage,
    ImageFormat,
    parse_size,
    synthetic_image,
)
from open_autoglm.loadgen._profiles import PROFILES, Level, ProfileConfig, ProfileKind
from open_autoglm.loadgen._progress import NullProgress, ProgressReporter, RichProgress
from open_autoglm.loadgen._records import (
    RECORD_VERSION,
    RecordWriter,
    RequestRecord,
    read_records,
)
from open_autoglm.loadgen._results import (
    RESULTS_VERSION,
    BenchmarkResults,
    LevelResult,
    Stats,
)
from open_autoglm.loadgen._runner import (
    BenchmarkConfig,
    discover_model,
    prepare_prompts,
    run_benchmark,
    run_benchmark_async,
)
from open_autoglm.loadgen._slo import Slo, parse_slo
from open_autoglm.loadgen._workloads import (
    DATASETS,
    DISTRIBUTIONS,
    LengthDistribution,
    Prompt,
    RequestSpec,
    WorkloadConfig,
    build_requests,
    load_prompts,
)

__all__ = [
    "APIS",
    "ARRIVALS",
    "DATASETS",
    "DISTRIBUTIONS",
    "IMAGE_FORMATS",
    "PROFILES",
    "RECORD_VERSION",
    "RESULTS_VERSION",
    "Api",
    "Arrival",
    "BenchmarkConfig",
    "BenchmarkResults",
    "Cancelled",
    "ClientHealth",
    "ConfigError",
    "ConnectError",
    "DatasetError",
    "EncodedImage",
    "EndpointConfig",
    "HTTPStatusError",
    "ImageFormat",
    "IncompleteStream",
    "LengthDistribution",
    "Level",
    "LevelResult",
    "LoadgenError",
    "MalformedStream",
    "NullProgress",
    "ProfileConfig",
    "ProfileKind",
    "ProgressReporter",
    "Prompt",
    "ReadTimeout",
    "RecordWriter",
    "RequestError",
    "RequestRecord",
    "RequestSpec",
    "RichProgress",
    "Slo",
    "Stats",
    "StreamDropped",
    "StreamError",
    "StreamingClient",
    "WorkloadConfig",
    "arrival_offsets",
    "assess",
    "build_requests",
    "discover_model",
    "level_rng",
    "load_prompts",
    "parse_body_field",
    "parse_header",
    "parse_size",
    "parse_slo",
    "prepare_prompts",
    "read_records",
    "run_benchmark",
    "run_benchmark_async",
    "synthetic_image",
]
