"""One record per finished request, appended to ``requests.jsonl`` as soon as it finishes."""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

Status = Literal["ok", "error", "cancelled"]
Phase = Literal["warmup", "measure", "cooldown"]

#: The version of one line of ``requests.jsonl``.
RECORD_VERSION = "open-autoglm.loadgen.record/1"


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
    chunk_offsets_s: list[float] = field(default_factory=list)  # content chunks, from sent
    input_tokens: int | None = None
    output_tokens: int | None = None
    output_tokens_source: Literal["usage", "tokenizer"] | None = None
    finish_reason: str | None = None
    trace_id: str | None = None
    worker: int | None = None  # the worker that sent it, in a distributed run (--workers)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def itl_s(self) -> list[float]:
        """Gaps between consecutive content chunks."""
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

    def write_lines(self, lines: bytes, count: int) -> None:
        """Append ``count`` records already serialised as JSON lines (a distributed run's
        workers send them so), in one write."""
        if self._file is None:
            return
        self._file.write(lines)
        self._file.flush()
        self.count += count

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(path: Path) -> list[RequestRecord]:
    """Read ``requests.jsonl`` back (for analysis and tests)."""
    records = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                records.append(RequestRecord(**json.loads(line)))
    return records
