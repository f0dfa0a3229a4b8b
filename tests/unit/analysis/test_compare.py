"""``open-autoglm compare``: the seed's backend table from several reports, in every format."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from open_autoglm.cli import main


def report(
    path: Path, backend: str, model: str, mean_ms: float, tps: float, gpu: int | None
) -> Path:
    doc = {
        "version": "open-autoglm.report/1",
        "run": {"backend": backend, "model": model},
        "load": {
            "levels": [
                {
                    "index": 0,
                    "label": "c=16",
                    "measured": 200,
                    "error_rate": 0.005,
                    "request_throughput": 3.2,
                    "output_token_throughput": tps,
                    "e2e_ms": {"mean": mean_ms, "p95": mean_ms * 1.5},
                    "ttft_ms": {"p95": mean_ms / 4},
                },
            ]
        },
        "resources": {"server_rss_peak_bytes": 10_200_000_000, "gpu_memory_peak_bytes": gpu},
    }
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def reports(tmp_path: Path) -> list[Path]:
    return [
        report(tmp_path / "ort.json", "onnxruntime", "qwen2-7b", 412, 89.3, None),
        report(tmp_path / "trt.json", "tensorrt", "qwen2-7b", 305, 121.7, 9_800_000_000),
        report(tmp_path / "vllm.json", "vllm", "<script>x</script>", 267, 145.2, 11_100_000_000),
    ]


def test_text_table_has_one_row_per_backend(
    reports: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", *map(str, reports)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "mean latency (ms)" in lines[0]
    assert "tokens/s" in lines[0]
    assert "peak memory (GB)" in lines[0]
    ort = next(line for line in lines if line.startswith("onnxruntime qwen2-7b"))
    assert ort.split()[3:7] == ["200", "412.0", "618.0", "103.0"]
    assert "10.20" in ort  # server RSS peak when no GPU memory was measured
    trt = next(line for line in lines if line.startswith("tensorrt"))
    assert "9.80 (GPU)" in trt
    assert "0.50%" in trt


def test_runs_of_one_backend_on_other_devices_are_told_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = []
    for name, runtime in (
        ("a.json", {"device": "cuda", "kv_cache": "cuda"}),
        ("b.json", {"device": "cuda", "kv_cache": "host"}),
        ("c.json", {"device": "cpu", "kv_cache": "host"}),
    ):
        path = report(tmp_path / name, "onnxruntime", "smollm2-135m", 300, 100.0, None)
        doc = json.loads(path.read_text())
        doc["run"]["runtime"] = runtime
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    assert main(["compare", *paths]) == 0
    rows = [line.split("  ")[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == [
        "onnxruntime smollm2-135m [cuda]",
        "onnxruntime smollm2-135m [cuda, KV cache on host]",
        "onnxruntime smollm2-135m [cpu]",
    ]


def test_markdown_and_csv(reports: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--format", "markdown", *map(str, reports[:2])]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| run | level | requests | mean latency (ms)")
    assert md[2].startswith("| onnxruntime qwen2-7b | c=16 | 200 | 412.0 |")
    assert main(["compare", "--format", "csv", *map(str, reports[:2])]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["run"] for r in rows] == ["onnxruntime qwen2-7b", "tensorrt qwen2-7b"]
    assert float(rows[1]["tokens_per_s"]) == 121.7


def test_markdown_escapes_html_and_table_syntax_in_model_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = report(
        tmp_path / "evil.json", "vllm", '<img src=x onerror="alert(1)">|*x*\nnext', 267, 1.0, None
    )
    assert main(["compare", "--format", "markdown", str(evil)]) == 0
    md = capsys.readouterr().out.splitlines()
    assert len(md) == 3  # the newline in the name did not start a new row
    row = md[2]
    assert "<img" not in row
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in row
    assert "\\|\\*x\\*" in row
    assert row.count(" | ") == 9  # ten cells: the | in the name is not a column break


def test_html_page_is_self_contained_and_escaped(reports: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "compare.html"
    assert main(["compare", "--format", "html", "--output", str(out), *map(str, reports)]) == 0
    page = out.read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "http" not in page  # nothing fetched from the network
    assert page.count("<tr>") == 4


def test_a_bad_report_is_one_line_and_exit_2(
    reports: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["compare", str(reports[0]), str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("open-autoglm: error: ")
    assert "broken.json is not a readable JSON report" in err
    assert len(err.strip().splitlines()) == 1


def test_a_level_a_report_lacks_is_named_with_the_levels_it_has(
    reports: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--level 9`` once said "the reports have no levels to compare"."""
    assert main(["compare", "--level", "9", *map(str, reports[:2])]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("open-autoglm: error: no level 9 to compare (--level is an index): ")
    for path in reports[:2]:
        assert f"{path} has levels 0 (c=16)" in err
    assert main(["compare", "--level", "0", *map(str, reports[:2])]) == 0
    assert capsys.readouterr().out.count("c=16") == 2


def test_a_field_of_the_wrong_type_is_named(
    reports: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(reports[1].read_text())
    doc["load"]["levels"][0]["e2e_ms"]["p95"] = "slow"
    reports[1].write_text(json.dumps(doc))
    assert main(["compare", *map(str, reports)]) == 2
    err = capsys.readouterr().err
    assert "trt.json: levels.0.e2e_ms.p95: Input should be a valid number" in err
    assert len(err.strip().splitlines()) == 1


def test_the_golden_report_reads_as_one_row_a_level(capsys: pytest.CaptureFixture[str]) -> None:
    golden = Path(__file__).parents[2] / "fixtures" / "report_run" / "golden_report.json"
    assert main(["compare", "--format", "json", str(golden)]) == 0
    rows = json.loads(capsys.readouterr().out)
    levels = json.loads(golden.read_text())["load"]["levels"]
    assert [r["run"] for r in rows] == ["sim sim-llm [cpu]"] * 5
    assert [r["requests"] for r in rows] == [lv["measured"] for lv in levels]
    assert [r["p95_latency_ms"] for r in rows] == [lv["e2e_ms"]["p95"] for lv in levels]
    assert rows[0]["peak_memory_source"] == "rss"


def test_html_page_draws_percentiles_against_load_per_run(tmp_path: Path) -> None:
    golden = Path(__file__).parents[2] / "fixtures" / "report_run" / "golden_report.json"
    doc = json.loads(golden.read_text())
    doc["run"]["backend"] = "other"
    for lv in doc["load"]["levels"]:
        lv["e2e_ms"]["p99"] *= 2
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    out = tmp_path / "compare.html"
    args = ["compare", "--format", "html", "--output", str(out), str(golden), str(other)]
    assert main(args) == 0
    page = out.read_text()
    for metric in ("TTFT", "TPOT", "ITL", "E2E"):
        assert f"<h3>{metric} against load</h3>" in page
    # one line per run and percentile, named in the legend
    for name in ("sim sim-llm [cpu] p50", "other sim-llm [cpu] p99"):
        assert f"{name}</span>" in page
    assert "concurrency (requests in flight)" in page
    assert "<script" not in page
    # the second run's E2E p99 line is drawn twice as high as the first's at every level
    e2e = page[page.index("<h3>E2E against load</h3>") :]

    def heights(name: str) -> list[float]:
        found = re.search(rf'points="([^"]+)"><title>{re.escape(name)}</title>', e2e)
        assert found is not None, name
        axis = 260.0  # the plot's bottom edge in the chart's coordinates
        return [axis - float(p.split(",")[1]) for p in found.group(1).split()]

    first, second = heights("sim sim-llm [cpu] p99"), heights("other sim-llm [cpu] p99")
    assert second == pytest.approx([2 * h for h in first], abs=0.2)
