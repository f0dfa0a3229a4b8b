"""An :class:`~open_autoglm.testing.OtlpSink` in a process of its own, for the benchmarks.

In the load generator's process the sink's decoding (Python, per span) takes the GIL from the
client and slows the load it drives, which reads as a slower server. Here it runs apart,
pinned to ``cpus`` where the OS allows, and reports how many spans it has received.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.sharedctypes import Synchronized
from typing import Any


def _serve(endpoint: Any, count: Synchronized[int], stop: Any, cpus: set[int], keep: bool) -> None:
    from open_autoglm.testing import OtlpSink

    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)
    with OtlpSink(keep_spans=keep) as sink:
        endpoint.send(sink.endpoint)
        while not stop.wait(0.1):
            count.value = sink.span_count
        count.value = sink.span_count
        if keep:
            endpoint.send(sink.spans)


class SinkHandle:
    def __init__(self, endpoint: str, count: Synchronized[int], pipe: Any, stop: Any) -> None:
        self.endpoint = endpoint
        self._count = count
        self._pipe = pipe
        self._stop = stop

    def collect(self) -> list[Any]:
        """Stop the sink and return the spans it kept (``keep_spans=True`` only)."""
        self._stop.set()
        spans: list[Any] = self._pipe.recv()
        return spans

    @property
    def span_count(self) -> int:
        time.sleep(0.2)  # the child publishes its count every 0.1 s
        return int(self._count.value)


@contextmanager
def sink_process(cpus: set[int] | None = None, keep_spans: bool = False) -> Iterator[SinkHandle]:
    """A sink in a child process; ``span_count`` is what it has received so far; with
    ``keep_spans`` it decodes and keeps them, for :meth:`SinkHandle.collect`."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    count = ctx.Value("q", 0)
    stop = ctx.Event()
    process = ctx.Process(
        target=_serve, args=(child, count, stop, cpus or set(), keep_spans), daemon=True
    )
    process.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the OTLP sink process did not start")
        yield SinkHandle(parent.recv(), count, parent, stop)
    finally:
        stop.set()
        process.join(10)
