"""The load generator: workloads, arrival processes and load profiles, the streaming client,
per-request records, results, live progress, client-health checks and distributed runs
over Ray workers (Ray itself is imported only when such a run starts)."""

from open_autoglm.loadgen._arrivals import ARRIVALS, Arrival, arrival_offsets, level_rng
from open_autoglm.loadgen._client import StreamingClient
from open_autoglm.loadgen._distributed import run_distributed
from open_autoglm.loadgen._endpoint import APIS, Api, EndpointConfig
from open_autoglm.loadgen._errors import (
    Cancelled,
    ConfigError,
    ConnectError,
    DatasetError,
    HTTPStatusError,
    IncompleteStream,
    MalformedStream,
    ReadTimeout,
    RequestError,
    StreamDropped,
    StreamError,
)
from open_autoglm.loadgen._health import ClientHealth, assess
from open_autoglm.loadgen._images import EncodedImage, synthetic_image
from open_autoglm.loadgen._profiles import PROFILES, Level, ProfileConfig
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
from open_autoglm.loadgen._worker_pool import DistributedConfig, DistributedError
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
    "DistributedConfig",
    "DistributedError",
    "EncodedImage",
    "EndpointConfig",
    "HTTPStatusError",
    "IncompleteStream",
    "LengthDistribution",
    "Level",
    "LevelResult",
    "MalformedStream",
    "NullProgress",
    "ProfileConfig",
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
    "parse_slo",
    "prepare_prompts",
    "read_records",
    "run_benchmark",
    "run_benchmark_async",
    "run_distributed",
    "synthetic_image",
]
