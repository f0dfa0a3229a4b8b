"""The record contract: one measured rule, in Python and in DuckDB, and literal file paths."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from open_autoglm.loadgen import (
    RECORD_COLUMNS,
    RecordWriter,
    RequestRecord,
    is_measured,
    load_records_table,
    read_record_dicts,
    read_records,
)

LINES = [
    {"index": 0, "level": 0, "phase": "warmup", "status": "ok", "e2e_s": 9.0},
    {"index": 1, "level": 0, "phase": "measure", "status": "ok", "e2e_s": 1.0},
    {"index": 2, "level": 0, "phase": "measure", "status": "error", "error_type": "500"},
    {"index": 3, "level": 0, "phase": "measure", "status": "cancelled"},
    {"index": 4, "level": 1, "e2e_s": 2.0, "unknown_key": [1, 2]},  # another tool's line
    {"index": 5, "level": 1, "phase": "cooldown", "status": "ok", "e2e_s": 8.0},
]


def _write(path: Path, lines: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + "\n")
    return path


def test_one_measured_rule_in_python_and_sql(tmp_path: Path) -> None:
    path = _write(tmp_path / "requests.jsonl", LINES)
    expected = [is_measured(r.get("phase"), r.get("status")) for r in read_record_dicts(path)]
    assert expected == [False, True, True, False, True, False]
    con = duckdb.connect()
    assert load_records_table(con, path) == len(LINES)
    rows = con.execute('SELECT measured, ok, phase FROM requests ORDER BY "index"').fetchall()
    assert [m for m, _, _ in rows] == expected
    assert [ok for _, ok, _ in rows] == [True, True, False, False, True, True]
    columns = [d[0] for d in con.execute("SELECT * FROM requests LIMIT 0").description]
    assert columns == [*RECORD_COLUMNS, "measured", "ok"]


def test_written_records_read_back_and_follow_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    with RecordWriter(path) as writer:
        for i, phase in enumerate(("warmup", "measure", "measure")):
            record = RequestRecord(index=i, level=0, phase=phase, scheduled_s=0.0,  # type: ignore[arg-type]
                                   sched_lag_s=0.0, queue_s=0.0, sent_s=0.0, sent_unix_ns=0,
                                   chunk_offsets_s=[0.1, 0.3])  # fmt: skip
            if i == 2:
                record.status = "cancelled"
            writer.write(record)
    records = read_records(path)
    assert [r.measured for r in records] == [False, True, False]
    con = duckdb.connect()
    load_records_table(con, path)
    assert con.execute("SELECT count(*) FILTER (WHERE measured) FROM requests").fetchone() == (1,)
    assert con.execute("SELECT chunk_offsets_s FROM requests LIMIT 1").fetchone() == ([0.1, 0.3],)


@pytest.mark.parametrize("name", ["run[1]", "run*", "run?"])
def test_a_path_with_glob_characters_is_read_literally(tmp_path: Path, name: str) -> None:
    _write(tmp_path / "run1" / "requests.jsonl", LINES)  # what a glob would match instead
    mine = _write(tmp_path / name / "requests.jsonl", LINES[:2])
    con = duckdb.connect()
    assert load_records_table(con, mine) == 2
    with pytest.raises(FileNotFoundError):
        load_records_table(con, tmp_path / "run[2]" / "requests.jsonl")


def test_a_line_that_is_not_an_object_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text('{"index": 0}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"requests\.jsonl:2 is not a JSON object"):
        list(read_record_dicts(path))
