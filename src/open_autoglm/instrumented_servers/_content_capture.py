"""Prompt and completion text as the OpenTelemetry GenAI conventions record it, on opt-in.

Text is never recorded by default (``ServerConfig.capture_content``, from
``OPEN_AUTOGLM_CAPTURE_CONTENT``). When it is, the server span gets
``gen_ai.input.messages`` and ``gen_ai.output.messages``: JSON arrays of messages, each
``{"role": ..., "parts": [{"type": "text", "content": ...}]}``, the output message also with
its ``finish_reason``. Images are not recorded (only their count and size, on ``preprocess``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from open_autoglm.instrumented_servers._backend import ChatMessage


def _message(role: str, text: str) -> dict[str, object]:
    return {"role": role, "parts": [{"type": "text", "content": text}] if text else []}


def chat_input_messages(messages: Sequence[ChatMessage]) -> str:
    """``gen_ai.input.messages`` of a chat request: its messages' roles and text."""
    return json.dumps([_message(m.role, m.text) for m in messages], ensure_ascii=False)


def prompt_input_messages(prompt: str) -> str:
    """``gen_ai.input.messages`` of a text completion: the prompt as one user message."""
    return json.dumps([_message("user", prompt)], ensure_ascii=False)


def output_messages(text: str, finish_reason: str | None) -> str:
    """``gen_ai.output.messages``: the completion as one assistant message."""
    message = _message("assistant", text)
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return json.dumps([message], ensure_ascii=False)
