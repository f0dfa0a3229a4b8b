"""One load-generating worker of a distributed run; the driver runs it as a Ray actor.

This module does not import Ray: :class:`LoadWorker` is a plain class (the driver wraps it
with ``ray.remote``), so it can be tested in-process. The worker runs the same streaming
client and dispatcher as the single-process runner, on its own event loop (uvloop where
installed) in a dedicated thread, so Ray's method calls (on Ray's threads) never run on
the loop that times the requests.

Protocol (all calls synchronous, made by the driver):

- :meth:`LoadWorker.info`, :meth:`LoadWorker.clock` (clock-offset probes);
- :meth:`LoadWorker.run_level` blocks until the worker's share of one level is done and
  returns a :class:`LevelReport`; meanwhile
- :meth:`LoadWorker.poll` hands over the records finished since the last poll (JSON lines,
  streamed, never held to the end) and applies a :class:`Control`: more closed-loop
  tickets, a new slot count, arrivals taken over from a lost worker;
- :meth:`LoadWorker.stop` cancels the level (in-flight requests are recorded as
  cancelled), :meth:`LoadWorker.close` flushes spans and ends the loop.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from opentelemetry.sdk.trace import TracerProvider

from open_autoglm import __version__
from open_autoglm.loadgen._client import StreamingClient
from open_autoglm.loadgen._dispatch import dispatch
from open_autoglm.loadgen._endpoint import EndpointConfig
from open_autoglm.loadgen._health import CpuMeter, LoopLagMonitor
from open_autoglm.loadgen._profiles import Level
from open_autoglm.loadgen._records import Phase, RequestRecord
from open_autoglm.loadgen._split import WorkerArrivals
from open_autoglm.loadgen._tokens import HFTokenCounter, SimpleTokenCounter, TokenCounter
from open_autoglm.loadgen._workloads import RequestSpec
from open_autoglm.telemetry import TracingConfig, make_tracer_provider, names

_T = TypeVar("_T")
#: The last stretch before a level's common start is waited by spinning, for a tight start.
_SPIN_NS = 5_000_000


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """What every worker needs once: the target, the prepared request bodies, tracing."""

    worker_id: int
    workers: int
    endpoint: EndpointConfig
    model: str
    specs: tuple[RequestSpec, ...]
    tracing: TracingConfig | None = None
    tokenizer_json: str | None = None  # the driver's tokenizer.json, text


@dataclass(frozen=True, slots=True)
class LevelPlan:
    """One worker's share of one level.

    ``start_unix_ns`` is the common start on *this worker's* clock (the driver's instant
    plus the worker's measured offset). Open loop: ``arrivals`` and ``max_in_flight`` (this
    worker's share of ``--max-concurrency``). Closed loop: ``slots`` in flight and
    ``tickets`` it may start (``-1``: no count, the level's duration bounds it), indices
    ``index_base + worker_id + workers * k``. Records leave with ``sent_unix_ns`` on the
    driver's clock (``clock_offset_ns`` taken out); spans keep the worker's own clock."""

    index: int
    level: Level
    start_unix_ns: int
    cooldown_from_s: float | None
    clock_offset_ns: int = 0  # this worker's clock minus the driver's
    arrivals: WorkerArrivals | None = None
    max_in_flight: int | None = None
    slots: int = 0
    tickets: int = -1
    tickets_closed: bool = False
    index_base: int = 0


@dataclass(frozen=True, slots=True)
class Control:
    """What the driver changes with a poll: ``grant`` more tickets, ``close`` (no more will
    come), a new ``slots`` count, ``arrivals`` taken over from a lost worker."""

    grant: int = 0
    close: bool = False
    slots: int | None = None
    arrivals: WorkerArrivals | None = None


@dataclass(frozen=True, slots=True)
class PollReply:
    """Records finished since the last poll (``orjson`` JSON lines) and where the level is."""

    records: bytes
    count: int
    level: int | None  # the level running, None between levels
    started: int  # requests started in that level
    in_flight: int
    accepted_arrivals: int = 0


@dataclass(frozen=True, slots=True)
class LevelReport:
    """How one level went on one worker; clocks are the worker's own."""

    index: int
    target_unix_ns: int
    started_unix_ns: int  # when the worker's loop actually reached the common start
    received_unix_ns: int  # when the plan reached the worker's loop (before the start: good)
    loop_lags_s: list[float]
    cpu_cores: float  # CPU of the whole worker process per wall second over the level
    cpu_s: float
    wall_s: float
    started: int
    in_flight_max: int
    interrupted: bool


@dataclass(slots=True)
class _LevelState:
    plan: LevelPlan
    origin_ns: int = 0
    started: int = 0
    in_flight: int = 0
    in_flight_max: int = 0
    tickets: int = -1
    closed: bool = False
    slots: int = 0
    slot_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    limiter: asyncio.Semaphore | None = None
    granted: asyncio.Event = field(default_factory=asyncio.Event)
    local_index: int = 0
    finished: bool = False


class LoadWorker:
    """A worker process's share of the load; see the module docstring for the protocol.

    Only synchronous methods: Ray runs an actor with any ``async def`` method as an async
    actor, whose synchronous methods block each other; this one is a threaded actor, so a
    poll is answered while :meth:`run_level` waits. The loop side is :class:`_Sender`."""

    def __init__(self, setup: WorkerSetup) -> None:
        self.setup = setup
        self._loop = _new_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="open-autoglm-load", daemon=True
        )
        self._thread.start()
        self._sender = _Sender(setup)
        self._call(self._sender.open())

    # -- called by the driver (on Ray's threads) ---------------------------------------

    def info(self) -> dict[str, Any]:
        """Where this worker runs: host, pid, package version, Ray node id (when in Ray)."""
        ray: Any = sys.modules.get("ray")  # present in a Ray worker; never imported here
        node = ray.get_runtime_context().get_node_id() if ray is not None else None
        return {
            "worker": self.setup.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "node": node,
            "version": __version__,
        }

    def clock(self) -> int:
        """This worker's wall clock, ns (the driver's clock-offset probe)."""
        return time.time_ns()

    def run_level(self, plan: LevelPlan) -> LevelReport:
        """Run this worker's share of one level; returns when it is done (or stopped)."""
        return self._call(self._sender.run_level(plan))

    def poll(self, control: Control | None = None) -> PollReply:
        """Records finished since the last poll, after applying ``control``."""
        sender = self._sender
        accepted = self._call(sender.apply(control)) if control is not None else 0
        outbox = sender.outbox
        lines = [outbox.popleft() for _ in range(len(outbox))]
        state = sender.state
        return PollReply(
            records=b"".join(lines),
            count=len(lines),
            level=state.plan.index if state is not None and not state.finished else None,
            started=state.started if state is not None else 0,
            in_flight=state.in_flight if state is not None else 0,
            accepted_arrivals=accepted,
        )

    def stop(self) -> None:
        """Cancel the running level; its in-flight requests are recorded as cancelled."""
        self._call(self._sender.stop())

    def close(self) -> None:
        """Close the HTTP session, flush spans, end the loop thread."""
        if not self._loop.is_running():
            return
        self._call(self._sender.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()


class _Sender:
    """The worker's loop side: every method runs on the worker's own event loop."""

    def __init__(self, setup: WorkerSetup) -> None:
        self.setup = setup
        self.outbox: collections.deque[bytes] = collections.deque()
        self.state: _LevelState | None = None
        self._work: asyncio.Task[None] | None = None
        self._provider: TracerProvider | None = None
        self._client: StreamingClient | None = None

    async def open(self) -> None:
        setup = self.setup
        tracer = None
        if setup.tracing is not None and setup.tracing.exports:
            self._provider = make_tracer_provider(setup.tracing)
            tracer = self._provider.get_tracer(names.TRACER_NAME)
        client = StreamingClient(setup.endpoint, setup.model, tracer, _counter(setup))
        self._client = await client.__aenter__()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None

    async def run_level(self, plan: LevelPlan) -> LevelReport:
        received = time.time_ns()
        state = _LevelState(plan=plan, tickets=plan.tickets, closed=plan.tickets_closed)
        self.state = state
        _sleep_until(plan.start_unix_ns)
        wall, perf = time.time_ns(), time.perf_counter_ns()
        # the origin is the common instant itself: a late wake-up shows as scheduling lag
        state.origin_ns = perf - (wall - plan.start_unix_ns)
        monitor = LoopLagMonitor()
        monitor.start()
        cpu = CpuMeter()
        cpu_start = time.process_time()
        body = self._closed(state) if plan.level.mode == "concurrency" else self._open_loop(state)
        self._work = asyncio.get_running_loop().create_task(body)
        interrupted = False
        try:
            await self._work
        except asyncio.CancelledError:
            interrupted = True
        finally:
            self._work = None
            state.finished = True
            lags = await monitor.stop()
        return LevelReport(
            index=plan.index,
            target_unix_ns=plan.start_unix_ns,
            started_unix_ns=wall,
            received_unix_ns=received,
            loop_lags_s=lags,
            cpu_cores=cpu.read(),
            cpu_s=time.process_time() - cpu_start,
            wall_s=(time.perf_counter_ns() - perf) / 1e9,
            started=state.started,
            in_flight_max=state.in_flight_max,
            interrupted=interrupted,
        )

    async def stop(self) -> None:
        if self._work is not None:
            self._work.cancel()

    async def apply(self, control: Control) -> int:
        state = self.state
        if state is None or state.finished:
            return 0
        if control.grant:
            state.tickets = max(state.tickets, 0) + control.grant
        if control.close:
            state.closed = True
        if control.grant or control.close:
            state.granted.set()
        if control.slots is not None and state.plan.level.mode == "concurrency":
            self._set_slots(state, control.slots)
        if control.arrivals is not None and len(control.arrivals):
            task = asyncio.get_running_loop().create_task(self._dispatch(state, control.arrivals))
            state.tasks.add(task)
            task.add_done_callback(state.tasks.discard)
            return len(control.arrivals)
        return 0

    def _phase(self, state: _LevelState, due_s: float) -> Phase:
        level = state.plan.level
        if due_s < level.warmup_s:
            return "warmup"
        cooldown_from = state.plan.cooldown_from_s
        if level.cooldown_s > 0 and cooldown_from is not None and due_s > cooldown_from:
            return "cooldown"
        return "measure"

    async def _one(self, state: _LevelState, index: int, due_ns: int) -> None:
        wake = time.perf_counter_ns()
        origin = state.origin_ns
        specs = self.setup.specs
        spec = specs[index % len(specs)]
        limiter = state.limiter
        queue_ns = 0
        if limiter is not None:
            await limiter.acquire()
            queue_ns = time.perf_counter_ns() - wake
        state.started += 1
        state.in_flight += 1
        if state.in_flight > state.in_flight_max:
            state.in_flight_max = state.in_flight
        record = RequestRecord(
            index=index,
            level=state.plan.index,
            phase="measure",
            scheduled_s=(due_ns - origin) / 1e9,
            sched_lag_s=(wake - due_ns) / 1e9,
            queue_s=queue_ns / 1e9,
            sent_s=(wake - origin) / 1e9,
            sent_unix_ns=time.time_ns(),
            worker=self.setup.worker_id,
        )
        try:
            assert self._client is not None, "open() first"
            await self._client.send(spec, record, origin)
        finally:
            state.in_flight -= 1
            if limiter is not None:
                limiter.release()
            record.phase = self._phase(state, record.scheduled_s)
            record.sent_unix_ns -= state.plan.clock_offset_ns
            self.outbox.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))

    # -- open loop ---------------------------------------------------------------------

    async def _open_loop(self, state: _LevelState) -> None:
        plan = state.plan
        if plan.max_in_flight:
            state.limiter = asyncio.Semaphore(plan.max_in_flight)
        try:
            if plan.arrivals is not None and len(plan.arrivals):
                await self._dispatch(state, plan.arrivals)
            while state.tasks:
                await asyncio.wait(set(state.tasks))
        finally:
            for task in state.tasks:
                task.cancel()
            if state.tasks:
                await asyncio.gather(*state.tasks, return_exceptions=True)

    async def _dispatch(self, state: _LevelState, arrivals: WorkerArrivals) -> None:
        """Send at the given offsets from the common start (:func:`dispatch`, as the
        runner sends)."""
        origin = state.origin_ns
        due_ns = [origin + int(off * 1e9) for off in arrivals.offsets_s.tolist()]
        indices = arrivals.indices.tolist()

        def send(i: int, due: int) -> Coroutine[Any, Any, None]:
            return self._one(state, indices[i], due)

        await dispatch(due_ns, send, state.tasks)

    # -- closed loop -------------------------------------------------------------------

    async def _closed(self, state: _LevelState) -> None:
        try:
            self._set_slots(state, state.plan.slots)
            while any(not t.done() for t in state.slot_tasks):
                await asyncio.wait([t for t in state.slot_tasks if not t.done()])
        finally:
            for task in state.slot_tasks:
                task.cancel()
            await asyncio.gather(*state.slot_tasks, return_exceptions=True)

    def _set_slots(self, state: _LevelState, slots: int) -> None:
        """Hold ``slots`` requests in flight: start new slots, or let the highest ones end
        after their current request."""
        loop = asyncio.get_running_loop()
        state.slots = slots
        running = len(state.slot_tasks)
        for slot in range(running, slots):
            state.slot_tasks.append(loop.create_task(self._slot(state, slot)))
        if slots > running:
            return
        # slots that must end look at state.slots before their next request
        state.granted.set()

    async def _take_ticket(self, state: _LevelState, slot: int) -> bool:
        while state.tickets == 0 and not state.closed and slot < state.slots:
            state.granted.clear()
            await state.granted.wait()
        if state.tickets == 0 or slot >= state.slots:
            return False
        if state.tickets > 0:
            state.tickets -= 1
        return True

    async def _slot(self, state: _LevelState, slot: int) -> None:
        plan = state.plan
        duration = plan.level.duration_s
        deadline = state.origin_ns + int(duration * 1e9) if duration is not None else None
        base, stride, me = plan.index_base, self.setup.workers, self.setup.worker_id
        due = max(time.perf_counter_ns(), state.origin_ns)
        while slot < state.slots and (deadline is None or due < deadline):
            if not await self._take_ticket(state, slot):
                return
            index = base + me + stride * state.local_index
            state.local_index += 1
            await self._one(state, index, due)
            due = time.perf_counter_ns()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows)
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _counter(setup: WorkerSetup) -> TokenCounter:
    if setup.tokenizer_json is None:
        return SimpleTokenCounter()
    path = Path(tempfile.mkdtemp(prefix="open-autoglm-worker-")) / "tokenizer.json"
    path.write_text(setup.tokenizer_json, encoding="utf-8")
    return HFTokenCounter(path)


def _sleep_until(target_unix_ns: int) -> None:
    """Block this thread until the wall clock reads ``target_unix_ns`` (at a level's start
    nothing else runs on the loop). A blocking sleep lets go of the GIL, so Ray's threads
    in this process cannot hold the loop back the way they can a spinning loop (by up to
    the interpreter's 5 ms switch interval), then a spin of at most ``_SPIN_NS``."""
    remaining = target_unix_ns - time.time_ns()
    if remaining > _SPIN_NS:
        time.sleep((remaining - _SPIN_NS) / 1e9)
    while time.time_ns() < target_unix_ns:
        pass
