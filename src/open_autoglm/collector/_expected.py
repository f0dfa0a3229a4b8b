"""What the store holds for an OpenTelemetry SDK span: for tests that check spans arrived intact."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from open_autoglm.collector._store import SpanEvent, SpanRecord


def expected_record(span: ReadableSpan) -> SpanRecord:
    """The :class:`SpanRecord` that :class:`SpanStore` returns once ``span`` is exported to it.

    Compare with ``==`` against ``SpanStore.trace(...)`` results; sequence attribute values
    come back as lists (JSON arrays), everything else unchanged.
    """
    context = span.get_span_context()
    if context is None or span.start_time is None or span.end_time is None:
        raise ValueError("only ended spans with a context are exported")
    scope = span.instrumentation_scope
    return SpanRecord(
        trace_id=format(context.trace_id, "032x"),
        span_id=format(context.span_id, "016x"),
        parent_span_id=format(span.parent.span_id, "016x") if span.parent else None,
        name=span.name,
        kind=span.kind.name,
        service_name=_service_name(span.resource.attributes),
        start_unix_ns=span.start_time,
        end_unix_ns=span.end_time,
        duration_ns=span.end_time - span.start_time,
        status_code=span.status.status_code.name,
        status_message=span.status.description or None,
        attributes=_attributes(span.attributes),
        resource_attributes=_attributes(span.resource.attributes),
        scope_name=scope.name if scope is not None and scope.name else None,
        scope_version=scope.version if scope is not None and scope.version else None,
        trace_state=context.trace_state.to_header() or None,
        links=[
            {
                "trace_id": format(link.context.trace_id, "032x"),
                "span_id": format(link.context.span_id, "016x"),
                "trace_state": link.context.trace_state.to_header() or None,
                "attributes": _attributes(link.attributes),
            }
            for link in span.links
        ],
        events=tuple(
            SpanEvent(
                name=event.name,
                time_unix_ns=event.timestamp,
                attributes=_attributes(event.attributes),
            )
            for event in span.events
        ),
    )


def _service_name(attributes: Mapping[str, Any]) -> str | None:
    value = attributes.get("service.name")
    return None if value is None else str(value)


def _attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    if not attributes:
        return {}
    return {
        key: list(value) if isinstance(value, tuple | list) else value
        for key, value in attributes.items()
    }
