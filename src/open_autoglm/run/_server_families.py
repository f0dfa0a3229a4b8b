"""Which Prometheus families of which servers feed a run's resource samples.

A sample (one scrape of a server's ``/metrics``) keeps a few keys; each key is filled from
the first family below that the server exposes, so our own server's metrics win, then the
names of the servers we know:

============================  ===================================================  ==========
key                           families, in order of preference                     aggregate
============================  ===================================================  ==========
``rss_bytes``                 ``process_resident_memory_bytes`` (prometheus_client's sum
                              process collector: ours, vLLM, SGLang)
``peak_rss_bytes``            ``autoglm_process_peak_resident_memory_bytes``       sum
``load_peak_rss_bytes``       ``autoglm_process_load_peak_resident_memory_bytes``  sum
``queue_depth``               ``autoglm_queue_depth``; ``vllm:num_requests_waiting``; sum
                              ``sglang:num_queue_reqs``; ``tgi_queue_size``
``batch_size``                ``autoglm_running_batch_size``;                      sum
                              ``vllm:num_requests_running``;
                              ``sglang:num_running_reqs``; ``tgi_batch_current_size``
``kv_cache_usage``            ``vllm:kv_cache_usage_perc`` (a fraction, 1 = full;  max
                              ``vllm:gpu_cache_usage_perc`` before vLLM 0.10);
                              ``sglang:token_usage``
``preemptions_total``         ``vllm:num_preemptions`` (counter, ``_total``)       sum
``batch_cap``                 ``autoglm_batch_cap``                                sum
``gpu_memory_used_bytes``     ``autoglm_gpu_memory_used_bytes``                    sum
``gpu_utilization``           ``autoglm_gpu_utilization_ratio``                    mean
============================  ===================================================  ==========

Names as in vLLM 0.32 (``vllm/v1/metrics/loggers.py``), SGLang's ``sglang:*`` scheduler
gauges and text-generation-inference's ``tgi_*`` gauges. Sums run over label sets (several
engines, several models); several GPUs add up.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

from prometheus_client.parser import text_string_to_metric_families

from open_autoglm.telemetry import names as n

Aggregate = Literal["sum", "max", "mean"]

#: key -> (families in order of preference, how values over label sets combine)
SAMPLE_FAMILIES: Final[dict[str, tuple[tuple[str, ...], Aggregate]]] = {
    "rss_bytes": ((n.METRIC_PROCESS_RSS,), "sum"),
    "peak_rss_bytes": ((n.METRIC_PROCESS_PEAK_RSS,), "sum"),
    "load_peak_rss_bytes": ((n.METRIC_PROCESS_LOAD_PEAK_RSS,), "sum"),
    "queue_depth": (
        (
            n.METRIC_QUEUE_DEPTH,
            "vllm:num_requests_waiting",
            "sglang:num_queue_reqs",
            "tgi_queue_size",
        ),
        "sum",
    ),
    "batch_size": (
        (
            n.METRIC_BATCH_SIZE,
            "vllm:num_requests_running",
            "sglang:num_running_reqs",
            "tgi_batch_current_size",
        ),
        "sum",
    ),
    "kv_cache_usage": (
        ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage"),
        "max",
    ),
    "preemptions_total": (("vllm:num_preemptions",), "sum"),
    "batch_cap": ((n.METRIC_BATCH_CAP,), "sum"),
    "gpu_memory_used_bytes": ((n.METRIC_GPU_MEMORY_USED,), "sum"),
    "gpu_utilization": ((n.METRIC_GPU_UTILIZATION,), "mean"),
}

_WANTED: Final = {family for families, _ in SAMPLE_FAMILIES.values() for family in families}


def _combine(values: list[float], how: Aggregate) -> float:
    if how == "max":
        return max(values)
    if how == "mean":
        return sum(values) / len(values)
    return sum(values)


def parse_sample(text: str) -> dict[str, float]:
    """The keys above from one scrape in the Prometheus text format (OpenMetrics too).

    Raises ``ValueError`` on text that is not a metrics page."""
    seen: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in _WANTED:
            continue
        names = _sample_names(family.name, family.type)
        values = [s.value for s in family.samples if s.name in names]
        if values:
            seen[family.name] = values
    sample: dict[str, float] = {}
    for key, (names, how) in SAMPLE_FAMILIES.items():
        for name in names:
            if name in seen:
                sample[key] = float(_combine(seen[name], how))
                break
    return sample


#: Prefixes of the metric families that name a server (vLLM, SGLang, TGI).
_SERVER_PREFIXES: Final = (("vllm:", "vllm"), ("sglang:", "sglang"), ("tgi_", "tgi"))


def detect_server(text: str) -> str | None:
    """Which known server wrote this metrics page (``vllm``, ``sglang``, ``tgi``, or
    ``proxy``: ``open-autoglm proxy``, whose memory and in-flight are its own, not the
    server's), by its families; None when none is recognised (our own server included: it
    names itself)."""
    if proxy_upstream(text) is not None:
        return n.BACKEND_PROXY
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name = line[7:]
            for prefix, server in _SERVER_PREFIXES:
                if name.startswith(prefix):
                    return server
    return None


def proxy_upstream(text: str) -> str | None:
    """The upstream base URL an ``open-autoglm proxy`` metrics page names
    (``autoglm_proxy_upstream_info``), None on any other page."""
    family = n.METRIC_PROXY_UPSTREAM
    if family not in text:  # cheap: most pages are not the proxy's
        return None
    for metrics in text_string_to_metric_families(text):
        for sample in metrics.samples:
            if sample.name == family and sample.labels.get(n.LABEL_UPSTREAM):
                return sample.labels[n.LABEL_UPSTREAM]
    return None


def _sample_names(family: str, kind: str) -> Iterable[str]:
    """The sample names that carry a family's value (a counter's is ``<family>_total``)."""
    return (family, f"{family}_total") if kind == "counter" else (family,)
