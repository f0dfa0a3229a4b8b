"""``open-autoglm benchmark`` as a user runs it: bad input stops before anything is sent,
Ctrl-C keeps the records, and server spans join the client's traces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from loadgen_helpers import Crafted, OtlpReceiver

from open_autoglm.loadgen import (
    BenchmarkConfig,
    EndpointConfig,
    LengthDistribution,
    ProfileConfig,
    RunStop,
    WorkloadConfig,
    run_benchmark,
)
from open_autoglm.testing import ServerProcess, free_port, wait_for


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
        (["--dataset", "jsonl", "--dataset-path", "missing.jsonl"], "missing.jsonl: no such file"),
        (["--dataset", "sharegpt", "--dataset-path", "bad.json"], "bad.json: not JSON"),
        (["--dataset", "jsonl", "--dataset-path", "bad.jsonl"], "bad.jsonl:2: not JSON"),
        (["--slo", "ttft<500"], "needs a time unit"),
        (["--images", "1", "--image-file", "nope.png"], "nope.png: no such file"),
        (["--input-len", "0"], "token lengths must be >= 1"),
        # paths: each a one-line error before anything is sent
        (["--output", "adir"], "--output adir: is a directory, not a file"),
        (["--output", "afile/results.json"], "--output afile/results.json: "),
        (["--output", "/proc/results.json"], "cannot write in /proc"),
        (["--records", "fifo"], "--records fifo: is a named pipe (FIFO), not a file"),
        (["--records", "adir"], "--records adir: is a directory"),
        (["--run-dir", "afile"], "--run-dir afile: is a file, not a directory"),
        (["--run-dir", "used"], "--run-dir used: already holds a run (requests.jsonl)"),
        (["--output", "x.json", "--records", "taken.jsonl"], "never overwritten"),
        (["--output", "taken.json"], "taken.requests.jsonl: already holds another run's"),
        (["--dataset", "jsonl", "--dataset-path", "fifo"], "is a named pipe (FIFO)"),
        (["--dataset", "jsonl", "--dataset-path", "adir"], "is a directory, not a file"),
        (["--tokenizer", "fifo"], "--tokenizer fifo: is a named pipe (FIFO)"),
        (["--images", "1", "--image-file", "adir"], "--image-file adir: is a directory"),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_sent(
    crafted: Crafted, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.json").write_text("[{oops")
    (tmp_path / "bad.jsonl").write_text('{"prompt": "fine"}\n{"prompt": \n')
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "requests.jsonl").write_text('{"index": 0}\n')
    for taken in ("taken.jsonl", "taken.requests.jsonl"):
        (tmp_path / taken).write_text('{"index": 0}\n')
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = benchmark("--url", crafted.url("one_token"), "--quiet", *args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert crafted.seen == []  # nothing was sent
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing was written
    for taken in ("taken.jsonl", "taken.requests.jsonl", "used/requests.jsonl"):
        assert (tmp_path / taken).read_text() == '{"index": 0}\n'  # nor overwritten


@pytest.mark.parametrize(
    ("route", "status", "warning"),
    [
        ("one_token", 0, None),
        ("one_in_three_fails", 0, "WARNING: 3 of 9 requests failed (33%: 500 3); the exit status "
         "stays 0 as some succeeded"),
        ("server_error", 1, "WARNING: 9 of 9 requests failed (100%: 500 9); the run exits 1"),
    ],
)  # fmt: skip
def test_a_run_with_many_failures_says_so_in_one_loud_line(
    crafted: Crafted, tmp_path: Path, route: str, status: int, warning: str | None
) -> None:
    """The exit status keeps its documented rule (0 when any request succeeded, 1 when none
    did, --fail-on-slo for more); above 10% failed a one-line warning says what happened."""
    result = benchmark("--url", crafted.url(route), "--model", "m", "--requests", "9",
                       "--quiet", "--output", "results.json", cwd=tmp_path)  # fmt: skip
    assert result.returncode == status, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "open-autoglm: WARNING" in line]
    if warning is None:
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert warning in warnings[0]


def test_a_dead_url_is_one_line_naming_where_it_tried(tmp_path: Path) -> None:
    """Nothing listens at the URL: every request fails to connect; the warning names the URL
    (the records of the failures are kept, as for any run)."""
    url = f"http://127.0.0.1:{free_port()}"
    result = benchmark("--url", url, "--model", "m", "--requests", "3", "--quiet",
                       "--output", "results.json", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "open-autoglm: WARNING" in line]
    assert len(warnings) == 1, result.stderr
    assert "3 of 3 requests failed (100%: ConnectError 3)" in warnings[0]
    assert f"could not connect to {url}/v1/chat/completions" in warnings[0]
    saved = json.loads((tmp_path / "results.json").read_text())
    records = read_jsonl(tmp_path / saved["records_path"])
    assert [r["error_type"] for r in records] == ["ConnectError"] * 3


def test_two_runs_in_one_folder_keep_their_own_records(
    zero_cost_server: ServerProcess, tmp_path: Path
) -> None:
    for name, count in (("a", "12"), ("b", "7")):
        result = benchmark("--url", zero_cost_server.url, "--requests", count, "--quiet",
                           "--output", f"{name}.json", cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr
    for name, count in (("a", 12), ("b", 7)):
        saved = json.loads((tmp_path / f"{name}.json").read_text())
        assert saved["records_path"] == f"{name}.requests.jsonl"  # named exactly
        assert len(read_jsonl(tmp_path / f"{name}.requests.jsonl")) == count
    # the same --output again would overwrite b's records: refused before anything is sent
    before = (tmp_path / "b.requests.jsonl").read_bytes()
    again = benchmark("--url", zero_cost_server.url, "--requests", "3", "--quiet",
                      "--output", "b.json", cwd=tmp_path)  # fmt: skip
    assert again.returncode == 2
    assert "b.requests.jsonl: already holds another run's records" in again.stderr
    assert (tmp_path / "b.requests.jsonl").read_bytes() == before
    # and the gate reads each run's own records (too few to judge a regression: exit 2)
    check = subprocess.run(
        [sys.executable, "-m", "open_autoglm", "check", "b.json", "--baseline", "a.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 2, check.stdout + check.stderr
    verdict = next(x for x in check.stdout.splitlines() if x.startswith("gate:"))
    assert verdict.startswith("gate: CANNOT JUDGE, 3 of 4 checks could not be measured")
    assert "too few requests (7 vs 12)" in verdict


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


@pytest.mark.parametrize(
    ("sig", "status"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_a_stop_signal_keeps_records_and_writes_partial_results(
    sim_server: ServerProcess, tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    """Ctrl-C, `timeout`/CI/`docker stop` (SIGTERM) and a closed terminal (SIGHUP) alike:
    partial results, the in-flight requests recorded as cancelled, one line, 128 + signal."""
    records = tmp_path / "out" / "requests.jsonl"
    cmd = [sys.executable, "-m", "open_autoglm", "benchmark", "--url", sim_server.url,
           "--concurrency", "4", "--requests", "100000", "--output-len", "64", "--ignore-eos",
           "--quiet", "--output", str(tmp_path / "out" / "results.json")]  # fmt: skip
    with (tmp_path / "stdout").open("w") as out, (tmp_path / "stderr").open("w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if records.exists() and len(records.read_text().splitlines()) >= 8:
                    break
                assert proc.poll() is None, (tmp_path / "stderr").read_text()
                time.sleep(0.05)
            os.kill(proc.pid, sig)
            code = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stderr = (tmp_path / "stderr").read_text()
    assert code == status, stderr
    assert stderr.strip().splitlines() == [stderr.strip()]  # one line, no traceback
    assert f"stopped by {sig.name}" in stderr
    assert "results.json" in stderr
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["interrupted"] is True
    assert saved["stop_reason"] == f"{sig.name} received"
    lines = [json.loads(x) for x in records.read_text().splitlines()]
    assert len(lines) >= 8
    level = saved["levels"][0]
    assert level["succeeded"] == sum(1 for r in lines if r["status"] == "ok")
    # the requests in flight at the signal are recorded too, as cancelled: none is lost
    assert level["cancelled"] == sum(1 for r in lines if r["status"] == "cancelled") > 0
    assert level["requests"] == len(lines)
    assert "level 0" in (tmp_path / "stdout").read_text()  # the summary of what finished


def test_a_run_stopped_from_another_thread_returns_what_finished(
    sim_server: ServerProcess, tmp_path: Path
) -> None:
    config = BenchmarkConfig(
        endpoint=EndpointConfig(url=sim_server.url, ignore_eos=True),
        profile=ProfileConfig(kind="concurrency", concurrency=4, requests=100_000),
        workload=WorkloadConfig(output_len=LengthDistribution(64)),
        output_path=tmp_path / "results.json",
    )
    stop = RunStop()
    records = tmp_path / "requests.jsonl"

    def stop_after_some() -> None:
        wait_for(
            "records", lambda: records.exists() and len(records.read_bytes().splitlines()) >= 6
        )
        stop.stop("the test has seen enough")

    stopper = threading.Thread(target=stop_after_some)
    stopper.start()
    results = run_benchmark(config, stop=stop)
    stopper.join()
    assert results.interrupted
    assert results.stop_reason == "the test has seen enough"
    lines = read_jsonl(records)
    (level,) = results.levels
    assert level.succeeded + level.failed + level.cancelled == level.requests == len(lines)
    assert level.cancelled > 0
    assert level.failed == 0
    assert json.loads((tmp_path / "results.json").read_text())["stop_reason"] == results.stop_reason


def test_server_spans_carry_the_client_trace(otlp_receiver: OtlpReceiver, tmp_path: Path) -> None:
    env = dict(os.environ, OTEL_BSP_SCHEDULE_DELAY="100")
    with ServerProcess(("--backend", "sim", "--otlp-endpoint", otlp_receiver.endpoint),
                       env=env) as server:  # fmt: skip
        result = benchmark("--url", server.url, "--requests", "3", "--output-len", "4",
                           "--quiet", "--otlp-endpoint", otlp_receiver.endpoint,
                           cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr
        # no --output: a run directory of its own, named on stdout
        (run_dir,) = (tmp_path / "runs").iterdir()
        assert f"run directory: {run_dir.relative_to(tmp_path)}" in result.stdout
        assert json.loads((run_dir / "results.json").read_text())["records_path"] == (
            "requests.jsonl"
        )
        records = read_jsonl(run_dir / "requests.jsonl")
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
