"""``open-autoglm benchmark`` as a user runs it: bad input stops before anything is sent,
Ctrl-C keeps the records, and server spans join the client's traces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from loadgen_helpers import Crafted, OtlpReceiver

from open_autoglm.testing import ServerProcess


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def benchmark(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "open_autoglm", "benchmark", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "0"], "request rate must be > 0"),
        (["--rate", "-3"], "request rate must be > 0"),
        (["--profile", "step"], "needs --levels"),
        (["--levels", ","], "--levels is empty"),
        (["--concurrency", "0"], "concurrency must be a whole number >= 1"),
        (["--duration", "1", "--warmup", "1"], "nothing of --duration"),
        (["--dataset", "jsonl"], "needs --dataset-path"),
        (["--dataset", "jsonl", "--dataset-path", "missing.jsonl"], "dataset file not found"),
        (["--dataset", "sharegpt", "--dataset-path", "bad.json"], "bad.json: not JSON"),
        (["--dataset", "jsonl", "--dataset-path", "bad.jsonl"], "bad.jsonl:2: not JSON"),
        (["--slo", "ttft<500"], "needs a time unit"),
        (["--images", "1", "--image-file", "nope.png"], "image file not found"),
        (["--input-len", "0"], "token lengths must be >= 1"),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_sent(
    crafted: Crafted, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.json").write_text("[{oops")
    (tmp_path / "bad.jsonl").write_text('{"prompt": "fine"}\n{"prompt": \n')
    result = benchmark("--url", crafted.url("one_token"), "--quiet", *args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert crafted.seen == []  # nothing was sent
    assert not (tmp_path / "requests.jsonl").exists()


def test_bad_url_is_a_usage_error(tmp_path: Path) -> None:
    result = benchmark("--url", "localhost:8000", cwd=tmp_path)
    assert result.returncode == 2
    assert "bad URL" in result.stderr


def test_cli_run_writes_records_results_and_summary(
    sim_server: ServerProcess, tmp_path: Path
) -> None:
    result = benchmark("--url", sim_server.url, "--concurrency", "4", "--requests", "20",
                       "--output-len", "8", "--ignore-eos", "--slo", "ttft<=2s,tpot<=500ms",
                       "--quiet", "--output", "out/results.json", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "level 0 concurrency=4: 20 ok, 0 failed" in result.stdout
    assert "The client kept up" in result.stdout or "bottleneck" in result.stdout
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["version"] == "open-autoglm.loadgen.results/1"
    level = saved["levels"][0]
    assert level["goodput"] == pytest.approx(level["request_throughput"])
    for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        assert {"mean", "median", "p90", "p95", "p99", "max", "std"} <= set(level[metric])
    lines = (tmp_path / "out" / "requests.jsonl").read_text().splitlines()
    assert len(lines) == 20
    assert all(json.loads(line)["output_tokens"] == 8 for line in lines)


def test_datasets_from_the_cli(sim_server: ServerProcess, tmp_path: Path) -> None:
    sharegpt = [
        {"id": "a", "conversations": [{"from": "human", "value": "Tell me a joke."},
                                      {"from": "gpt", "value": "Why did the chicken cross?"}]},
        {"id": "b", "conversations": [{"from": "human", "value": "Say hi"}]},  # no reply: skipped
    ]  # fmt: skip
    (tmp_path / "sg.json").write_text(json.dumps(sharegpt))
    jsonl = [{"prompt": "Hello there", "max_tokens": 3},
             {"messages": [{"role": "user", "content": "Hi!"}], "max_tokens": 2}]  # fmt: skip
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(x) for x in jsonl) + "\n")
    for name, args in {
        "sg": ["--dataset", "sharegpt", "--dataset-path", "sg.json"],
        "jl": ["--dataset", "jsonl", "--dataset-path", "p.jsonl"],
    }.items():
        result = benchmark("--url", sim_server.url, "--requests", "4", "--ignore-eos",
                           "--quiet", "--output", f"{name}/results.json", *args,
                           cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr
        records = read_jsonl(tmp_path / name / "requests.jsonl")
        assert len(records) == 4
        assert all(r["status"] == "ok" for r in records)
    # ShareGPT: the reply's length is the output length (6 tokens: "Why did the chicken cross?")
    sg = read_jsonl(tmp_path / "sg" / "requests.jsonl")
    assert {r["output_tokens"] for r in sg} == {6}
    jl = read_jsonl(tmp_path / "jl" / "requests.jsonl")
    assert {r["output_tokens"] for r in jl} == {2, 3}


def test_ctrl_c_keeps_records_and_writes_partial_results(
    sim_server: ServerProcess, tmp_path: Path
) -> None:
    records = tmp_path / "requests.jsonl"
    cmd = [sys.executable, "-m", "open_autoglm", "benchmark", "--url", sim_server.url,
           "--concurrency", "4", "--requests", "100000", "--output-len", "64", "--ignore-eos",
           "--quiet", "--output", str(tmp_path / "results.json")]  # fmt: skip
    with (tmp_path / "stdout").open("w") as out, (tmp_path / "stderr").open("w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if records.exists() and len(records.read_text().splitlines()) >= 8:
                    break
                assert proc.poll() is None, (tmp_path / "stderr").read_text()
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGINT)
            code = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 130
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["interrupted"] is True
    lines = [json.loads(x) for x in records.read_text().splitlines()]
    assert len(lines) >= 8
    assert saved["levels"][0]["succeeded"] == sum(1 for r in lines if r["status"] == "ok")
    # the requests in flight at Ctrl-C are recorded too, as cancelled
    assert [r for r in lines if r["status"] == "cancelled"]


def test_server_spans_carry_the_client_trace(otlp_receiver: OtlpReceiver, tmp_path: Path) -> None:
    env = dict(os.environ, OTEL_BSP_SCHEDULE_DELAY="100")
    with ServerProcess(("--backend", "sim", "--otlp-endpoint", otlp_receiver.endpoint),
                       env=env) as server:  # fmt: skip
        result = benchmark("--url", server.url, "--requests", "3", "--output-len", "4",
                           "--quiet", "--otlp-endpoint", otlp_receiver.endpoint,
                           cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr
        records = read_jsonl(tmp_path / "requests.jsonl")
        wanted = {r["trace_id"] for r in records}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            server_traces = {
                span.trace_id.hex()
                for service, span in otlp_receiver.spans()
                if service == "open-autoglm-server"
            }
            if wanted <= server_traces:
                break
            time.sleep(0.1)
    spans = otlp_receiver.spans()
    for trace_id in wanted:
        in_trace = [(svc, s) for svc, s in spans if s.trace_id.hex() == trace_id]
        (client,) = [s for svc, s in in_trace if svc == "open-autoglm-loadgen"]
        assert client.name.startswith("chat ")
        server_side = [s for svc, s in in_trace if svc == "open-autoglm-server"]
        # the server's root span is the child of the client's span
        assert any(s.parent_span_id == client.span_id for s in server_side)
        assert {"queue", "prefill", "decode"} <= {s.name for s in server_side}
