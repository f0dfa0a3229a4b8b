"""The real OTLP/HTTP receiver against a generated corpus of malformed bodies: a wrong type at
every position of a valid export, nesting thousands of levels deep, huge arrays, truncated and
bit-flipped protobuf. Every answer is a 2xx (a body still valid after the mutation) or a 4xx,
never a 5xx; and afterwards the collector still stores a valid export."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from open_autoglm.collector import Collector

JSON = {"Content-Type": "application/json"}
PROTOBUF = {"Content-Type": "application/x-protobuf"}
WRONG: tuple[Any, ...] = (None, True, 0, -1, 2**64, -(2**63) - 1, 1.5, "", "zz", "-1",
                          [], {}, [None], {"k": None}, [[[]]], "0" * 40)  # fmt: skip


def valid_export(span_id: str = "00000000000000a1") -> dict[str, Any]:
    """One span with every kind of attribute value, an event, a link and a status."""
    values_n = {"intValue": 1}
    values = [
        {"key": "s", "value": {"stringValue": "x"}},
        {"key": "b", "value": {"boolValue": True}},
        {"key": "i", "value": {"intValue": "7"}},
        {"key": "d", "value": {"doubleValue": 0.5}},
        {"key": "y", "value": {"bytesValue": "AAE="}},
        {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "e"}]}}},
        {"key": "m", "value": {"kvlistValue": {"values": [{"key": "n", "value": values_n}]}}},
    ]
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": span_id,
        "parentSpanId": "00000000000000b2",
        "name": "decode",
        "kind": 1,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000100000000",
        "attributes": values,
        "events": [
            {"name": "first_token", "timeUnixNano": "1700000000050000000", "attributes": values[:2]}
        ],
        "links": [
            {
                "traceId": "5b8efff798038103d269b633813fc60d",
                "spanId": "00000000000000c3",
                "attributes": values[:1],
            }
        ],
        "status": {"code": 2, "message": "boom"},
    }
    resource = {"attributes": values[:1]}
    scope = {"name": "fuzz", "version": "1"}
    return {
        "resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": scope, "spans": [span]}]}]
    }


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def _replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    out = copy.deepcopy(doc)
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return out


def _nested(depth: int, wrap: str) -> str:
    """An attribute value ``depth`` arrays or key-value lists deep, as JSON text."""
    if wrap == "array":
        return '{"arrayValue":{"values":[' * depth + '{"intValue":1}' + "]}}" * depth
    return (
        '{"kvlistValue":{"values":[{"key":"k","value":' * depth + '{"intValue":1}' + "}]}}" * depth
    )


def json_corpus() -> Iterator[bytes]:
    doc = valid_export()
    for path in _paths(doc):
        for value in WRONG:
            yield json.dumps(_replaced(doc, path, value)).encode()
    for depth in (1_000, 100_000):
        yield b"[" * depth + b"]" * depth
        yield b'{"resourceSpans":' * depth + b"1" + b"}" * depth
    attribute = ("resourceSpans", 0, "scopeSpans", 0, "spans", 0, "attributes", 0, "value")
    marked = json.dumps(_replaced(doc, attribute, "@deep@"))
    for depth in (50, 200, 400, 5_000):
        for wrap in ("array", "kvlist"):
            yield marked.replace('"@deep@"', _nested(depth, wrap)).encode()
    yield json.dumps({"resourceSpans": [{}] * 100_000}).encode()
    yield json.dumps(
        {"resourceSpans": [{"scopeSpans": [{"spans": list(range(100_000))}]}]}
    ).encode()
    yield json.dumps(
        _replaced(doc, attribute[:-2], [{"key": str(i)} for i in range(50_000)])
    ).encode()
    yield from (b"", b"null", b"[]", b'"x"', b"NaN", b"{", b"\xff\xfe", b'{"a":"\\ud800"}',
                b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":NaN}]}]}]}')  # fmt: skip


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def protobuf_corpus(valid: bytes) -> Iterator[bytes]:
    rng = random.Random(14)
    for end in range(0, len(valid), 5):
        yield valid[:end]
    for _ in range(300):
        mutated = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        yield bytes(mutated)
    # an attribute value nested 5,000 arrays deep (AnyValue.array_value = 5, values = 1)
    value = _field(1, b"x")
    for _ in range(5_000):
        value = _field(5, _field(1, value))
    attribute = _field(1, b"k") + _field(2, value)
    span = _field(1, b"\x01" * 16) + _field(2, b"\x02" * 8) + _field(9, attribute)
    yield _field(1, _field(2, _field(2, span)))
    yield b"\x0a\xff\xff\xff\xff\x0f"  # a length far past the end
    yield bytes(rng.randrange(256) for _ in range(4096))


@pytest.mark.slow
def test_malformed_bodies_get_a_4xx_never_a_5xx(collector: Collector) -> None:
    assert collector.http_endpoint is not None
    url = collector.http_endpoint + "/v1/traces"
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from open_autoglm.collector._decode import decode_json

    valid_proto = decode_json(json.dumps(valid_export()).encode()).SerializeToString()
    assert json_format.MessageToDict(ExportTraceServiceRequest.FromString(valid_proto))
    statuses: dict[int, int] = {}
    server_errors: list[tuple[int, bytes]] = []
    with httpx.Client(timeout=60) as client:
        for headers, corpus in ((JSON, json_corpus()), (PROTOBUF, protobuf_corpus(valid_proto))):
            for body in corpus:
                status = client.post(url, content=body, headers=headers).status_code
                statuses[status] = statuses.get(status, 0) + 1
                if status >= 500 or status < 200:
                    server_errors.append((status, body[:200]))
        assert server_errors == []
        assert statuses.get(400, 0) > 500  # the corpus is mostly malformed ...
        assert set(statuses) <= {200, 400, 413}, statuses
        # ... and the collector is still up and storing
        before = collector.stats().stored_spans
        fresh = json.dumps(valid_export("00000000000000f9")).encode()
        answer = client.post(url, content=fresh, headers=JSON)
        assert answer.status_code == 200
        assert answer.json() == {}
    final = collector.stop()
    assert final.stored_spans >= before + 1
    assert final.write_failed_spans == 0
