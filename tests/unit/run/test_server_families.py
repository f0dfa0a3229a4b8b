"""Resource samples from servers we did not start: vLLM, SGLang and TGI metric families."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from open_autoglm.analysis._metric_samples import summarize_samples
from open_autoglm.run import parse_sample
from open_autoglm.telemetry import names as n

# As vLLM 0.32's /metrics writes them (labels trimmed to what matters here).
VLLM = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="smollm2-135m"} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="smollm2-135m"} 5.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="smollm2-135m"} 0.25
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="smollm2-135m"} 3.0
# HELP vllm:num_preemptions_created Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_created gauge
vllm:num_preemptions_created{engine="0",model_name="smollm2-135m"} 1.7e9
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.2e+09
"""

SGLANG = """# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="m",tp_rank="0"} 4.0
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="m",tp_rank="0"} 7.0
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="m",tp_rank="0"} 0.5
"""

TGI = """# TYPE tgi_queue_size gauge
tgi_queue_size 9
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 3
"""


def test_vllm_families_fill_queue_batch_kv_cache_preemptions_and_memory() -> None:
    assert parse_sample(VLLM) == {
        "queue_depth": 5.0,
        "batch_size": 2.0,
        "kv_cache_usage": 0.25,
        "preemptions_total": 3.0,
        "rss_bytes": 1.2e9,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SGLANG, {"queue_depth": 7.0, "batch_size": 4.0, "kv_cache_usage": 0.5}),
        (TGI, {"queue_depth": 9.0, "batch_size": 3.0}),
    ],
)
def test_sglang_and_tgi_families(text: str, expected: dict[str, float]) -> None:
    assert parse_sample(text) == expected


def test_our_own_families_win_over_a_wrapped_engines() -> None:
    ours = f"""# TYPE {n.METRIC_QUEUE_DEPTH} gauge
{n.METRIC_QUEUE_DEPTH}{{gen_ai_provider_name="vllm",gen_ai_request_model="m"}} 1.0
"""
    sample = parse_sample(ours + VLLM)
    assert sample["queue_depth"] == 1.0  # our server's count, not the engine's
    assert sample["kv_cache_usage"] == 0.25  # only vLLM knows this one


def test_summary_shows_kv_cache_pressure_and_preemptions_of_the_run(tmp_path: Path) -> None:
    rows = [
        {"queue_depth": 0, "kv_cache_usage": 0.1, "preemptions_total": 3, "rss_bytes": 1e9},
        {"queue_depth": 6, "kv_cache_usage": 0.9, "preemptions_total": 5, "rss_bytes": 2e9},
        {"queue_depth": 2, "kv_cache_usage": 0.5, "preemptions_total": 8, "rss_bytes": 1e9},
    ]
    path = tmp_path / "server_metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = summarize_samples(path)
    assert summary.kv_cache_usage_max == 0.9
    assert summary.kv_cache_usage_mean == pytest.approx(0.5)
    assert summary.preemptions == 5  # the counter grew from 3 to 8 during the run
    assert summary.queue_depth_max == 6
    assert summary.queue_depth_mean == pytest.approx(8 / 3)
    assert summary.server_rss_peak_bytes == 2_000_000_000
