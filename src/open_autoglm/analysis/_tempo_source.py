"""Spans of a run from Tempo, written into a span store with the collector's schema.

For the trace ids in the run's ``requests.jsonl`` (or, when the records carry none, the ids a
TraceQL search over the run's window finds), each trace is fetched by id from Tempo's HTTP API,
flattened by the collector's own decoder and written with the collector's schema; the stage
breakdown then runs on that file exactly as on the embedded store.

Tempo's answers, as its API documentation and source describe them:

* ``GET /api/v2/traces/<id>``: ``{"trace": {"resourceSpans": [...]}, "status": "PARTIAL"?}``;
  ``GET /api/traces/<id>``: ``{"batches": [...]}`` (``resourceSpans`` before the rename in
  Tempo 2.6). Both are the protobuf JSON mapping of OTLP (gogo ``jsonpb``): trace and span ids
  in **base64**, where OTLP/HTTP JSON has hex, so they are rewritten to hex before the
  collector's OTLP JSON decoder reads them. ``Accept: application/protobuf`` on v1 returns a
  ``tempopb.Trace``, whose field 1 is wire-compatible with ``ExportTraceServiceRequest``.
* ``404`` for a trace Tempo does not have: counted as missing, never an error.
* ``GET /api/search?q=<TraceQL>&start=&end=&limit=``: ``{"traces": [{"traceID": ...}]}``,
  ids hex, sometimes without leading zeros.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import httpx

from open_autoglm.analysis._errors import AnalysisError
from open_autoglm.analysis._run_directory import ReportError, RunDirectory
from open_autoglm.collector import DecodeError, write_span_store
from open_autoglm.collector._decode import (
    EVENT_COLUMNS,
    SPAN_COLUMNS,
    SpanBatch,
    decode_json,
    decode_protobuf,
    flatten,
)
from open_autoglm.loadgen import read_record_dicts
from open_autoglm.telemetry import names as n

logger = logging.getLogger(__name__)

_HEX: Final = frozenset("0123456789abcdefABCDEF")
_ID_KEYS: Final = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
#: The default search: every trace the instrumented server took part in.
DEFAULT_SEARCH: Final = f'{{ resource.service.name = "{n.SERVER_SERVICE_NAME}" }}'


class TempoError(AnalysisError):
    """Tempo cannot be used (unreachable, every fetch failed, a bad search answer, bad config)."""


@dataclass(frozen=True, slots=True)
class TempoConfig:
    """Where Tempo is and how to ask it; checked when built."""

    url: str
    api: Literal["v1", "v2"] = "v2"
    timeout_s: float = 10.0
    max_concurrency: int = 8
    search_query: str = DEFAULT_SEARCH
    search_limit: int = 5000
    #: Seconds added on both sides of the run's window for search and trace look-ups.
    window_margin_s: float = 600.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise TempoError(f"Tempo URL must start with http:// or https://: {self.url}")
        if self.api not in ("v1", "v2"):
            raise TempoError(f"Tempo API must be v1 or v2, got {self.api!r}")
        if self.timeout_s <= 0 or self.max_concurrency < 1 or self.search_limit < 1:
            raise TempoError("timeout_s, max_concurrency and search_limit must be positive")


@dataclass(frozen=True, slots=True)
class TempoFetch:
    """What fetching a run's traces from Tempo did."""

    path: Path
    requested: int
    found: int
    missing: int  # Tempo answered 404 (or an empty trace)
    partial: int  # Tempo marked the trace PARTIAL (v2)
    failed: dict[str, int] = field(default_factory=dict)  # error type -> traces
    spans: int = 0
    rejected_spans: int = 0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        return out

    def summary(self) -> str:
        failed = sum(self.failed.values())
        parts = [f"{self.found}/{self.requested} traces from Tempo ({self.spans} spans)"]
        if self.missing:
            parts.append(f"{self.missing} not found")
        if self.partial:
            parts.append(f"{self.partial} partial")
        if failed:
            kinds = ", ".join(f"{k}: {v}" for k, v in sorted(self.failed.items()))
            parts.append(f"{failed} failed ({kinds})")
        return "; ".join(parts)


def normalize_trace_id(value: str) -> str:
    """A trace id as the span store holds it: 32 lowercase hex digits (zero-padded)."""
    text = value.strip().lower()
    if not text or len(text) > 32 or not _HEX.issuperset(text):
        raise TempoError(f"not a trace id: {value!r}")
    return text.zfill(32)


