"""The Prometheus source's PromQL and its reading of answers, through ``httpx.MockTransport``
(answers in the documented ``/api/v1`` format; the real binary is in tests/integration)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from open_autoglm.analysis._prometheus_source import (
    PrometheusConfig,
    PrometheusError,
    quantile_key,
    query_prometheus,
    selector,
)

URL = "http://prometheus.test:9090"


def vector(value: str, **labels: str) -> dict[str, Any]:
    return {"resultType": "vector", "result": [{"metric": labels, "value": [1.0, value]}]}


def fake(seen: list[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        query = request.url.params.get("query", "")
        seen.append(query)
        if request.url.path == "/api/v1/query_exemplars":
            exemplars = [
                {"labels": {"trace_id": "ab" * 16}, "value": "0.5", "timestamp": 1.0},
                {"labels": {"trace_id": "cd" * 16}, "value": "2.5", "timestamp": 2.0},
                {"labels": {"trace_id": "not-an-id"}, "value": "9", "timestamp": 3.0},
            ]
            data: Any = [{"seriesLabels": {}, "exemplars": exemplars}]
        elif request.url.path == "/api/v1/query_range":
            values = [[1.0, "2"], [2.0, "4"]] if "queue_depth" in query else []
            data = {"resultType": "matrix", "result": [{"metric": {}, "values": values}]}
        elif "stage_duration_seconds_count" in query:
            data = {"resultType": "vector", "result": [
                {"metric": {"stage": "queue"}, "value": [1.0, "40"]},
                {"metric": {"stage": "preprocess"}, "value": [1.0, "0"]}]}  # fmt: skip
        elif "histogram_quantile" in query and "stage" in query:
            data = vector("0.002", stage="queue")
        elif "histogram_quantile" in query and "time_per_output_token" in query:
            data = vector("NaN")
        elif "histogram_quantile" in query:
            data = vector("0.25")
        else:
            data = vector("40")
        return httpx.Response(200, json={"status": "success", "data": data})

    return httpx.MockTransport(handle)


def test_window_queries_and_answers() -> None:
    seen: list[str] = []
    matchers = {"gen_ai_request_model": "m", "gen_ai_provider_name": "sim"}
    config = PrometheusConfig(url=URL, matchers=matchers, settle_s=5)
    summary = query_prometheus(config, 1000.0, 1060.0, transport=fake(seen))
    sel = '{gen_ai_provider_name="sim",gen_ai_request_model="m"}'
    growth = (
        f"max_over_time(gen_ai_server_request_duration_seconds_bucket{sel}[65s] @ 1065.000) - "
        f"(gen_ai_server_request_duration_seconds_bucket{sel} @ 1000.000 or "
    )
    assert any(q.startswith("histogram_quantile(0.99, sum by (le) (" + growth) for q in seen)
    assert summary.e2e.count == 40
    assert summary.e2e.quantiles_ms == {"p50": 250.0, "p90": 250.0, "p95": 250.0, "p99": 250.0}
    assert summary.tpot.quantiles_ms["p99"] is None  # NaN: no observations
    assert list(summary.stages) == ["queue"]  # stages with no observations are left out
    assert summary.stages["queue"].quantiles_ms["p50"] == pytest.approx(2.0)
    assert (summary.queue_depth.max, summary.queue_depth.mean) == (4.0, 3.0)
    assert summary.gpu_memory_used_bytes.max is None
    assert summary.exemplar_trace_ids == ["cd" * 16, "ab" * 16]  # slowest first
    assert summary.end_unix_s == 1065.0
    assert json.loads(json.dumps(summary.to_json()))["selector"] == sel


def test_error_answers_and_unreachable() -> None:
    def bad(request: httpx.Request) -> httpx.Response:
        body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
        return httpx.Response(400, json=body)

    with pytest.raises(PrometheusError, match="bad_data: parse error"):
        query_prometheus(PrometheusConfig(url=URL), 0, 1, transport=httpx.MockTransport(bad))

    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>login</html>")

    with pytest.raises(PrometheusError, match="no Prometheus API body"):
        query_prometheus(PrometheusConfig(url=URL), 0, 1, transport=httpx.MockTransport(html))

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(PrometheusError, match=f"^cannot reach Prometheus at {URL}: ConnectError$"):
        query_prometheus(PrometheusConfig(url=URL), 0, 1, transport=httpx.MockTransport(refuse))


def test_config_is_checked_when_built() -> None:
    with pytest.raises(PrometheusError, match="must start with http"):
        PrometheusConfig(url="localhost:9090")
    with pytest.raises(PrometheusError, match="quantiles"):
        PrometheusConfig(url=URL, quantiles=(1.5,))
    with pytest.raises(PrometheusError, match="invalid Prometheus label names: bad-label"):
        PrometheusConfig(url=URL, matchers={"bad-label": "x"})
    assert selector({"model": 'a"b'}) == '{model="a\\"b"}'
    assert [quantile_key(q) for q in (0.5, 0.99, 0.999)] == ["p50", "p99", "p99.9"]
