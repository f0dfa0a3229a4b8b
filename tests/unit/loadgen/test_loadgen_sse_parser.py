"""The SSE parser against the HTML standard's event-stream rules, split at every read boundary.

A literal, character-by-character transcription of the standard's algorithm (``reference``)
is the oracle; the parser must give its events for every way the network could cut the bytes.
"""

from __future__ import annotations

import itertools
import random

import pytest

from open_autoglm.loadgen import EventTooLarge, SSEEvent, SSEParser


def reference(stream: bytes, dispatch_at_eof: bool = True) -> list[SSEEvent]:
    """The standard's algorithm on the whole decoded stream, one character at a time."""
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines: list[str] = []
    line: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "\r\n":
            lines.append("".join(line))
            line = []
            if ch == "\r" and text[i + 1 : i + 2] == "\n":
                i += 1
        else:
            line.append(ch)
        i += 1
    if line:
        lines.append("".join(line))  # an unterminated last line (our end-of-stream choice)
    events: list[SSEEvent] = []
    data, event_type, last_id = "", "", ""

    def dispatch() -> None:
        nonlocal data, event_type
        if data:
            body = data[:-1] if data.endswith("\n") else data
            events.append(SSEEvent(body.encode(), event_type or "message", last_id))
        data, event_type = "", ""

    for ln in lines:
        if ln == "":
            dispatch()
            continue
        if ln.startswith(":"):
            continue
        if ":" in ln:
            name, value = ln.split(":", 1)
            value = value[1:] if value.startswith(" ") else value
        else:
            name, value = ln, ""
        if name == "data":
            data += value + "\n"
        elif name == "event":
            event_type = value
        elif name == "id" and "\0" not in value:
            last_id = value
    if dispatch_at_eof:
        dispatch()
    return events


def parse(stream: bytes, cuts: tuple[int, ...] = (), max_bytes: int = 1 << 24) -> list[SSEEvent]:
    parser = SSEParser(max_bytes)
    events: list[SSEEvent] = []
    bounds = [0, *cuts, len(stream)]
    for start, stop in itertools.pairwise(bounds):
        events += parser.feed(stream[start:stop])
    return events + parser.close()


def feed_all(parser: SSEParser, chunks: list[bytes]) -> list[SSEEvent]:
    return [event for chunk in chunks for event in parser.feed(chunk)]


RICH = (
    b"\xef\xbb\xbf"  # a byte order mark, skipped
    b": a comment\r\n"
    b"retry: 2500\r\n"
    b"data: one\r\n\r\n"  # CRLF
    b"event: ping\rdata:two\r\r"  # lone CR; no space after the colon
    b"id: 7\ndata: multi\ndata\ndata:  line\n\n"  # LF; "data" without a colon; two spaces
    b"\n\n\n"  # blank lines dispatch nothing
    b"id: bad\x00id\nevent: message\ndata: \xe4\xbd\xa0\xe5\xa5\xbd\r\n\n"  # NUL id ignored
    b"unknown: field\nevent: lost\n\n"  # no data: nothing dispatched, the type is reset
    b'data: {"last": true}'  # the final event, no blank line, no line ending
)

RICH_EVENTS = [
    SSEEvent(b"one"),
    SSEEvent(b"two", "ping"),
    SSEEvent(b"multi\n\n line", "message", "7"),
    SSEEvent("你好".encode(), "message", "7"),
    SSEEvent(b'{"last": true}', "message", "7"),
]


def test_the_rich_stream_gives_the_standard_events() -> None:
    assert reference(RICH) == RICH_EVENTS
    assert parse(RICH) == RICH_EVENTS
    parser = SSEParser()
    parser.feed(RICH)
    assert parser.retry == 2500


def test_every_single_read_boundary() -> None:
    for cut in range(1, len(RICH)):
        assert parse(RICH, (cut,)) == RICH_EVENTS, cut


def test_every_pair_of_read_boundaries() -> None:
    for a, b in itertools.combinations(range(1, len(RICH)), 2):
        assert parse(RICH, (a, b)) == RICH_EVENTS, (a, b)


def test_one_byte_per_read() -> None:
    assert parse(RICH, tuple(range(1, len(RICH)))) == RICH_EVENTS