def _id_to_hex(value: str) -> str:
    """Tempo's base64 id (or an OTLP hex id) as hex; ``""`` when it is neither."""
    if len(value) in (16, 32) and _HEX.issuperset(value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return ""
    return raw.hex() if len(raw) in (8, 16) else ""


def _otlp_document(document: Any) -> dict[str, Any]:
    """Tempo's trace JSON (v1 or v2) as an OTLP JSON ``ExportTraceServiceRequest``."""
    if not isinstance(document, dict):
        raise DecodeError("the trace is not a JSON object")
    trace = document.get("trace", document)  # v2 wraps the trace
    if trace is None:
        trace = {}
    if not isinstance(trace, dict):
        raise DecodeError("'trace' is not a JSON object")
    resource_spans = trace.get("batches", trace.get("resourceSpans", trace.get("resource_spans")))
    if resource_spans is None:
        resource_spans = []
    if not isinstance(resource_spans, list):
        raise DecodeError("'batches'/'resourceSpans' is not a list")
    for rs in resource_spans:
        if not isinstance(rs, dict):
            continue
        scopes = rs.get("scopeSpans", rs.get("scope_spans"))
        if scopes is None and "instrumentationLibrarySpans" in rs:  # Tempo 1.x
            scopes = rs.pop("instrumentationLibrarySpans")
            rs["scopeSpans"] = scopes
        for ss in scopes if isinstance(scopes, list) else []:
            if not isinstance(ss, dict):
                continue
            if "instrumentationLibrary" in ss and "scope" not in ss:
                ss["scope"] = ss.pop("instrumentationLibrary")
            for span in ss.get("spans") or []:
                if isinstance(span, dict):
                    _ids_to_hex(span)
                    for link in span.get("links") or []:
                        if isinstance(link, dict):
                            _ids_to_hex(link)
    return {"resourceSpans": resource_spans}


def _ids_to_hex(obj: dict[str, Any]) -> None:
    for key in _ID_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            obj[key] = _id_to_hex(value)


def trace_batch(body: bytes, content_type: str = "application/json") -> tuple[SpanBatch, bool]:
    """The span rows of one trace-by-id answer and whether Tempo marked it partial.

    Raises :class:`~open_autoglm.collector.DecodeError` on a body that is not a trace.
    """
    if "protobuf" in content_type.lower():
        return flatten(decode_protobuf(body)), False
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"invalid JSON: {exc}") from exc
    partial = isinstance(document, dict) and document.get("status") in ("PARTIAL", 1)
    otlp = _otlp_document(document)
    return flatten(decode_json(json.dumps(otlp).encode())), partial


class _Client:
    def __init__(self, config: TempoConfig, transport: httpx.BaseTransport | None) -> None:
        self.base = config.url.rstrip("/")
        self.config = config
        limits = httpx.Limits(max_connections=config.max_concurrency)
        self.http = httpx.Client(timeout=config.timeout_s, limits=limits, transport=transport)

    def get(self, path: str, params: dict[str, str], accept: str) -> httpx.Response:
        try:
            return self.http.get(f"{self.base}{path}", params=params, headers={"Accept": accept})
        except httpx.ConnectError as exc:
            raise TempoError(f"cannot reach Tempo at {self.base}: {type(exc).__name__}") from exc

    def close(self) -> None:
        self.http.close()


def _window_params(
    config: TempoConfig, start_s: float | None, end_s: float | None
) -> dict[str, str]:
    if start_s is None or end_s is None:
        return {}
    margin = config.window_margin_s
    return {"start": str(int(start_s - margin)), "end": str(int(end_s + margin) + 1)}


