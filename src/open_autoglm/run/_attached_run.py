"""An attached run: the load against a server we did not start, with its spans and metrics.

:func:`run_attached` (``open-autoglm benchmark --url URL --collect-spans`` and/or
``--server-metrics``) runs the load against ``URL`` into a run directory, as a managed run
does, with what it can get of the server's side:

* ``collect_spans``: the embedded collector runs for the run, on fixed loopback ports (the
  standard OTLP ones by default, gRPC 4317 and HTTP 4318) so that a server started once with
  ``--otlp-traces-endpoint`` (vLLM) or ``OTEL_EXPORTER_OTLP_*`` (anything instrumented)
  sends there; :func:`server_settings` words what to give the server. The load generator's
  CLIENT spans go to the same store, so the report joins both sides by trace id. After the
  load, the run waits ``spans_wait_s`` for the server's last batch of spans (an OTel batch
  exporter holds spans up to 5 s by default) before the collector stops.
* ``metrics_url``: the server's Prometheus page is sampled during the run (vLLM's, SGLang's
  and TGI's families are known: :mod:`._server_families`).

The report is built from the run directory when the load ends (also on Ctrl-C).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from open_autoglm.analysis import Report, ReportOptions, RunDirectory, RunInfo
from open_autoglm.collector import CollectorConfig, CollectorProcess
from open_autoglm.loadgen import (
    RECORDS_FILE,
    BenchmarkConfig,
    BenchmarkResults,
    ProgressReporter,
    Prompt,
    run_benchmark,
)
from open_autoglm.run._errors import RunError
from open_autoglm.run._hardware import hardware
from open_autoglm.run._managed_run import prepare_run_dir, write_report
from open_autoglm.run._metric_sampler import MetricSampler
from open_autoglm.run._server_families import detect_server, parse_sample, proxy_upstream
from open_autoglm.telemetry import TracingConfig
from open_autoglm.telemetry import names as n

logger = logging.getLogger(__name__)

#: The OTLP ports every exporter defaults to.
OTLP_GRPC_PORT: Final = 4317
OTLP_HTTP_PORT: Final = 4318
#: How long to wait after the load for the server's last spans: an OTel batch span
#: processor exports every 5 s by default (``OTEL_BSP_SCHEDULE_DELAY``), plus a margin.
DEFAULT_SPANS_WAIT_S: Final = 6.0


@dataclass(frozen=True, slots=True)
class AttachedTarget:
    """The server of an attached run and what to collect from it; checked when built.

    ``metrics_url``: the Prometheus page to sample (None: none); ``grpc_port``/``http_port``:
    where the collector listens with ``collect_spans`` (0: a free port, None: off).
    """

    url: str
    collect_spans: bool = False
    collector_host: str = "127.0.0.1"
    grpc_port: int | None = OTLP_GRPC_PORT
    http_port: int | None = OTLP_HTTP_PORT
    spans_wait_s: float = DEFAULT_SPANS_WAIT_S
    metrics_url: str | None = None

    def __post_init__(self) -> None:
        if self.spans_wait_s < 0:
            raise RunError(f"the wait for spans must be >= 0 s, got {self.spans_wait_s}")
        if self.collect_spans and self.http_port is None:
            raise RunError("collecting spans needs the collector's HTTP port (the client's spans)")
        if self.metrics_url is not None and not self.metrics_url.startswith(
            ("http://", "https://")
        ):
            raise RunError(
                f"the metrics URL must start with http:// or https://: {self.metrics_url}"
            )


def default_metrics_url(url: str, timeout_s: float = 5.0) -> str | None:
    """``URL/metrics`` when it answers with Prometheus metrics, else None. When that page is
    an ``open-autoglm proxy``'s, the page of the server behind it where that answers (the
    proxy's memory and in-flight are not the server's); else the proxy's, which the report
    then labels as the proxy's."""
    candidate = url.rstrip("/") + "/metrics"
    text = _metrics_page(candidate, timeout_s)
    if text is None:
        return None
    upstream = proxy_upstream(text)
    if upstream is not None:
        behind = upstream + "/metrics"
        if _metrics_page(behind, timeout_s) is not None:
            return behind
    return candidate


def _metrics_page(url: str, timeout_s: float) -> str | None:
    try:
        response = httpx.get(url, timeout=timeout_s)
        if response.status_code != 200:
            return None
        parse_sample(response.text)
    except (httpx.HTTPError, ValueError):
        return None
    return response.text