@pytest.mark.parametrize("cut", [1, 2])
def test_a_bom_split_over_reads_is_skipped(cut: int) -> None:
    stream = b"\xef\xbb\xbfdata: first\n\n"
    assert parse(stream, (cut,)) == [SSEEvent(b"first")]


def test_only_one_leading_bom_is_skipped() -> None:
    # a second BOM is part of the first line: a field named "\ufeffdata", ignored
    assert parse(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n") == [SSEEvent(b"y")]


@pytest.mark.parametrize(
    "ending", [b"\r\n", b"\n", b"\r"], ids=["crlf", "lf", "cr"]
)  # fmt: skip
def test_each_line_ending_delimits_events_when_split_between_its_bytes(ending: bytes) -> None:
    stream = b"data: a" + ending + ending + b"data: b" + ending + ending
    for cut in range(1, len(stream)):
        assert parse(stream, (cut,)) == [SSEEvent(b"a"), SSEEvent(b"b")]


def test_cr_at_the_end_of_a_read_then_lf_is_one_line_ending() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r\n\r") == [SSEEvent(b"a")]
    assert parser.feed(b"\n") == []  # the LF of the CRLF, not a second blank line
    assert parser.feed(b"data: b\r") == []
    assert parser.feed(b"\r") == [SSEEvent(b"b")]  # CR CR: the second one is a blank line


def test_retry_takes_only_ascii_digits_and_id_persists() -> None:
    parser = SSEParser()
    events = parser.feed(b"retry: 10x\nretry: \xd9\xa3\nid: 5\ndata: a\n\ndata: b\n\n")
    assert parser.retry is None  # "10x" and an Arabic-Indic digit are ignored
    assert [e.id for e in events] == ["5", "5"]
    parser.feed(b"retry: 3000\n\n")
    assert parser.retry == 3000


def test_the_spec_discards_a_pending_event_but_close_dispatches_it() -> None:
    stream = b"data: a\n\ndata: tail\n"
    assert reference(stream, dispatch_at_eof=False) == [SSEEvent(b"a")]
    parser = SSEParser()
    assert parser.feed(stream) == [SSEEvent(b"a")]
    assert parser.close() == [SSEEvent(b"tail")]
    assert parser.close() == []


def test_random_streams_match_the_reference_at_random_boundaries() -> None:
    pieces = [b"data: {\"k\": 1}", b"data:x", b"data", b"event: error", b"event:",
              b": c", b"id: 3", b"id", b"retry: 9", b"\n", b"\r", b"\r\n", b"\n\n",
              b"\r\n\r\n", b"\xe4\xbd\xa0", b"\xef\xbb\xbf", b"x: y", b":", b" "]  # fmt: skip
    rng = random.Random(1234)
    for _ in range(400):
        stream = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        if rng.random() < 0.3:
            stream = b"\xef\xbb\xbf" + stream
        inner = range(1, len(stream))
        cuts = tuple(sorted(rng.sample(inner, min(len(inner), 6))))
        assert parse(stream, cuts) == reference(stream), (stream, cuts)


def test_an_event_over_the_limit_raises_before_memory_grows() -> None:
    parser = SSEParser(max_event_bytes=4 * 1024 * 1024)
    chunk = b"data: " + b"x" * (1024 * 1024)
    with pytest.raises(EventTooLarge, match="over the limit of 4194304 bytes"):
        feed_all(parser, [chunk] * 6)  # an event that never ends
    assert parser.pending_bytes == 0  # what it held is released


def test_an_event_over_the_limit_in_one_read_raises() -> None:
    parser = SSEParser(max_event_bytes=1024)
    with pytest.raises(EventTooLarge):
        parser.feed(b"data: " + b"y" * 2000 + b"\n\ndata: small\n\n")


def test_many_small_lines_count_toward_the_limit() -> None:
    parser = SSEParser(max_event_bytes=1000)
    with pytest.raises(EventTooLarge):
        feed_all(parser, [b"data: 0123456789\n"] * 200)  # no blank line: one growing event


def test_events_within_the_limit_pass() -> None:
    parser = SSEParser(max_event_bytes=1000)
    events: list[SSEEvent] = []
    for _ in range(200):
        events += parser.feed(b"data: " + b"z" * 900 + b"\n\n")
    assert len(events) == 200


def test_a_limit_below_one_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        SSEParser(0)