def search_trace_ids(
    config: TempoConfig,
    start_unix_s: float | None = None,
    end_unix_s: float | None = None,
    *,
    query: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> list[str]:
    """Trace ids a TraceQL search finds in the window (``config.search_query`` by default)."""
    client = _Client(config, transport)
    try:
        params = {
            "q": query or config.search_query,
            "limit": str(config.search_limit),
            **_window_params(config, start_unix_s, end_unix_s),
        }
        try:
            response = client.get("/api/search", params, "application/json")
        except httpx.HTTPError as exc:
            raise TempoError(f"Tempo search failed: {type(exc).__name__}") from exc
    finally:
        client.close()
    if response.status_code != 200:
        raise TempoError(
            f"Tempo search answered HTTP {response.status_code}: {response.text.strip()[:200]}"
        )
    try:
        traces = response.json()["traces"]
        ids = [normalize_trace_id(str(t["traceID"])) for t in traces or []]
    except (ValueError, KeyError, TypeError) as exc:
        raise TempoError(f"Tempo search answer is not in Tempo's format: {exc}") from None
    return list(dict.fromkeys(ids))


def fetch_traces(
    config: TempoConfig,
    trace_ids: Iterable[str],
    db_path: Path,
    start_unix_s: float | None = None,
    end_unix_s: float | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
) -> TempoFetch:
    """Fetch ``trace_ids`` from Tempo into a new span store at ``db_path`` (replaced)."""
    ids = list(dict.fromkeys(normalize_trace_id(t) for t in trace_ids))
    params = _window_params(config, start_unix_s, end_unix_s)
    path_of = "/api/v2/traces/{}" if config.api == "v2" else "/api/traces/{}"
    client = _Client(config, transport)

    def one(trace_id: str) -> tuple[str, SpanBatch | None, bool]:
        """(outcome, rows, partial); outcome is ``found``, ``missing`` or an error type."""
        try:
            response = client.get(path_of.format(trace_id), params, "application/json")
        except httpx.HTTPError as exc:
            return type(exc).__name__, None, False
        if response.status_code == 404:
            return "missing", None, False
        if response.status_code != 200:
            return f"HTTP {response.status_code}", None, False
        try:
            batch, partial = trace_batch(
                response.content, response.headers.get("content-type", "application/json")
            )
        except DecodeError:
            return "malformed", None, False
        if not batch.spans:
            return "missing", None, False
        return "found", batch, partial

    try:
        with ThreadPoolExecutor(max_workers=config.max_concurrency) as pool:
            outcomes = list(pool.map(one, ids))
    finally:
        client.close()
    found = [(batch, partial) for outcome, batch, partial in outcomes if batch is not None]
    failed: dict[str, int] = {}
    for outcome, _, _ in outcomes:
        if outcome not in ("found", "missing"):
            failed[outcome] = failed.get(outcome, 0) + 1
    if ids and sum(failed.values()) == len(ids):
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(failed.items()))
        raise TempoError(f"every trace fetch from Tempo at {client.base} failed ({kinds})")
    batches = [batch for batch, _ in found]
    spans = _write_store(db_path, batches)
    return TempoFetch(
        path=db_path,
        requested=len(ids),
        found=len(found),
        missing=sum(1 for outcome, _, _ in outcomes if outcome == "missing"),
        partial=sum(1 for _, partial in found if partial),
        failed=failed,
        spans=spans,
        rejected_spans=sum(b.rejected for b in batches),
    )


def _write_store(db_path: Path, batches: Sequence[SpanBatch]) -> int:
    """Write the rows into a fresh span store file; return how many spans it holds."""
    for stale in (db_path, db_path.with_name(db_path.name + ".wal")):
        stale.unlink(missing_ok=True)
    spans = [row for batch in batches for row in batch.spans]
    events = [row for batch in batches for row in batch.events]
    columns: dict[str, list[Any]] = {
        c: [row[i] for row in spans] for i, c in enumerate(SPAN_COLUMNS)
    }
    event_columns = {c: [row[i] for row in events] for i, c in enumerate(EVENT_COLUMNS)}
    if not spans:  # an empty store still has the schema: the breakdown finds nothing, no error
        columns = {"trace_id": []}
    write_span_store(db_path, columns, event_columns if events else None)
    return len(spans)


def run_trace_ids(run_dir: Path) -> list[str]:
    """Trace ids of the run's requests (``requests.jsonl``, every phase), in record order."""
    path = RunDirectory(run_dir).records_path
    if not path.is_file():
        return []
    return list(
        dict.fromkeys(str(r["trace_id"]) for r in read_record_dicts(path) if r.get("trace_id"))
    )


def fetch_run_traces(
    run_dir: Path,
    config: TempoConfig,
    db_path: Path,
    *,
    transport: httpx.BaseTransport | None = None,
) -> TempoFetch:
    """The run's traces from Tempo into ``db_path``: the records' trace ids, else a search."""
    start, end = _run_window(run_dir)
    ids = run_trace_ids(run_dir)
    if not ids:
        ids = search_trace_ids(config, start, end, transport=transport)
    return fetch_traces(config, ids, db_path, start, end, transport=transport)


def _run_window(run_dir: Path) -> tuple[float | None, float | None]:
    try:
        results = RunDirectory(run_dir).results()
        return results["started_unix_ns"] / 1e9, results["finished_unix_ns"] / 1e9
    except (ReportError, KeyError, TypeError):
        return None, None
