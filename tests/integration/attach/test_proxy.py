"""``open-autoglm proxy`` in front of real servers: the openai client through it, spans joined
across client, proxy and upstream, exemplars, and upstream faults that never crash it."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from proxy_upstream import ThreadServer, Upstream

from open_autoglm.run import default_metrics_url
from open_autoglm.run._server_families import detect_server, proxy_upstream
from open_autoglm.testing import OtlpSink, ServerProcess, SinkSpan

SERVER_KIND = 2  # OTLP SPAN_KIND_SERVER
PROXY = "open-autoglm-proxy"
FAST_EXPORT = {**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "50"}


@pytest.fixture(scope="module")
def sink() -> Iterator[OtlpSink]:
    with OtlpSink() as s:
        yield s


@pytest.fixture(scope="module")
def upstream(sink: OtlpSink) -> Iterator[ServerProcess]:
    args = ("--backend", "sim", "--backend-option", "cost=zero", "--otlp-endpoint",
            sink.endpoint, "--otlp-protocol", "http/json")  # fmt: skip
    with ServerProcess(args, env=FAST_EXPORT) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(upstream: ServerProcess, sink: OtlpSink) -> Iterator[ServerProcess]:
    args = ("--upstream", upstream.url, "--otlp-endpoint", sink.endpoint,
            "--otlp-protocol", "http/json")  # fmt: skip
    with ServerProcess(args, command=("proxy",), env=FAST_EXPORT) as server:
        yield server


def _traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def _trace(sink: OtlpSink, trace_id: str, services: int = 2) -> list[SinkSpan]:
    """The spans of ``trace_id`` once both the proxy's and the upstream's SERVER spans came."""

    def complete(spans: list[SinkSpan]) -> bool:
        mine = [s for s in spans if s.trace_id == trace_id and s.kind == SERVER_KIND]
        return len({s.service_name for s in mine}) >= services

    return [s for s in sink.wait_for(complete) if s.trace_id == trace_id]


@pytest.mark.parametrize("stream", [True, False])
def test_openai_client_through_the_proxy_joins_one_trace(
    proxy: ServerProcess, sink: OtlpSink, stream: bool
) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-never-recorded", max_retries=0)
    header, trace_id, parent_id = _traceparent()
    messages = [{"role": "user", "content": "Say something about latency."}]
    if stream:
        chunks = client.chat.completions.create(
            model="sim-llm", messages=messages, max_tokens=6, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True}, extra_body={"ignore_eos": True},
            extra_headers={"traceparent": header},
        )  # fmt: skip
        parts = list(chunks)
        text = "".join(c.choices[0].delta.content or "" for c in parts if c.choices)
        usage = parts[-1].usage
    else:
        completion = client.chat.completions.create(
            model="sim-llm", messages=messages, max_tokens=6,  # type: ignore[arg-type]
            extra_body={"ignore_eos": True}, extra_headers={"traceparent": header},
        )  # fmt: skip
        text = completion.choices[0].message.content or ""
        usage = completion.usage
    assert text.strip()
    assert usage is not None
    assert usage.completion_tokens == 6

    spans = _trace(sink, trace_id)
    ours = next(s for s in spans if s.service_name == PROXY and s.kind == SERVER_KIND)
    theirs = next(s for s in spans if s.service_name != PROXY and s.kind == SERVER_KIND)
    assert ours.parent_span_id == parent_id  # the caller's traceparent continued
    assert theirs.parent_span_id == ours.span_id  # the proxy's own context sent upstream
    assert ours.name == "POST /v1/chat/completions"
    attrs = ours.attributes
    assert attrs["http.response.status_code"] == 200
    assert attrs["http.route"] == "/v1/chat/completions"
    assert attrs["gen_ai.request.model"] == "sim-llm"
    assert attrs["gen_ai.usage.output_tokens"] == 6
    assert attrs["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert attrs["gen_ai.response.finish_reasons"] == ("length",)
    assert attrs["gen_ai.request.stream"] is stream
    children = {s.name: s for s in spans if s.parent_span_id == ours.span_id}
    assert {"upstream.headers", "upstream.first_output", "upstream.streaming"} <= set(children)
    assert children["upstream.headers"].end_ns <= children["upstream.first_output"].end_ns
    assert ours.start_ns <= children["upstream.headers"].start_ns
    assert children["upstream.streaming"].end_ns <= ours.end_ns
    recorded = repr([s.attributes for s in spans])
    assert "sk-never-recorded" not in recorded


def test_auth_headers_reach_the_upstream_and_are_not_recorded(
    crafted_upstream: tuple[Upstream, ThreadServer], sink: OtlpSink
) -> None:
    state, _ = crafted_upstream
    args = ("--upstream", state.url, "--otlp-endpoint", sink.endpoint,
            "--otlp-protocol", "http/json")  # fmt: skip
    with ServerProcess(args, command=("proxy",), env=FAST_EXPORT) as proxy:
        header, trace_id, _ = _traceparent()
        r = httpx.post(
            f"{proxy.url}/v1/chat/completions",
            json={"model": "echo", "messages": []},
            headers={"Authorization": "Bearer sk-secret-token", "traceparent": header,
                     "X-Custom": "kept"},
        )  # fmt: skip
        assert r.status_code == 200
        assert r.json()["usage"]["completion_tokens"] == 1
        seen = state.seen[-1]
        assert seen["authorization"] == "Bearer sk-secret-token"
        assert seen["x-custom"] == "kept"
        assert seen["traceparent"].split("-")[1] == trace_id
        assert seen["traceparent"] != header  # the proxy's span, not the caller's
        spans = _trace(sink, trace_id, services=1)
    assert "sk-secret-token" not in repr([s.attributes for s in spans])


def test_exemplars_point_at_the_proxys_traces(proxy: ServerProcess, sink: OtlpSink) -> None:
    header, trace_id, _ = _traceparent()
    body = {"model": "sim-llm", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 4, "stream": True}  # fmt: skip
    with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body,
                      headers={"traceparent": header}) as r:  # fmt: skip
        assert r.status_code == 200
        r.read()
    text = httpx.get(
        f"{proxy.url}/metrics", headers={"Accept": "application/openmetrics-text"}
    ).text
    exemplars = set(re.findall(r'gen_ai_server_time_to_first_token_seconds_bucket\{[^}]*\} '
                               r'\S+ # \{trace_id="([0-9a-f]{32})"\}', text))  # fmt: skip
    assert trace_id in exemplars
    assert re.search(
        r'^gen_ai_server_request_duration_seconds_count\{[^}]*gen_ai_provider_name="proxy"',
        text,
        re.M,
    )
    assert "autoglm_spans_dropped_total 0.0" in text
    _trace(sink, trace_id)


def test_a_run_through_the_proxy_samples_the_servers_metrics(
    proxy: ServerProcess, upstream: ServerProcess, tmp_path: Path
) -> None:
    """``benchmark --url PROXY --collect-spans`` samples the metrics of the server behind the
    proxy (named on the proxy's page), not the proxy's own memory and in-flight."""
    text = httpx.get(f"{proxy.url}/metrics").text
    assert proxy_upstream(text) == upstream.url
    assert detect_server(text) == "proxy"
    assert default_metrics_url(proxy.url) == f"{upstream.url}/metrics"
    # the whole run, as a user starts it: the run and its report say where the figures came from
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "open_autoglm", "benchmark", "--url", proxy.url,
         "--server-metrics", "--requests", "4", "--output-len", "4", "--run-dir", str(run_dir),
         "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"samples of {upstream.url}/metrics" in done.stdout
    run = json.loads((run_dir / "run.json").read_text())
    assert run["via_proxy"] is True
    assert run["server_metrics_url"] == f"{upstream.url}/metrics"
    html = (run_dir / "report.html").read_text()
    assert "these are the metrics of the server behind it" in html
    # the proxy's own page, asked for: named as the proxy's in run.json and in the report
    own = tmp_path / "own"
    done = subprocess.run(
        [sys.executable, "-m", "open_autoglm", "benchmark", "--url", proxy.url,
         "--server-metrics", f"{proxy.url}/metrics", "--requests", "4", "--output-len", "4",
         "--run-dir", str(own), "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads((own / "run.json").read_text())["backend"] == "proxy"
    assert "<h2 id='resources'>Proxy resources</h2>" in (own / "report.html").read_text()


def test_without_the_servers_metrics_the_proxys_page_is_named_as_such(
    crafted_upstream: tuple[Upstream, ThreadServer], sink: OtlpSink
) -> None:
    """An upstream without a metrics page (and credentials in --upstream, never published):
    the run falls back to the proxy's page, which ``detect_server`` names as the proxy's."""
    state, _ = crafted_upstream
    with_credentials = state.url.replace("http://", "http://user:pw-secret@")
    args = ("--upstream", with_credentials, "--otlp-endpoint", sink.endpoint,
            "--otlp-protocol", "http/json")  # fmt: skip
    with ServerProcess(args, command=("proxy",), env=FAST_EXPORT) as proxy:
        text = httpx.get(f"{proxy.url}/metrics").text
        assert "pw-secret" not in text
        assert "user" not in (proxy_upstream(text) or "user")
        assert default_metrics_url(proxy.url) == f"{proxy.url}/metrics"
        assert detect_server(text) == "proxy"


def _fault_proxy(url: str, sink: OtlpSink) -> ServerProcess:
    args = ("--upstream", url, "--otlp-endpoint", sink.endpoint, "--otlp-protocol",
            "http/json", "--read-timeout", "1")  # fmt: skip
    return ServerProcess(args, command=("proxy",), env=FAST_EXPORT)


def _proxy_span(sink: OtlpSink, trace_id: str) -> SinkSpan:
    spans = _trace(sink, trace_id, services=1)
    return next(s for s in spans if s.service_name == PROXY and s.kind == SERVER_KIND)


def test_upstream_faults_give_clean_errors_and_spans(
    crafted_upstream: tuple[Upstream, ThreadServer], sink: OtlpSink
) -> None:
    state, server = crafted_upstream
    stream = {"messages": [], "stream": True}
    with _fault_proxy(state.url, sink) as proxy:
        # reset mid-stream: the stream ends with an error event, the span says why
        header, trace_id, _ = _traceparent()
        r = httpx.post(f"{proxy.url}/v1/chat/completions", json={**stream, "model": "reset"},
                       headers={"traceparent": header})  # fmt: skip
        assert r.status_code == 200
        assert '"first"' in r.text
        assert '"code":"upstream_reset"' in r.text
        assert r.text.rstrip().endswith("data: [DONE]")
        assert _proxy_span(sink, trace_id).attributes["error.type"] == "ClientPayloadError"

        # stall past --read-timeout mid-stream
        header, trace_id, _ = _traceparent()
        r = httpx.post(f"{proxy.url}/v1/chat/completions", json={**stream, "model": "stall"},
                       headers={"traceparent": header}, timeout=10)  # fmt: skip
        assert '"code":"upstream_timeout"' in r.text
        assert _proxy_span(sink, trace_id).attributes["error.type"] == "TimeoutError"

        # an error event inside the stream, and an HTTP error, pass through as they came
        header, trace_id, _ = _traceparent()
        r = httpx.post(
            f"{proxy.url}/v1/chat/completions",
            json={**stream, "model": "error-event"},
            headers={"traceparent": header},
        )
        assert "engine died" in r.text
        assert _proxy_span(sink, trace_id).attributes["error.type"] == "engine_error"
        header, trace_id, _ = _traceparent()
        r = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "refuse-429"},
                       headers={"traceparent": header})  # fmt: skip
        assert r.status_code == 429
        assert r.json()["error"]["type"] == "rate_limit_error"
        assert _proxy_span(sink, trace_id).attributes["error.type"] == "429"

        # the upstream goes away: connection refused -> 502 with an OpenAI error body
        server.stop()
        header, trace_id, _ = _traceparent()
        r = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "echo"},
                       headers={"traceparent": header})  # fmt: skip
        assert r.status_code == 502
        assert r.json()["error"]["code"] == "upstream_unavailable"
        span = _proxy_span(sink, trace_id)
        assert span.attributes["error.type"] == "ConnectionRefusedError"
        assert span.attributes["http.response.status_code"] == 502

        text = httpx.get(f"{proxy.url}/metrics").text
        assert (
            'autoglm_request_errors_total{error_type="ConnectionRefusedError",'
            'gen_ai_provider_name="proxy",gen_ai_request_model="echo"} 1.0'
        ) in text
        # still alive, stops on SIGTERM (uvicorn re-raises it), and never logged a crash
        assert proxy.stop() in (0, -signal.SIGTERM)
        assert "Traceback" not in proxy.stderr()


def test_a_client_that_leaves_mid_stream_stops_the_upstream(
    crafted_upstream: tuple[Upstream, ThreadServer], sink: OtlpSink
) -> None:
    state, _ = crafted_upstream
    with _fault_proxy(state.url, sink) as proxy:  # --read-timeout 1: a stall would end there
        header, trace_id, _ = _traceparent()
        body = {"model": "stall", "messages": [], "stream": True}
        with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body,
                          headers={"traceparent": header}, timeout=10) as r:  # fmt: skip
            first = next(r.iter_raw())
            assert b'"first"' in first
        # the client left with the upstream stalled: recorded as cancelled, not as a failure
        span = _proxy_span(sink, trace_id)
        assert span.attributes["autoglm.cancelled"] is True
        assert "error.type" not in span.attributes
        assert span.end_ns - span.start_ns < 0.9e9  # stopped at once, not at the read timeout
