"""A real Prometheus scrapes a real ``open-autoglm serve --backend sim``: exemplars carry trace
ids, and every dashboard query that only needs a server returns data.

Prometheus is Debian's package (2.42), run directly on 127.0.0.1 with a config written here,
``--enable-feature=exemplar-storage`` and storage in a temporary folder.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from open_autoglm.dashboards import BOARDS
from open_autoglm.telemetry import names as n
from open_autoglm.testing import ServerProcess

pytestmark = pytest.mark.prometheus

_DEADLINE_S = 90.0
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
#: Dashboard variables as "All" and Grafana's interval macros, for running queries directly.
_SUBSTITUTIONS = {
    "$__rate_interval": "30s",
    "$__range": "10m",
    "$backend": ".*",
    "$model": ".*",
    "$instance": ".*",
}


def _prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("CI") == "1":
            pytest.fail("prometheus is not installed; CI installs it (scripts/system-packages.txt)")
        pytest.skip("prometheus is not installed (make setup-system installs it)")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for(what: str, check: Callable[[], Any], logs: Callable[[], str]) -> Any:
    """Poll ``check`` until it returns something truthy (no fixed sleeps: bounded polling)."""
    deadline = time.monotonic() + _DEADLINE_S
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}\n{logs()}")


@pytest.fixture(scope="module")
def prometheus(
    sim_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    binary = _prometheus_binary()
    folder = tmp_path_factory.mktemp("prometheus")
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: open-autoglm\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{sim_server.port}']\n",
        encoding="utf-8",
    )
    port = _free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--enable-feature=exemplar-storage",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"

    def logs() -> str:
        return log.read_text(errors="replace")

    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited with {proc.returncode}\n{logs()}")
        try:
            return httpx.get(f"{url}/-/ready", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        _wait_for("prometheus to be ready", ready, logs)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10.0)
    body = response.json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _substitute(expr: str) -> str:
    for macro, value in _SUBSTITUTIONS.items():
        expr = expr.replace(macro, value)
    return expr


def test_exemplars_carry_trace_ids(prometheus: str, sim_server: ServerProcess) -> None:
    start = time.time() - 5
    _drive(sim_server)

    def exemplars() -> list[dict[str, Any]]:
        response = httpx.get(
            f"{prometheus}/api/v1/query_exemplars",
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

    found = _wait_for("trace_id exemplars in Prometheus", exemplars, sim_server.stderr)
    trace_ids = {e["labels"].get(n.EXEMPLAR_TRACE_ID, "") for e in found}
    assert trace_ids
    assert all(_TRACE_ID.fullmatch(t) for t in trace_ids), trace_ids
    assert all(float(e["value"]) > 0 for e in found)


def test_every_server_query_of_the_dashboards_returns_data(
    prometheus: str, sim_server: ServerProcess
) -> None:
    _drive(sim_server)
    queries = [
        (board.title, panel.title, _substitute(query.expr))
        for board in BOARDS
        for panel, query in board.prometheus_queries()
        if query.source == "server"
    ]
    assert len(queries) > 20
    for board, panel, expr in queries:
        _wait_for(
            f"data for {board} / {panel}: {expr}",
            functools.partial(_query, prometheus, expr),
            sim_server.stderr,
        )
