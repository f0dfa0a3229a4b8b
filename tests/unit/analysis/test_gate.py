"""The release gate as a user runs it: ``open-autoglm check`` on reports with request records
beside them; exit codes, the table, and regressions told apart from run-to-run noise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from open_autoglm.analysis._gate import check_report
from open_autoglm.cli import main
from open_autoglm.objectives import parse_gate


def make_run(
    directory: Path,
    *,
    seed: int,
    scale: float = 1.0,
    requests: int = 600,
    failed: int = 0,
    levels: int = 1,
    records: bool = True,
    backend: str = "sim",
) -> Path:
    """A report.json (report schema 1, the load generator's levels inside) with its
    requests.jsonl: E2E lognormal around 100 ms × ``scale``, TTFT a fifth of it."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    lines, level_docs = [], []
    for level in range(levels):
        e2e = rng.lognormal(np.log(0.1 * scale * (1 + level)), 0.3, requests)
        ttft = e2e * 0.2
        for i in range(requests):
            lines.append({"index": i, "level": level, "phase": "measure", "status": "ok",
                          "e2e_s": float(e2e[i]), "ttft_s": float(ttft[i]),
                          "tpot_s": 0.01, "output_tokens": 16,
                          "chunk_offsets_s": [float(ttft[i]), float(e2e[i])]})  # fmt: skip
        for i in range(failed):
            lines.append({"index": requests + i, "level": level, "phase": "measure",
                          "status": "error", "error_type": "503"})  # fmt: skip
        ms = e2e * 1e3
        level_docs.append(
            {
                "index": level,
                "label": f"c={4 * 2**level}",
                "mode": "concurrency",
                "target": 4 * 2**level,
                "measured": requests + failed,
                "succeeded": requests,
                "failed": failed,
                "error_rate": failed / (requests + failed),
                "request_throughput": 40.0 / scale,
                "output_token_throughput": 640.0 / scale,
                "e2e_ms": {"mean": float(ms.mean()), "p95": float(np.percentile(ms, 95)),
                           "p99": float(np.percentile(ms, 99)), "median": float(np.median(ms))},
                "ttft_ms": {"mean": float(ms.mean() / 5), "p95": float(np.percentile(ms, 95) / 5),
                            "p99": float(np.percentile(ms, 99) / 5)},
            }
        )  # fmt: skip
    if records:
        (directory / "requests.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    report = {
        "version": "open-autoglm.report/1",
        "run": {"backend": backend, "model": "smollm2-135m"},
        "load": {"version": "open-autoglm.loadgen.results/1", "levels": level_docs,
                 "records_path": "requests.jsonl" if records else None},
        "resources": {"server_rss_peak_bytes": 2_500_000_000, "gpu_memory_peak_bytes": None},
    }  # fmt: skip
    path = directory / "report.json"
    path.write_text(json.dumps(report))
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def row(out: str, check: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(check + " "))


def test_met_objectives_pass_with_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = make_run(tmp_path / "run", seed=1)
    code, out, _ = run_cli(capsys, str(report), "--slo", "p95_e2e<=200ms,p99_ttft<=1s",
                           "--max-error-rate", "0.5%")  # fmt: skip
    assert code == 0
    assert out.splitlines()[0].split() == ["check", "level", "measured", "limit", "verdict"]
    assert row(out, "p95_e2e").endswith("pass")
    assert "<= 200 ms" in row(out, "p95_e2e")
    assert "gate: PASS, 3 checks" in out


def test_a_broken_objective_fails_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = make_run(tmp_path / "run", seed=1, failed=12)
    code, out, _ = run_cli(capsys, str(report), "--slo", "p99_ttft<=20ms",
                           "--max-error-rate", "0.5%")  # fmt: skip
    assert code == 1
    assert row(out, "p99_ttft").endswith("FAIL")
    assert row(out, "error_rate").endswith("FAIL")
    assert "1.96%" in row(out, "error_rate")  # 12 of 612
    assert "gate: FAIL, 2 of 2 checks" in out


def test_the_worst_level_decides(tmp_path: Path) -> None:
    report = make_run(tmp_path / "run", seed=2, levels=3)
    result = check_report(report, parse_gate("p95_e2e<=250ms"))
    (check,) = result.checks
    # level 2 runs at 3× the latency of level 0: it is the one reported, and it fails
    assert check.level == "c=16 (worst)"
    assert check.verdict == "FAIL"
    only_first = check_report(report, parse_gate("p95_e2e<=250ms"), level=0)
    assert only_first.passed


def test_same_distribution_is_not_a_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = make_run(tmp_path / "old", seed=10)
    new = make_run(tmp_path / "new", seed=11)
    code, out, _ = run_cli(capsys, str(new), "--baseline", str(old), "--slo", "p95_e2e<=1s")
    assert code == 0
    line = row(out, "p95_e2e vs baseline")
    assert line.endswith("pass")
    assert "CI" in line


def test_a_shifted_distribution_is_a_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = make_run(tmp_path / "old", seed=10)
    new = make_run(tmp_path / "new", seed=11, scale=1.25)
    code, out, _ = run_cli(capsys, str(new), "--baseline", str(old), "--slo", "p95_e2e<=1s")
    assert code == 1
    assert row(out, "p95_e2e vs baseline").endswith("REGRESSION")
    # the objective itself still holds: the failure is the regression alone
    assert row(out, "p95_e2e").endswith("pass")
    result = check_report(new, parse_gate("p95_e2e<=1s"), baseline=old)
    regression = next(c for c in result.checks if c.verdict == "REGRESSION")
    assert regression.change_low is not None
    assert regression.change_low > 0
    assert regression.p_value is not None
    assert regression.p_value < 1e-6


def test_a_difference_inside_the_noise_is_not_flagged(tmp_path: Path) -> None:
    # 60 requests a run: a bare difference of P95s moves a lot, the bootstrap knows it
    old = make_run(tmp_path / "old", seed=20, requests=60)
    new = make_run(tmp_path / "new", seed=21, requests=60, scale=1.08)
    result = check_report(new, parse_gate("p95_e2e<=1s"), baseline=old)
    regression = next(c for c in result.checks if c.check == "p95_e2e vs baseline")
    assert regression.verdict == "pass"
    assert regression.change_low is not None
    assert regression.change_low < 0 < (regression.change_high or 0)


def test_without_an_slo_the_baseline_checks_median_and_tail(tmp_path: Path) -> None:
    old = make_run(tmp_path / "old", seed=3)
    new = make_run(tmp_path / "new", seed=4, failed=30)
    result = check_report(new, [], baseline=old)
    names = [c.check for c in result.checks]
    assert names == [
        "p50_e2e vs baseline",
        "p95_e2e vs baseline",
        "p95_ttft vs baseline",
        "error_rate vs baseline",
    ]
    assert result.checks[-1].verdict == "REGRESSION"  # 30 failures against none
    assert result.exit_code == 1


def test_without_records_percentiles_come_from_the_levels(tmp_path: Path) -> None:
    report = make_run(tmp_path / "run", seed=5, records=False)
    result = check_report(report, parse_gate("p95_e2e<=1s,p99.9_e2e<=1s"))
    p95, p999 = result.checks
    assert p95.verdict == "pass"
    # a statistic the level does not carry cannot be measured: the gate neither passes nor
    # fails blind; it is undecided and says what it needs
    assert p999.verdict == "n/a"
    assert p999.note is not None
    assert "requests.jsonl" in p999.note
    assert result.exit_code == 2
    # a check that fails still decides, whatever could not be measured
    assert check_report(report, parse_gate("p95_e2e<=1us,p99.9_e2e<=1s")).exit_code == 1


def _refuse_level(report: Path, level: int) -> Path:
    """Make every request of ``level`` a refusal (503), in the records and the results."""
    records = report.parent / "requests.jsonl"
    kept = [json.loads(x) for x in records.read_text().splitlines()]
    for x in kept:
        if x["level"] == level:
            x.update(status="error", error_type="503")
            for key in ("e2e_s", "ttft_s", "tpot_s", "chunk_offsets_s"):
                x.pop(key)
    records.write_text("".join(json.dumps(x) + "\n" for x in kept))
    doc = json.loads(report.read_text())
    lv = doc["load"]["levels"][level]
    lv.update(succeeded=0, failed=lv["measured"], error_rate=1.0)
    report.write_text(json.dumps(doc))
    return report


def test_a_run_where_every_request_failed_is_not_judged_on_latency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """All refused: no latency was measured, so a latency objective cannot be judged (exit 2
    with the reason), while the error rate, measured, fails the gate (exit 1)."""
    report = _refuse_level(make_run(tmp_path / "run", seed=3, requests=20), 0)
    code, out, err = run_cli(capsys, str(report), "--slo", "p95_e2e<=1s")
    assert code == 2, out + err
    assert row(out, "p95_e2e").split()[-1] == "n/a"
    assert (
        "gate: CANNOT JUDGE, 1 of 1 checks could not be measured: cannot measure: no "
        "successful request measured it" in out
    )
    assert "FAIL" not in out
    code, out, _ = run_cli(capsys, str(report), "--slo", "p95_e2e<=1s,error_rate<=1%")
    assert code == 1
    assert "gate: FAIL, 1 of 2 checks: error_rate 100" in out


def test_a_level_with_no_measurement_keeps_a_passing_objective_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Level c=8 was all refused: p95_e2e met at c=4 does not pass the run."""
    report = _refuse_level(make_run(tmp_path / "run", seed=4, requests=50, levels=2), 1)
    code, out, err = run_cli(capsys, str(report), "--slo", "p95_e2e<=10s")
    assert code == 2, out + err
    assert "note: p95_e2e: cannot measure at level c=8: no successful request measured it" in out
    code, out, err = run_cli(capsys, str(report), "--slo", "p95_e2e<=1us")
    assert code == 1, out + err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--slo", "p95_e2e<=fast"], "bad --slo term 'p95_e2e<=fast'"),
        (["--slo", "p95_latency<=200ms"], "bad --slo metric"),
        (["--slo", "e2e<=200ms"], "needs a statistic, e.g. p95_e2e"),
        (["--slo", "p95_e2e<=200"], "needs a time unit"),
        (["--slo", "q95_e2e<=2s"], "bad --slo statistic 'q95'"),
        (["--max-error-rate", "half"], "bad --max-error-rate 'half'"),
        (["--slo", ""], "--slo is empty"),
        ([], "nothing to check"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    report = make_run(tmp_path / "run", seed=1)
    code, out, err = run_cli(capsys, str(report), *argv)
    assert code == 2, (out, err)
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("open-autoglm: error: ")
    assert message in err


def test_a_missing_or_foreign_report_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, str(tmp_path / "nope.json"), "--slo", "p95_e2e<=1s")
    assert code == 2
    assert "no such file" in err
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": "world"}))
    code, _, err = run_cli(capsys, str(other), "--slo", "p95_e2e<=1s")
    assert code == 2
    assert "not an open-autoglm report" in err


def test_a_run_with_no_data_is_not_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 requests against 0 requests is no evidence: exit 2 with the reason, never PASS."""
    old = make_run(tmp_path / "old", seed=1)
    empty = make_run(tmp_path / "empty", seed=2, requests=1)
    doc = json.loads(empty.read_text())
    doc["load"]["levels"][0].update(measured=0, succeeded=0, failed=0)
    empty.write_text(json.dumps(doc))
    (tmp_path / "empty" / "requests.jsonl").write_text("")
    for argv in ([str(empty), "--baseline", str(old)], [str(old), "--baseline", str(empty)],
                 [str(empty), "--slo", "p95_e2e<=1s"]):  # fmt: skip
        code, out, err = run_cli(capsys, *argv)
        assert code == 2, out + err
        assert "gate: PASS" not in out
        assert "no measured request finished in it (no data)" in err


def test_records_that_are_not_the_runs_own_are_not_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs that wrote one requests.jsonl: the counts disagree with the results."""
    old = make_run(tmp_path / "old", seed=1, requests=100)
    new = make_run(tmp_path / "new", seed=2, requests=100)
    shared = (tmp_path / "old" / "requests.jsonl").read_text()
    with (tmp_path / "new" / "requests.jsonl").open("a") as records:
        records.write(shared)  # another run's records appended to this one's
    code, _, err = run_cli(capsys, str(new), "--baseline", str(old))
    assert code == 2
    assert "hold 200 measured requests of level c=4, its results 100" in err
    assert "not this run's records" in err


def test_a_check_that_cannot_be_measured_leaves_the_gate_undecided(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = make_run(tmp_path / "old", seed=1, requests=8)
    new = make_run(tmp_path / "new", seed=2, requests=8)
    result = check_report(new, [], baseline=old)
    assert not result.passed
    assert result.exit_code == 2
    code, out, _ = run_cli(capsys, str(new), "--baseline", str(old))
    assert code == 2
    assert "gate: CANNOT JUDGE, 3 of 4 checks could not be measured: too few requests" in out
    # a check that fails decides the gate whatever could not be measured
    failing = check_report(new, parse_gate("p95_e2e<=1us"), baseline=old)
    assert failing.exit_code == 1
