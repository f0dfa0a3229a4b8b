"""GenAI attributes of a proxied request: from its OpenAI body, then from the response."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson
from opentelemetry.util.types import AttributeValue

from open_autoglm.attach._stream_watch import ResponseFacts
from open_autoglm.telemetry import names as n

#: Paths whose JSON body is an OpenAI generation request (read for GenAI attributes).
GENERATION_PATHS: Final = {
    "/v1/chat/completions": n.OPERATION_CHAT,
    "/v1/completions": n.OPERATION_TEXT_COMPLETION,
}
#: Label ``backend`` of the proxy's metrics, and ``autoglm.backend`` of its spans.
PROXY_BACKEND: Final = n.BACKEND_PROXY


@dataclass(slots=True)
class ProxyRequest:
    """A generation request as the proxy saw it (``arrival_ns``: perf_counter_ns)."""

    operation: str
    model: str
    arrival_ns: int
    attributes: dict[str, AttributeValue]
    cancelled: bool = False


def request_of(operation: str, body: bytes, arrival: int) -> ProxyRequest:
    """The request's GenAI attributes from its OpenAI body (missing or malformed: left out)."""
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        payload = {}
    model = payload.get("model")
    model = model if isinstance(model, str) else ""
    attributes: dict[str, AttributeValue] = {
        n.GEN_AI_OPERATION_NAME: operation,
        n.GEN_AI_REQUEST_MODEL: model,
        n.GEN_AI_REQUEST_STREAM: payload.get("stream") is True,
    }
    max_tokens = payload.get("max_completion_tokens", payload.get("max_tokens"))
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        attributes[n.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    for key, attr in (
        ("temperature", n.GEN_AI_REQUEST_TEMPERATURE),
        ("top_p", n.GEN_AI_REQUEST_TOP_P),
        ("seed", n.GEN_AI_REQUEST_SEED),
    ):
        value = payload.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[attr] = value
    return ProxyRequest(operation, model, arrival, attributes)


def response_attributes(
    request: ProxyRequest, facts: ResponseFacts, error_type: str | None, upstream: str
) -> dict[str, AttributeValue]:
    """The SERVER span's attributes of a finished request: the request's, then what the
    response said (``usage``, finish reason, id, model), the upstream, errors by type."""
    attributes = request.attributes
    attributes[n.ATTR_BACKEND] = PROXY_BACKEND
    attributes[n.GEN_AI_PROVIDER_NAME] = PROXY_BACKEND  # as the metrics' provider label
    attributes[n.ATTR_UPSTREAM] = upstream
    attributes[n.ATTR_OUTPUT_CHUNKS] = facts.output_chunks
    if facts.prompt_tokens is not None:
        attributes[n.GEN_AI_USAGE_INPUT_TOKENS] = facts.prompt_tokens
    if facts.completion_tokens is not None:
        attributes[n.GEN_AI_USAGE_OUTPUT_TOKENS] = facts.completion_tokens
    if facts.finish_reason is not None:
        attributes[n.GEN_AI_RESPONSE_FINISH_REASONS] = (facts.finish_reason,)
    if facts.response_id:
        attributes[n.GEN_AI_RESPONSE_ID] = facts.response_id
    if facts.response_model:
        attributes[n.GEN_AI_RESPONSE_MODEL] = facts.response_model
    if request.cancelled:
        attributes[n.ATTR_CANCELLED] = True
    if error_type is not None:
        attributes[n.ERROR_TYPE] = error_type
    return attributes
