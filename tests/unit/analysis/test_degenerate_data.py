"""Statistics and JSON on degenerate data: all-zero samples give a verdict, never a traceback,
and no JSON the package writes holds NaN or Infinity (parsed here with a strict parser)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from open_autoglm import _strict_json as strict_json
from open_autoglm.analysis import Report
from open_autoglm.analysis._metric_samples import ResourceSummary
from open_autoglm.analysis._report import REPORT_VERSION
from open_autoglm.cli import main


def strict_loads(text: str) -> Any:
    """JSON as RFC 8259 has it: NaN, Infinity and -Infinity refused."""

    def refuse(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def make_run(directory: Path, itl_s: float, *, requests: int = 24, e2e_s: float = 0.1) -> Path:
    """A report with records whose chunks arrive ``itl_s`` apart (0: several per read)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(requests):
        ttft = 0.02 + 0.001 * (i % 5)
        offsets = [ttft + k * itl_s for k in range(4)]
        lines.append({"index": i, "level": 0, "phase": "measure", "status": "ok",
                      "ttft_s": ttft, "e2e_s": e2e_s, "tpot_s": 0.0, "output_tokens": 4,
                      "chunk_offsets_s": offsets})  # fmt: skip
    (directory / "requests.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    level = {"index": 0, "label": "c=2", "measured": requests, "succeeded": requests,
             "failed": 0, "error_rate": 0.0, "request_throughput": 10.0,
             "output_token_throughput": 40.0, "e2e_ms": {"median": e2e_s * 1e3}}  # fmt: skip
    report = {"version": "open-autoglm.report/1", "run": {"backend": "sim", "model": "m"},
              "load": {"levels": [level], "records_path": "requests.jsonl"},
              "resources": {}}  # fmt: skip
    path = directory / "report.json"
    path.write_text(json.dumps(report))
    return path


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("old_itl", "new_itl"), [(0.0, 0.0), (0.0, 0.01)])
def test_an_all_zero_baseline_is_not_judgeable_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old_itl: float, new_itl: float
) -> None:
    old = make_run(tmp_path / "old", old_itl)
    new = make_run(tmp_path / "new", new_itl)
    code, out, err = check(capsys, str(new), "--baseline", str(old), "--slo", "p50_itl<=1s")
    # both sides measured: a verdict and exit 0, never "cannot judge" (that is for no data)
    assert code == 0, err
    assert "gate: PASS" in out
    assert "Traceback" not in err
    row = next(line for line in out.splitlines() if line.startswith("p50_itl vs baseline"))
    same = old_itl == new_itl
    assert row.split()[-1] == ("pass" if same else "n/a")
    assert ("no change" if same else "not judgeable") in out
    code, out, _ = check(capsys, str(new), "--baseline", str(old), "--slo", "p50_itl<=1s",
                         "--format", "json")  # fmt: skip
    doc = strict_loads(out)
    (regression,) = [c for c in doc["checks"] if c["check"] == "p50_itl vs baseline"]
    assert regression["verdict"] == ("pass" if old_itl == new_itl else "n/a")
    assert regression["change"] == (0.0 if old_itl == new_itl else None)
    assert regression["baseline_value"] == 0.0


def test_identical_constant_samples_give_a_finite_json_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = make_run(tmp_path / "old", 0.01)
    new = make_run(tmp_path / "new", 0.01)
    code, out, _ = check(capsys, str(new), "--baseline", str(old), "--slo", "p50_e2e<=1s",
                         "--format", "json")  # fmt: skip
    assert code == 0
    doc = strict_loads(out)
    (regression,) = [c for c in doc["checks"] if c["check"] == "p50_e2e vs baseline"]
    assert regression["verdict"] == "pass"
    assert regression["change"] == 0.0


def test_strict_dumps_writes_null_and_says_why() -> None:
    doc = {"a": 1.0, "levels": [{"mean": float("nan"), "max": float("inf")}], "b": [-float("inf")]}
    out = strict_loads(strict_json.dumps(doc))
    assert out["levels"] == [{"mean": None, "max": None}]
    assert out["b"] == [None]
    assert out["null_reasons"] == {
        "levels[0].mean": "not a finite number: nan",
        "levels[0].max": "not a finite number: inf",
        "b[0]": "not a finite number: -inf",
    }
    rows = strict_loads(strict_json.dumps([{"x": float("nan")}, {"x": 2.0}]))
    assert rows == [{"x": None, "null_reasons": {"x": "not a finite number: nan"}}, {"x": 2.0}]
    assert strict_loads(strict_json.dumps({"p": Path("/x")}, default=str)) == {"p": "/x"}


def test_a_report_with_a_nan_is_written_strictly(tmp_path: Path) -> None:
    resources = ResourceSummary(
        samples=0,
        server_rss_peak_bytes=None,
        server_rss_mean_bytes=None,
        gpu_memory_peak_bytes=None,
        gpu_utilization_mean=float("nan"),
        queue_depth_max=None,
        batch_size_max=None,
        batch_size_mean=None,
    )
    report = Report(version=REPORT_VERSION, tool_version="t", created_unix_ns=0, run={},
                    load={"levels": [{"e2e_ms": {"mean": float("inf")}}]}, resources=resources,
                    stages=None)  # fmt: skip
    report.write(tmp_path / "report.json")
    doc = strict_loads((tmp_path / "report.json").read_text())
    assert doc["resources"]["gpu_utilization_mean"] is None
    assert doc["load"]["levels"][0]["e2e_ms"]["mean"] is None
    assert set(doc["null_reasons"]) == {"resources.gpu_utilization_mean",
                                        "load.levels[0].e2e_ms.mean"}  # fmt: skip


def test_compare_json_of_reports_holding_nan_is_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an old report (Python's json writes NaN and Infinity by default) read back and compared
    level = {"index": 0, "label": "c=1", "measured": 5, "error_rate": float("nan"),
             "request_throughput": float("inf"), "output_token_throughput": 1.0,
             "e2e_ms": {"mean": float("nan"), "p95": 1.0}}  # fmt: skip
    doc = {"version": "open-autoglm.report/1", "run": {"backend": "sim", "model": "m"},
           "load": {"levels": [level]}, "resources": {}}  # fmt: skip
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    assert main(["compare", str(path), "--format", "json"]) == 0
    (row,) = strict_loads(capsys.readouterr().out)
    assert row["null_reasons"]
    assert all(row[key.split(".")[0]] is None for key in row["null_reasons"])
