"""Stages drawn from vLLM's own ``llm_request`` spans, so an unmodified ``vllm serve`` gets the
same stage breakdown, TTFT split, waterfalls and hotspots as our own server.

vLLM sends one SERVER span per request whose latencies are attributes (names and formulas in
:mod:`open_autoglm.attach.vllm_spans`). Each such span gets ``queue``, ``prefill`` and
``decode`` children, INTERNAL, laid back to back and anchored on the span itself::

    arrival (span start)                                  arrival + e2e (≤ span end)
    |-- render, tokenize, hand-over --|-- queue --|-- prefill --|-------- decode --------|

The last boundary is ``arrival + gen_ai.latency.e2e`` (the span's end when e2e is missing or
past it); each stage before it is placed by its own duration (``time_in_model_decode``, then
``time_in_model_prefill``, then ``time_in_queue``), so every derived span lasts exactly what
vLLM measured. A stage is not drawn where a boundary is missing or does not advance: a
duration that is absent, not a number or negative ends the chain (nothing earlier can be
placed); a zero duration draws nothing and the chain goes on; a stage that would start more
than :data:`ARRIVAL_TOLERANCE_NS` before the arrival ends the chain too (the clocks disagree),
within it the start is clipped to the arrival.

Every derived span carries ``autoglm.derived_from = llm_request``; its id is a hash of the
parent's, so deriving twice adds nothing. Traces whose server already sent measured stage
spans (our instrumentor, our own server) are left alone.

This module is the one place the derivation happens: :func:`add_derived_stages` runs on a
span store, whether the embedded collector wrote it or the spans were fetched from Tempo
(the report calls it on whichever store it reads).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np

from open_autoglm import __version__
from open_autoglm.attach import vllm_spans as vs
from open_autoglm.collector import SpanStore
from open_autoglm.telemetry import names as n

#: How far before the arrival a derived stage may start (clock disagreement, rounding) before
#: it is refused; within it the stage starts at the arrival.
ARRIVAL_TOLERANCE_NS: Final = 1_000_000

#: Stages in the order they are placed, from the end backwards, with their vLLM attribute.
_CHAIN: Final = (
    (n.SPAN_DECODE, vs.TIME_IN_MODEL_DECODE),
    (n.SPAN_PREFILL, vs.TIME_IN_MODEL_PREFILL),
    (n.SPAN_QUEUE, vs.TIME_IN_QUEUE),
)
_STAGE_NAMES: Final = tuple(name for name, _ in _CHAIN)


@dataclass(frozen=True, slots=True)
class DerivedStage:
    """One stage drawn from an ``llm_request`` span; Unix nanoseconds."""

    name: str
    start_unix_ns: int
    end_unix_ns: int


@dataclass(frozen=True, slots=True)
class DerivationSummary:
    """What :func:`add_derived_stages` did to a span store."""

    llm_requests: int  # llm_request spans in the store
    derived: int  # of those, given stage spans by this call
    already_derived: int  # had them from an earlier call
    measured: int  # left alone: their trace has measured stage spans
    incomplete: int  # of ``derived``, with fewer than three stages (a boundary missing)
    spans: int  # stage spans written


def _seconds_ns(value: object) -> int | None:
    """A vLLM latency attribute (float seconds) as whole nanoseconds; None when unusable."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return round(value * 1e9)


def stages_of_llm_request(
    start_unix_ns: int, end_unix_ns: int, attributes: Mapping[str, Any]
) -> tuple[DerivedStage, ...]:
    """The ``queue``/``prefill``/``decode`` stages of one ``llm_request`` span, in time order.

    ``start_unix_ns``/``end_unix_ns``: the span's start (vLLM's arrival) and end;
    ``attributes``: the span's attributes as sent (vLLM's latencies in seconds). Returns only
    the stages whose boundaries are known and advance (see the module's docstring).
    """
    e2e = _seconds_ns(attributes.get(vs.E2E))
    cursor = end_unix_ns
    if e2e is not None and start_unix_ns + e2e <= end_unix_ns:
        cursor = start_unix_ns + e2e
    out: list[DerivedStage] = []
    for name, key in _CHAIN:
        length = _seconds_ns(attributes.get(key))
        if length is None:
            break
        if length == 0:
            continue
        begin = cursor - length
        if begin < start_unix_ns:
            if start_unix_ns - begin > ARRIVAL_TOLERANCE_NS:
                break
            begin = start_unix_ns
            if begin >= cursor:
                break
        out.append(DerivedStage(name, begin, cursor))
        cursor = begin
    return tuple(reversed(out))


def derived_span_id(trace_id: str, parent_span_id: str, stage: str) -> str:
    """The id of a derived span: 16 hex digits, the same every time for the same parent."""
    digest = hashlib.blake2b(f"{trace_id}/{parent_span_id}/{stage}".encode(), digest_size=8)
    return digest.hexdigest()


_FIND_SQL: Final = f"""
WITH req AS (
    SELECT trace_id, span_id, service_name, start_unix_ns, end_unix_ns, attributes,
           resource_attributes, trace_state
    FROM spans WHERE name = $span AND start_unix_ns IS NOT NULL AND end_unix_ns IS NOT NULL
),
done AS (
    SELECT DISTINCT trace_id, parent_span_id FROM spans
    WHERE attributes->>'$."{n.ATTR_DERIVED_FROM}"' = $span
),
measured AS (
    SELECT DISTINCT trace_id FROM spans
    WHERE name IN (SELECT unnest($stages))
      AND (attributes IS NULL OR attributes->>'$."{n.ATTR_DERIVED_FROM}"' IS NULL)
)
SELECT req.*, done.trace_id IS NOT NULL AS done, measured.trace_id IS NOT NULL AS measured
FROM req
LEFT JOIN done ON req.trace_id = done.trace_id AND req.span_id = done.parent_span_id
LEFT JOIN measured ON req.trace_id = measured.trace_id
"""


