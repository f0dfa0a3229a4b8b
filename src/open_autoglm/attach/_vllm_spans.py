"""What vLLM's own tracing sends: the ``llm_request`` span and its attribute names.

Written against vLLM 0.32 (``vllm/tracing/utils.py``, ``SpanAttributes``; the span is made in
``vllm/v1/engine/output_processor.py``, ``OutputProcessor.do_tracing``). vLLM emits one SERVER
span per finished request, continuing the caller's W3C ``traceparent``:

* start: the request's arrival, wall clock (``RequestStateStats.arrival_time``, taken when
  vLLM's renderer starts on the request, before the chat template and tokenization);
* end: when the front end handled the request's last output (the span is ended at once);
* latencies as attributes, float seconds, from vLLM's per-request stamps::

      time_in_queue           = scheduled_ts   - queued_ts       (engine core, monotonic)
      time_in_model_prefill   = first_token_ts - scheduled_ts
      time_in_model_decode    = last_token_ts  - first_token_ts
      time_in_model_inference = last_token_ts  - scheduled_ts
      time_to_first_token     = first output handled - arrival   (front end, wall)
      e2e                     = last output handled  - arrival

  A stamp vLLM never took (a request aborted in the queue) is 0, so the difference that
  uses it is negative or absurd: a missing boundary.

Only names live here; :mod:`open_autoglm.analysis` turns these spans into stages.
"""

from __future__ import annotations

from typing import Final

#: The span vLLM emits per request (SERVER kind).
LLM_REQUEST_SPAN: Final = "llm_request"

TIME_IN_QUEUE: Final = "gen_ai.latency.time_in_queue"
TIME_TO_FIRST_TOKEN: Final = "gen_ai.latency.time_to_first_token"
E2E: Final = "gen_ai.latency.e2e"
TIME_IN_MODEL_PREFILL: Final = "gen_ai.latency.time_in_model_prefill"
TIME_IN_MODEL_DECODE: Final = "gen_ai.latency.time_in_model_decode"
TIME_IN_MODEL_INFERENCE: Final = "gen_ai.latency.time_in_model_inference"
PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"
REQUEST_ID: Final = "gen_ai.request.id"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