def server_settings(grpc_endpoint: str | None, http_endpoint: str | None) -> list[str]:
    """What to give the server so its spans reach the run's collector, one line each."""
    lines = []
    if grpc_endpoint:
        lines += [
            f"  vLLM:          vllm serve MODEL --otlp-traces-endpoint {grpc_endpoint}",
            f"  OpenTelemetry: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={grpc_endpoint} "
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc",
        ]
    if http_endpoint:
        lines.append(
            f"  over HTTP:     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={http_endpoint}/v1/traces "
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf"
        )
    return lines


def run_attached(
    bench: BenchmarkConfig,
    target: AttachedTarget,
    run_dir: Path,
    report_path: Path,
    *,
    progress: ProgressReporter | None = None,
    prompts: Sequence[Prompt] | None = None,
    announce: Callable[[str], None] = print,
    options: ReportOptions | None = None,
) -> tuple[BenchmarkResults, Report]:
    """Run the benchmark against ``target.url``; return its results and the report (both also
    written to files, with ``options``: percentiles, waterfalls, trace links). ``announce``
    gets the lines a user must see before the load starts (where to send the server's spans).
    Ctrl-C: the report of what finished is written."""
    prepare_run_dir(run_dir)
    files = RunDirectory(run_dir)
    interrupted: BaseException | None = None
    with _collector(target, files, run_dir, announce) as collector:
        tracing = bench.tracing
        if collector is not None:
            endpoint = collector.http_endpoint
            assert endpoint is not None
            tracing = TracingConfig(
                service_name=n.LOADGEN_SERVICE_NAME, endpoint=endpoint, protocol="http/json"
            )
        _write_run_file(run_dir, target, bench.endpoint.model)
        sampler = None
        if target.metrics_url is not None:
            sampler = MetricSampler(
                target.url, files.metrics_path, metrics_url=target.metrics_url
            ).start()
        config = dataclasses.replace(
            bench,
            tracing=tracing,
            output_path=files.results_path,
            records_path=run_dir / RECORDS_FILE,
        )
        try:
            results = run_benchmark(
                config, progress=progress, prompts=list(prompts) if prompts else None
            )
        except KeyboardInterrupt as exc:  # partial results are on disk: report them
            interrupted = exc
        finally:
            if sampler is not None:
                sampler.stop()
            if collector is not None and interrupted is None and target.spans_wait_s:
                time.sleep(target.spans_wait_s)  # the server's exporter sends on its own clock
    report = write_report(run_dir, report_path, options)
    if interrupted is not None:
        raise interrupted
    return results, report


@contextlib.contextmanager
def _collector(
    target: AttachedTarget, files: RunDirectory, run_dir: Path, announce: Callable[[str], None]
) -> Iterator[CollectorProcess | None]:
    if not target.collect_spans:
        yield None
        return
    config = CollectorConfig(
        db_path=files.spans_path,
        host=target.collector_host,
        http_port=target.http_port,
        grpc_port=target.grpc_port,
    )
    with CollectorProcess(config, log_path=run_dir / "collector.log") as collector:
        announce(
            "collecting spans for this run; the server must send its traces here, e.g.:\n"
            + "\n".join(server_settings(collector.grpc_endpoint, collector.http_endpoint))
        )
        yield collector


def _write_run_file(run_dir: Path, target: AttachedTarget, model: str | None) -> None:
    own_url = target.url.rstrip("/") + "/metrics"
    own_page = _metrics_page(own_url, 5.0)
    via_proxy = own_page is not None and proxy_upstream(own_page) is not None
    page = None  # the sampled page, read once: the URL's own in the common case
    if target.metrics_url is not None:
        page = own_page if target.metrics_url == own_url else _metrics_page(target.metrics_url, 5.0)
    server = detect_server(page) if page is not None else None
    if model is None:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
            model = httpx.get(f"{target.url.rstrip('/')}/v1/models", timeout=5.0).json()["data"][0][
                "id"
            ]
    RunInfo(
        mode="attached",
        backend=server,  # as its metric families tell, None when unknown
        model=model if isinstance(model, str) else None,
        url=target.url,
        hardware=hardware(),  # this machine's: the server's when it runs here
        started_unix_ns=time.time_ns(),
        run_dir=str(run_dir.resolve()),
        collect_spans=target.collect_spans,
        server_metrics_url=target.metrics_url,
        via_proxy=via_proxy,
    ).write(RunDirectory(run_dir).run_path)