def add_derived_stages(con: duckdb.DuckDBPyConnection) -> DerivationSummary:
    """Write the derived stages of every ``llm_request`` span into the span store behind
    ``con`` (opened for writing); idempotent. Raises ``duckdb.Error`` when the store cannot
    be written (opened read-only, locked by a running collector)."""
    has_spans = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'spans'"
    ).fetchone()
    if not has_spans or not has_spans[0]:
        return DerivationSummary(0, 0, 0, 0, 0, 0)
    rows = con.execute(
        _FIND_SQL, {"span": vs.LLM_REQUEST_SPAN, "stages": list(_STAGE_NAMES)}
    ).fetchall()
    spans: dict[str, list[Any]] = {k: [] for k in _SPAN_INSERT_COLUMNS}
    events: dict[str, list[Any]] = {k: [] for k in ("trace_id", "span_id", "time_unix_ns")}
    derived = already = measured = incomplete = 0
    for trace_id, span_id, service, start, end, attrs, resource, state, done, has_measured in rows:
        if done:
            already += 1
            continue
        if has_measured:
            measured += 1
            continue
        attributes = _json_object(attrs)
        stages = stages_of_llm_request(int(start), int(end), attributes)
        if not stages:
            incomplete += 1
            continue
        derived += 1
        incomplete += len(stages) < len(_CHAIN)
        for stage in stages:
            child = derived_span_id(trace_id, span_id, stage.name)
            stage_attributes: dict[str, Any] = {n.ATTR_DERIVED_FROM: vs.LLM_REQUEST_SPAN}
            if stage.name == n.SPAN_PREFILL and isinstance(attributes.get(vs.PROMPT_TOKENS), int):
                stage_attributes[n.ATTR_PROMPT_TOKENS] = attributes[vs.PROMPT_TOKENS]
            if stage.name == n.SPAN_DECODE:
                tokens = attributes.get(vs.COMPLETION_TOKENS)
                if isinstance(tokens, int):
                    stage_attributes[n.ATTR_OUTPUT_TOKENS] = tokens
                events["trace_id"].append(trace_id)
                events["span_id"].append(child)
                events["time_unix_ns"].append(stage.start_unix_ns)
            for key, value in (
                ("trace_id", trace_id), ("span_id", child), ("parent_span_id", span_id),
                ("name", stage.name), ("service_name", service),
                ("start_unix_ns", stage.start_unix_ns), ("end_unix_ns", stage.end_unix_ns),
                ("attributes", json.dumps(stage_attributes)), ("resource_attributes", resource),
                ("trace_state", state),
            ):  # fmt: skip
                spans[key].append(value)
    if spans["trace_id"]:
        _insert(con, spans, events)
    return DerivationSummary(
        llm_requests=len(rows),
        derived=derived,
        already_derived=already,
        measured=measured,
        incomplete=incomplete,
        spans=len(spans["trace_id"]),
    )


_SPAN_INSERT_COLUMNS: Final = (
    "trace_id", "span_id", "parent_span_id", "name", "service_name", "start_unix_ns",
    "end_unix_ns", "attributes", "resource_attributes", "trace_state",
)  # fmt: skip


def _insert(
    con: duckdb.DuckDBPyConnection, spans: dict[str, list[Any]], events: dict[str, list[Any]]
) -> None:
    columns = {
        k: np.asarray(v, dtype=np.int64 if k.endswith("_ns") else object) for k, v in spans.items()
    }
    event_columns = {
        k: np.asarray(v, dtype=np.int64 if k.endswith("_ns") else object) for k, v in events.items()
    }
    con.register("_derived_spans", columns)
    con.register("_derived_events", event_columns)
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "INSERT INTO spans BY NAME SELECT trace_id, span_id, parent_span_id, name, "
            "'INTERNAL' AS kind, service_name, start_unix_ns, end_unix_ns, "
            "end_unix_ns - start_unix_ns AS duration_ns, 'UNSET' AS status_code, "
            "CAST(attributes AS JSON) AS attributes, "
            "CAST(resource_attributes AS JSON) AS resource_attributes, "
            "$scope AS scope_name, $version AS scope_version, trace_state "
            "FROM _derived_spans",
            {"scope": n.TRACER_NAME, "version": __version__},
        )
        con.execute(
            "INSERT INTO span_events BY NAME SELECT trace_id, span_id, 0 AS event_index, "
            "$event AS name, time_unix_ns FROM _derived_events",
            {"event": n.EVENT_FIRST_TOKEN},
        )
        con.execute("COMMIT")
    except duckdb.Error:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_derived_spans")
        con.unregister("_derived_events")


def _json_object(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value:
        return {}
    try:
        decoded = json.loads(value)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def derive_stages_in_store(path: Path) -> DerivationSummary:
    """:func:`add_derived_stages` on the span store file at ``path``, opened for writing.

    Raises :class:`~open_autoglm.collector.CollectorError` when the file is missing, locked by
    a running collector or not a span store, ``duckdb.Error`` when it cannot be written."""
    with SpanStore(path, read_only=False) as store:
        return add_derived_stages(store.connection)
