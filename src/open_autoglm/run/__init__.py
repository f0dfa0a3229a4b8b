"""The managed run: collector, server, load and report started and stopped together; the
attached run (the load against a server we did not start, with its spans and metrics); the
sampler of the server's ``/metrics`` and the hardware probe. The one package that knows every
part; the ``benchmark`` command calls it."""

from open_autoglm.run._attached_run import (
    DEFAULT_SPANS_WAIT_S,
    OTLP_GRPC_PORT,
    OTLP_HTTP_PORT,
    AttachedTarget,
    default_metrics_url,
    run_attached,
    server_settings,
)
from open_autoglm.run._child_watch import ChildDeath, ChildWatch
from open_autoglm.run._errors import ChildDiedError, RunDirectoryError, RunError
from open_autoglm.run._hardware import cpu_model, hardware
from open_autoglm.run._managed_run import prepare_run_dir, run_managed
from open_autoglm.run._memory_watch import ServerMemoryWatch
from open_autoglm.run._metric_sampler import MetricSampler
from open_autoglm.run._server import ManagedServer
from open_autoglm.run._server_families import SAMPLE_FAMILIES, detect_server, parse_sample

__all__ = [
    "DEFAULT_SPANS_WAIT_S",
    "OTLP_GRPC_PORT",
    "OTLP_HTTP_PORT",
    "SAMPLE_FAMILIES",
    "AttachedTarget",
    "ChildDeath",
    "ChildDiedError",
    "ChildWatch",
    "ManagedServer",
    "MetricSampler",
    "RunDirectoryError",
    "RunError",
    "ServerMemoryWatch",
    "cpu_model",
    "default_metrics_url",
    "detect_server",
    "hardware",
    "parse_sample",
    "prepare_run_dir",
    "run_attached",
    "run_managed",
    "server_settings",
]
