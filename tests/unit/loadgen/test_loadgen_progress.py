"""The live progress display shows done/total, errors, the latest TTFT and tokens/s."""

from __future__ import annotations

import io

from rich.console import Console

from open_autoglm.loadgen import Level, RequestRecord, RichProgress, assess
from open_autoglm.loadgen._results import summarize_level


def test_progress_shows_counts_errors_and_ttft() -> None:
    out = io.StringIO()
    progress = RichProgress(Console(file=out, force_terminal=False, width=200))
    progress.level_started(0, "concurrency=2", total=3, duration_s=None)
    records = []
    for i, status in enumerate(["ok", "ok", "error"]):
        r = RequestRecord(index=i, level=0, phase="measure", scheduled_s=0.0, sched_lag_s=0.0,
                          queue_s=0.0, sent_s=0.0, sent_unix_ns=0)  # fmt: skip
        if status == "ok":
            r.ttft_s, r.e2e_s, r.output_tokens, r.done_s = 0.0123, 0.05, 10, 0.05
        else:
            r.status, r.error_type, r.done_s = "error", "500", 0.01
        records.append(r)
        progress.record(r)
    level = Level(mode="concurrency", value=2, requests=3)
    progress.level_finished(summarize_level(0, level, records, 0, None, assess([], [], 0.0)))
    progress.close()
    text = out.getvalue()
    assert "level 0 concurrency=2" in text
    assert "3/3" in text
    assert "errors 1" in text
    assert "TTFT 12.3 ms" in text


def _record(i: int) -> RequestRecord:
    r = RequestRecord(index=i, level=0, phase="measure", scheduled_s=0.0, sched_lag_s=0.0,
                      queue_s=0.0, sent_s=0.0, sent_unix_ns=0)  # fmt: skip
    r.ttft_s, r.e2e_s, r.output_tokens, r.done_s = 0.01, 0.05, 10, 0.05
    return r


def test_phases_show_before_the_load_and_timed_levels_count_requests() -> None:
    out = io.StringIO()
    progress = RichProgress(Console(file=out, force_terminal=False, width=200))
    progress.phase("starting the server (onnxruntime): preparing the model")
    progress.phase("starting the server (onnxruntime): loading the model")
    progress.level_started(0, "concurrency=16", total=None, duration_s=30.0, warmup_s=5.0)
    for i in range(3):
        progress.record(_record(i))
    progress.close()
    text = out.getvalue()
    assert "starting the server (onnxruntime): loading the model" in text
    # counted in requests, with the level's seconds; never tenths of a second
    assert "3 requests, 0/30 s (warm-up)" in text
    assert "/300" not in text
