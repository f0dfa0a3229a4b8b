"""The managed run: collector, server, load and report started and stopped together, the
sampler of the server's ``/metrics`` and the hardware probe. The one package that knows every
part; the ``benchmark`` command calls it."""

from open_autoglm.run._errors import RunDirectoryError, RunError
from open_autoglm.run._hardware import cpu_model, hardware
from open_autoglm.run._managed_run import prepare_run_dir, run_managed
from open_autoglm.run._memory_watch import ServerMemoryWatch
from open_autoglm.run._metric_sampler import MetricSampler, parse_sample
from open_autoglm.run._server import ManagedServer

__all__ = [
    "ManagedServer",
    "MetricSampler",
    "RunDirectoryError",
    "RunError",
    "ServerMemoryWatch",
    "cpu_model",
    "hardware",
    "parse_sample",
    "prepare_run_dir",
    "run_managed",
]
