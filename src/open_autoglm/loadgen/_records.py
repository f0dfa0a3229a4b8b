"""The record contract: one line of ``requests.jsonl`` per finished request, appended as soon as
it finishes. This module owns the file: its format (:class:`RequestRecord`, one JSON object a
line), how DuckDB reads it (:data:`RECORD_COLUMNS`, :func:`load_records_table`), how Python
reads it (:func:`read_records`, :func:`read_record_dicts`) and the one rule of which requests
are *measured* (:func:`is_measured`, :data:`MEASURED_SQL`). Every reader goes through it.

A reader tolerates lines written by other tools (the synthetic runs of
:mod:`open_autoglm.testing`): a missing key is NULL (None), an unknown key is ignored, a line
without ``phase`` counts as measured and one without ``status`` as a success.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, BinaryIO, Final, Literal

import orjson

if TYPE_CHECKING:
    import duckdb

Status = Literal["ok", "error", "cancelled"]
Phase = Literal["warmup", "measure", "cooldown"]

#: The version of one line of ``requests.jsonl``.
RECORD_VERSION = "open-autoglm.loadgen.record/1"
#: The records' file name in a run directory.
RECORDS_FILE: Final = "requests.jsonl"

#: DuckDB type of every key of a line (the fields of :class:`RequestRecord`, in order).
RECORD_COLUMNS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "index": "BIGINT",
        "level": "BIGINT",
        "phase": "VARCHAR",
        "scheduled_s": "DOUBLE",
        "sched_lag_s": "DOUBLE",
        "queue_s": "DOUBLE",
        "sent_s": "DOUBLE",
        "sent_unix_ns": "BIGINT",
        "status": "VARCHAR",
        "http_status": "BIGINT",
        "error_type": "VARCHAR",
        "error": "VARCHAR",
        "ttft_s": "DOUBLE",
        "e2e_s": "DOUBLE",
        "tpot_s": "DOUBLE",
        "done_s": "DOUBLE",
        "chunk_offsets_s": "DOUBLE[]",
        "input_tokens": "BIGINT",
        "output_tokens": "BIGINT",
        "output_tokens_source": "VARCHAR",
        "finish_reason": "VARCHAR",
        "trace_id": "VARCHAR",
    }
)

#: The measured rule in SQL over :data:`RECORD_COLUMNS`: see :func:`is_measured`.
MEASURED_SQL: Final = (
    "coalesce(phase, 'measure') = 'measure' AND coalesce(status, 'ok') <> 'cancelled'"
)
#: A successful request, in SQL: see :func:`is_ok`.
OK_SQL: Final = "coalesce(status, 'ok') = 'ok'"
_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_measured(phase: str | None, status: str | None) -> bool:
    """The one rule of which requests the statistics are about: sent inside the measurement
    window (not warm-up or cool-down; no phase counts as inside) and not cancelled by an
    interrupted run. Failures are measured: they count in the error rate."""
    return (phase or "measure") == "measure" and (status or "ok") != "cancelled"


def is_ok(status: str | None) -> bool:
    """A successful request (no status counts as a success)."""
    return (status or "ok") == "ok"


@dataclass(slots=True)
class RequestRecord:
    """What the client saw of one request. Offsets are seconds from the level's start
    (``perf_counter``); ``sent_unix_ns`` is the wall clock at send, to join with spans."""

    index: int
    level: int
    phase: Phase
    scheduled_s: float  # when the request was due to be sent
    sched_lag_s: float  # how late the client woke up for it (< 0: early, timer granularity)
    queue_s: float  # time waiting on the client's own concurrency limiter
    sent_s: float  # just before the HTTP request went out
    sent_unix_ns: int
    status: Status = "ok"
    http_status: int | None = None
    error_type: str | None = None
    error: str | None = None
    ttft_s: float | None = None
    e2e_s: float | None = None
    tpot_s: float | None = None
    done_s: float | None = None  # the response's last byte, from the level's start
    chunk_offsets_s: list[float] = field(default_factory=list)  # output chunks, from sent
    input_tokens: int | None = None
    output_tokens: int | None = None
    output_tokens_source: Literal["usage", "tokenizer"] | None = None
    finish_reason: str | None = None
    trace_id: str | None = None
    answer_ttft_s: float | None = None  # first answer (non-reasoning) output, from sent
    reasoning_tokens: int | None = None  # usage.completion_tokens_details, else re-tokenized
    streamed: bool = True  # False: one JSON answer to a streaming request (TTFT = E2E)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def measured(self) -> bool:
        """See :func:`is_measured`."""
        return is_measured(self.phase, self.status)

    def itl_s(self) -> list[float]:
        """Gaps between consecutive output chunks."""
        offsets = self.chunk_offsets_s
        return [b - a for a, b in itertools.pairwise(offsets)]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RecordWriter:
    """Appends each record as one JSON line and flushes it, so a crash loses nothing. The
    file is started afresh: one file holds one run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = path.open("wb")
        self.count = 0

    def write(self, record: RequestRecord) -> None:
        if self._file is None:
            return
        # orjson serialises the dataclass directly, ~20x faster than json + asdict
        self._file.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(path: Path) -> list[RequestRecord]:
    """Read a ``requests.jsonl`` this package wrote back as records (for tests and tools).

    Raises ``TypeError`` on a line that lacks a field of :class:`RequestRecord`; read other
    tools' lines with :func:`read_record_dicts`."""
    return [RequestRecord(**line) for line in read_record_dicts(path)]


def read_record_dicts(path: Path) -> Iterator[dict[str, Any]]:
    """Each line of ``requests.jsonl`` as a dict, blank lines skipped; keys may be missing.

    Raises ``OSError`` when the file cannot be read and ``ValueError`` on a line that is not
    a JSON object."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            value = orjson.loads(line)
            if not isinstance(value, dict):
                raise ValueError(f"{path}:{number} is not a JSON object")
            yield value


def load_records_table(con: duckdb.DuckDBPyConnection, path: Path, table: str = "requests") -> int:
    """Read ``requests.jsonl`` at ``path`` into the TEMP table ``table`` of ``con`` (replaced):
    the columns of :data:`RECORD_COLUMNS` plus ``measured`` and ``ok`` (BOOLEAN, the rules of
    :func:`is_measured` and :func:`is_ok`). Returns the number of rows.

    The file is handed to DuckDB as an open file, never as a path string: DuckDB expands
    ``*``, ``?`` and ``[...]`` in paths, so ``runs/run[1]`` would read ``runs/run1``.
    Raises ``OSError`` when the file cannot be opened and ``duckdb.Error`` on a malformed line.
    """
    if not _IDENTIFIER.match(table):
        raise ValueError(f"bad table name {table!r}")
    source = f"_open_autoglm_records_{table}"
    with path.open("rb") as handle:
        relation = con.read_json(handle, format="newline_delimited", columns=dict(RECORD_COLUMNS))
        con.register(source, relation)
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT *, ({MEASURED_SQL}) AS measured, "
                f"({OK_SQL}) AS ok FROM {source}"
            )
        finally:
            con.unregister(source)
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0
