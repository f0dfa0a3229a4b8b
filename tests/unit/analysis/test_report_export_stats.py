"""A report says when the server lost spans on export (its counts in ``span_export.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from open_autoglm.analysis import RunDirectory, build_report
from open_autoglm.testing import SyntheticRun


@pytest.mark.parametrize(("dropped", "noted"), [(0, False), (12, True)])
def test_dropped_spans_are_shown_in_the_report(tmp_path: Path, dropped: int, noted: bool) -> None:
    SyntheticRun(requests=50, seed=3, levels=(4,)).write(tmp_path)
    RunDirectory(tmp_path).export_stats_path.write_text(
        json.dumps({"spans_exported": 988, "spans_dropped": dropped, "spans_queued": 0,
                    "traces_sampled_out": 0})
    )  # fmt: skip
    notes = build_report(tmp_path).notes
    lost = [note for note in notes if "dropped" in note]
    assert bool(lost) is noted
    if noted:
        assert "dropped 12 of 1000 spans" in lost[0]
