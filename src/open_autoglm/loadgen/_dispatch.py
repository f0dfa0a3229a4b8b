"""The open-loop dispatcher shared by the single-process runner and the Ray workers.

One timer per wake-up, no spinning (a spin would burn the CPU share that a busy machine leaves
the client). Timers tick in whole milliseconds, so a request may go out up to half a
millisecond early (uvloop rounds) or one late (epoll rounds up); each request's record keeps
the signed difference. Each wake-up sends what is due by then, at most :data:`BURST`, and
yields, so a late dispatcher catches up without flooding the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final

#: How early a request may go out: event-loop timers tick in whole milliseconds.
EARLY_NS: Final = 500_000
#: Most requests one wake-up of the dispatcher sends before it yields.
BURST: Final = 32


async def dispatch(
    due_ns: Sequence[int],
    send: Callable[[int, int], Coroutine[Any, Any, None]],
    tasks: set[asyncio.Task[None]],
) -> None:
    """Start ``send(i, due_ns[i])`` as a task at each ``due_ns[i]`` (``perf_counter_ns``,
    ascending); the tasks go into ``tasks`` and leave it as they finish. Returns when the last
    one has started."""
    loop = asyncio.get_running_loop()
    perf = time.perf_counter_ns
    i, n = 0, len(due_ns)
    while i < n:
        ahead = due_ns[i] - perf()
        if ahead > EARLY_NS:
            await asyncio.sleep(ahead / 1e9)
            continue
        limit = perf() + EARLY_NS
        burst = 0
        while i < n and due_ns[i] <= limit and burst < BURST:
            task = loop.create_task(send(i, due_ns[i]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
            burst += 1
        await asyncio.sleep(0)
