"""A real Prometheus scrapes a real ``open-autoglm serve --backend sim``: exemplars carry trace
ids, and every dashboard query that only needs a server (or an ``open-autoglm proxy`` in front
of it) returns data.

Prometheus is Debian's package (2.42), run by :class:`open_autoglm.testing.PrometheusProcess` on
127.0.0.1 with ``--enable-feature=exemplar-storage`` and storage in a temporary folder.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from open_autoglm.dashboards import BOARDS
from open_autoglm.telemetry import names as n
from open_autoglm.testing import PrometheusProcess, ServerProcess, wait_for

pytestmark = pytest.mark.prometheus

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
#: Dashboard variables as "All" and Grafana's interval macros, for running queries directly.
_SUBSTITUTIONS = {
    "$__rate_interval": "30s",
    "$__range": "10m",
    "$backend": ".*",
    "$model": ".*",
    "$instance": ".*",
}


@pytest.fixture(scope="module")
def proxy(sim_server: ServerProcess) -> Iterator[ServerProcess]:
    """An ``open-autoglm proxy`` in front of the server, scraped beside it."""
    args = ("--upstream", sim_server.url, "--no-tracing")
    with ServerProcess(args, command=("proxy",)) as server:
        yield server


@pytest.fixture(scope="module")
def prometheus(
    prometheus_binary: str,
    sim_server: ServerProcess,
    proxy: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PrometheusProcess]:
    folder = tmp_path_factory.mktemp("prometheus")
    targets = [f"127.0.0.1:{sim_server.port}", f"127.0.0.1:{proxy.port}"]
    with PrometheusProcess(targets, folder, binary=prometheus_binary) as prometheus:
        yield prometheus


def _drive(server: ServerProcess, requests: int = 24) -> None:
    models = httpx.get(f"{server.url}/v1/models", timeout=10.0).json()
    model = models["data"][0]["id"]
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        for index in range(requests):
            response = client.post(
                "/v1/chat/completions",
                json={
                    "model": model,
                    "messages": [{"role": "user", "content": f"request {index}: say something"}],
                    "max_tokens": 8,
                    "stream": index % 2 == 0,
                },
            )
            assert response.status_code == 200, response.text


def _substitute(expr: str) -> str:
    for macro, value in _SUBSTITUTIONS.items():
        expr = expr.replace(macro, value)
    return expr


def test_exemplars_carry_trace_ids(
    prometheus: PrometheusProcess, sim_server: ServerProcess
) -> None:
    start = time.time() - 5
    _drive(sim_server)

    def exemplars() -> list[dict[str, Any]]:
        response = httpx.get(
            f"{prometheus.url}/api/v1/query_exemplars",
            params={
                "query": f"{n.METRIC_REQUEST_DURATION}_bucket",
                "start": f"{start:.3f}",
                "end": f"{time.time() + 5:.3f}",
            },
            timeout=10.0,
        )
        body = response.json()
        assert body["status"] == "success", body
        data: list[dict[str, Any]] = body["data"]
        return [e for series in data for e in series["exemplars"]]

    found = wait_for("trace_id exemplars in Prometheus", exemplars, logs=sim_server.stderr)
    trace_ids = {e["labels"].get(n.EXEMPLAR_TRACE_ID, "") for e in found}
    assert trace_ids
    assert all(_TRACE_ID.fullmatch(t) for t in trace_ids), trace_ids
    assert all(float(e["value"]) > 0 for e in found)


def test_every_server_query_of_the_dashboards_returns_data(
    prometheus: PrometheusProcess, sim_server: ServerProcess
) -> None:
    _drive(sim_server)
    queries = [
        (board.title, panel.title, _substitute(query.expr))
        for board in BOARDS
        for panel, query in board.prometheus_queries()
        if query.source in ("server", "proxy")
    ]
    assert len(queries) > 20
    for board, panel, expr in queries:
        wait_for(
            f"data for {board} / {panel}: {expr}",
            functools.partial(prometheus.query, expr),
            logs=sim_server.stderr,
        )


def test_scraped_series_carry_the_semantic_conventions_labels(
    prometheus: PrometheusProcess, sim_server: ServerProcess
) -> None:
    """A real scrape: GenAI metrics labelled with the conventions' attribute names (provider
    included, it is required); process metrics under prometheus_client's standard names."""
    _drive(sim_server)

    def series(match: str) -> list[dict[str, str]]:
        response = httpx.get(f"{prometheus.url}/api/v1/series", params={"match[]": match})
        body = response.json()
        assert body["status"] == "success", body
        found: list[dict[str, str]] = body["data"]
        return found

    ttft = wait_for(
        "the TTFT histogram", functools.partial(series, f"{n.METRIC_TTFT}_count"),
        logs=sim_server.stderr,
    )  # fmt: skip
    for labels in ttft:
        assert labels[n.LABEL_PROVIDER] == "sim"
        assert labels[n.LABEL_MODEL] == "sim-llm"
        assert labels[n.LABEL_OPERATION] in (n.OPERATION_CHAT, n.OPERATION_TEXT_COMPLETION)
        assert not {"model", "backend", "operation"} & labels.keys()
    for family in (n.METRIC_PROCESS_RSS, f"{n.METRIC_PROCESS_CPU}_total",
                   n.METRIC_PROCESS_PEAK_RSS, n.METRIC_PROCESS_LOAD_PEAK_RSS):  # fmt: skip
        assert wait_for(family, functools.partial(series, family), logs=sim_server.stderr)
