"""Synthetic runs with a planted bottleneck: span store and request records, for tests and the
analysis benchmark (and for a user checking that the analysis finds what it should).

:class:`SyntheticRun` makes requests shaped like the telemetry contract — a CLIENT root
``chat MODEL``, its SERVER child ``POST /v1/chat/completions`` and the stages ``tokenize``,
``queue``, ``prefill``, ``decode`` back to back — where one stage is slow for the requests
whose attribute passes a threshold (by default: ``queue`` when the queue depth at enqueue is
above 12). Nothing here is a measurement; every span carries ``autoglm.simulated``. The
span store is written by the collector's :func:`~open_autoglm.collector.write_span_store`,
the records in the load generator's ``requests.jsonl`` format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from open_autoglm.collector import SPANS_FILE, write_span_store
from open_autoglm.loadgen import (
    RECORDS_FILE,
    RESULTS_VERSION,
    BenchmarkResults,
    ClientHealth,
    EndpointSummary,
    Level,
    ProfileConfig,
    RequestRecord,
    WorkloadConfig,
    summarize_level,
)
from open_autoglm.telemetry import names

_SERVER: Final = names.server_span_name("/v1/chat/completions")


@dataclass(frozen=True, slots=True)
class SyntheticRun:
    """``requests`` requests over ``levels`` concurrency levels with a planted bottleneck:
    ``slow_stage`` takes ``slow_extra_ms`` more (exponential, mean) when ``slow_attribute``
    (``queue_depth``, ``batch_size`` or ``prompt_tokens``) is above ``slow_above``."""

    requests: int = 2000
    seed: int = 0
    model: str = "sim-llm"
    slow_stage: str | None = names.SPAN_QUEUE
    slow_attribute: str = "queue_depth"
    slow_above: float = 12
    slow_extra_ms: float = 40.0
    levels: tuple[int, ...] = (16,)
    started_unix_ns: int = 1_700_000_000_000_000_000

    def generate(
        self,
    ) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[Any]], list[dict[str, Any]]]:
        """Spans and events (columns for :func:`~open_autoglm.collector.write_span_store`)
        and request records
        (``requests.jsonl`` lines of the load generator's shape)."""
        rng = np.random.default_rng(self.seed)
        n = self.requests
        level = np.arange(n) * len(self.levels) // max(n, 1)
        attrs = {
            "queue_depth": rng.integers(0, 25, n),
            "batch_size": rng.integers(1, 17, n),
            "prompt_tokens": np.round(rng.lognormal(5.0, 0.6, n)).astype(np.int64) + 1,
        }
        ms = 1_000_000.0
        network = rng.exponential(0.3, n) * ms
        tokenize = (0.1 + rng.exponential(0.1, n)) * ms
        queue = rng.exponential(1.0, n) * ms
        prefill = (2.0 + 0.01 * attrs["prompt_tokens"] + rng.exponential(0.5, n)) * ms
        decode = (20.0 + rng.normal(0.0, 2.0, n).clip(-10, 10)) * ms
        stage = {"tokenize": tokenize, "queue": queue, "prefill": prefill, "decode": decode}
        if self.slow_stage is not None:
            hit = attrs[self.slow_attribute] > self.slow_above
            stage[self.slow_stage] = stage[self.slow_stage] + np.where(
                hit, rng.exponential(self.slow_extra_ms, n) * ms, 0.0
            )
        gap = rng.exponential(5.0, n).cumsum() * ms
        client_start = (self.started_unix_ns + gap).astype(np.int64)
        server_start = client_start + network.astype(np.int64)
        t = server_start.copy()
        bounds: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}
        for name in ("tokenize", "queue", "prefill", "decode"):
            end = t + stage[name].astype(np.int64)
            bounds[name] = (t, end)
            t = end
        server_end = t + int(0.05 * ms)
        client_end = server_end + network.astype(np.int64)
        first_chunk = bounds["prefill"][1] + network.astype(np.int64)

        hi = rng.integers(1, 2**62, n)
        lo = rng.integers(1, 2**62, n)
        trace_id = np.char.add(np.char.mod("%016x", hi), np.char.mod("%016x", lo))
        span_base = np.arange(n, dtype=np.int64) * 8 + 1
        rows: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in _SPAN_KEYS}

        def add(
            offset: int,
            parent: int | None,
            name: str,
            kind: str,
            start: npt.NDArray[np.int64],
            end: npt.NDArray[np.int64],
            attributes: list[str],
        ) -> None:
            rows["trace_id"].append(trace_id)
            rows["span_id"].append(np.char.mod("%016x", span_base + offset))
            rows["parent_span_id"].append(
                np.full(n, None, dtype=object)
                if parent is None
                else np.char.mod("%016x", span_base + parent).astype(object)
            )
            rows["name"].append(np.full(n, name, dtype=object))
            rows["kind"].append(np.full(n, kind, dtype=object))
            rows["service_name"].append(
                np.full(
                    n,
                    names.LOADGEN_SERVICE_NAME if kind == "CLIENT" else names.SERVER_SERVICE_NAME,
                    dtype=object,
                )
            )
            rows["start_unix_ns"].append(start)
            rows["end_unix_ns"].append(end)
            rows["attributes"].append(np.asarray(attributes, dtype=object))

        ttft_s = (first_chunk - client_start) / 1e9
        client_attrs = [
            json.dumps({names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: v, names.ATTR_LEVEL: int(lv)})
            for v, lv in zip(ttft_s.tolist(), level.tolist(), strict=True)
        ]
        prefill_attrs = [
            json.dumps({names.ATTR_BATCH_SIZE: b, names.ATTR_PROMPT_TOKENS: p})
            for b, p in zip(
                attrs["batch_size"].tolist(), attrs["prompt_tokens"].tolist(), strict=True
            )
        ]
        client = names.client_span_name("chat", self.model)
        add(0, None, client, "CLIENT", client_start, client_end, client_attrs)
        add(
            1,
            0,
            _SERVER,
            "SERVER",
            server_start,
            server_end,
            [_json(names.ATTR_SIMULATED, True)] * n,
        )
        tokens = [
            _json(names.GEN_AI_USAGE_INPUT_TOKENS, v) for v in attrs["prompt_tokens"].tolist()
        ]
        depth = [_json(names.ATTR_QUEUE_DEPTH, v) for v in attrs["queue_depth"].tolist()]
        add(2, 1, "tokenize", "INTERNAL", *bounds["tokenize"], tokens)
        add(3, 1, "queue", "INTERNAL", *bounds["queue"], depth)
        add(4, 1, "prefill", "INTERNAL", *bounds["prefill"], prefill_attrs)
        add(
            5, 1, "decode", "INTERNAL", *bounds["decode"], [_json(names.ATTR_OUTPUT_TOKENS, 64)] * n
        )
        spans = {k: np.concatenate(v) for k, v in rows.items()}
        events = {
            "trace_id": trace_id,
            "span_id": np.char.mod("%016x", span_base + 5),
            "event_index": np.zeros(n, dtype=np.int64),
            "name": np.full(n, names.EVENT_FIRST_TOKEN, dtype=object),
            "time_unix_ns": bounds["prefill"][1],
            "attributes": np.full(n, None, dtype=object),
        }
        e2e_s = (client_end - client_start) / 1e9
        records = [
            {
                "index": i,
                "level": int(level[i]),
                "phase": "measure",
                "sent_unix_ns": int(client_start[i]),
                "status": "ok",
                "ttft_s": float(ttft_s[i]),
                "e2e_s": float(e2e_s[i]),
                "output_tokens": 64,
                "input_tokens": int(attrs["prompt_tokens"][i]),
                "trace_id": str(trace_id[i]),
            }
            for i in range(n)
        ]
        return spans, events, records

    def write(self, directory: Path) -> Path:
        """``spans.duckdb``, ``requests.jsonl`` and the load generator's ``results.json`` (its
        levels summarised from the records, as a run would) in ``directory``; returns the
        store path."""
        directory.mkdir(parents=True, exist_ok=True)
        spans, events, records = self.generate()
        store = write_span_store(directory / SPANS_FILE, spans, events)
        with (directory / RECORDS_FILE).open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
        self._results(records, directory / RECORDS_FILE).write(directory / "results.json")
        return store

    def _results(self, records: list[dict[str, Any]], records_path: Path) -> BenchmarkResults:
        health = ClientHealth(None, None, None, None, None, None, 0.0, False, "not measured")
        levels = []
        for index, level in enumerate(self.levels):
            mine = [_request(r, self.started_unix_ns) for r in records if r["level"] == index]
            spec = Level(mode="concurrency", value=level, requests=len(mine))
            levels.append(summarize_level(index, spec, mine, self.started_unix_ns, None, health))
        return BenchmarkResults(
            version=RESULTS_VERSION,
            tool_version="synthetic",
            started_unix_ns=self.started_unix_ns,
            finished_unix_ns=self.started_unix_ns,
            interrupted=False,
            endpoint=EndpointSummary(
                "http://127.0.0.1/v1", "chat", self.model, False, 600.0, [], {}, False
            ),
            workload=WorkloadConfig(),
            profile=ProfileConfig(
                kind="step", step_levels=tuple(map(float, self.levels)), requests=1
            ),
            slo=None,
            seed=self.seed,
            records_path=str(records_path),
            levels=levels,
        )


def _request(r: dict[str, Any], start_ns: int) -> RequestRecord:
    sent = (r["sent_unix_ns"] - start_ns) / 1e9
    return RequestRecord(
        index=r["index"], level=r["level"], phase="measure", scheduled_s=sent, sched_lag_s=0.0,
        queue_s=0.0, sent_s=sent, sent_unix_ns=r["sent_unix_ns"], ttft_s=r["ttft_s"],
        e2e_s=r["e2e_s"], done_s=sent + r["e2e_s"], output_tokens=r["output_tokens"],
        input_tokens=r["input_tokens"], trace_id=r["trace_id"],
    )  # fmt: skip


def _json(key: str, value: Any) -> str:
    return json.dumps({key: value})


_SPAN_KEYS: Final = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "service_name",
    "start_unix_ns",
    "end_unix_ns",
    "attributes",
)
