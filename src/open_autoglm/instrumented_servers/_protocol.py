"""Request bodies of the OpenAI-compatible API, validated strictly, and response shapes."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from open_autoglm.instrumented_servers._backend import ChatMessage, ImageInput
from open_autoglm.instrumented_servers._errors import APIError
from open_autoglm.instrumented_servers._images import image_size

_STRICT = ConfigDict(strict=True, extra="ignore")  # unknown fields are ignored, as vLLM does
# Request bodies keep their unknown fields, to refuse the known ones the server does not honour
# (:func:`unsupported_parameter`); other unknown names are still ignored.
_REQUEST = ConfigDict(strict=True, extra="allow")
_MAX_TOP_LOGPROBS = 20


def _off(*defaults: object) -> Callable[[object], bool]:
    return lambda value: (
        value is None or any(value == d and type(value) is type(d) for d in defaults)
    )


#: OpenAI (and vLLM) request parameters that change the output and that this server does not
#: implement, each with a test for the values that leave the output unchanged ("off"). A
#: request setting one to anything else is refused with a 400 naming it, so a benchmark never
#: silently measures something other than what it asked for.
_UNSUPPORTED: Final[dict[str, tuple[Callable[[object], bool], str]]] = {
    "tool_choice": (_off("none", "auto"), "tool calling is not supported"),
    "tools": (_off([]), "tool calling is not supported (no tool definitions reach the model)"),
    "functions": (_off([]), "function calling is not supported"),
    "function_call": (_off("none", "auto"), "function calling is not supported"),
    "response_format": (
        lambda v: v is None or v == {"type": "text"},
        "structured output (json_object, json_schema) is not supported",
    ),
    "frequency_penalty": (_off(0, 0.0), "frequency_penalty is not supported"),
    "presence_penalty": (_off(0, 0.0), "presence_penalty is not supported"),
    "repetition_penalty": (_off(1, 1.0), "repetition_penalty is not supported"),
    "logit_bias": (_off({}), "logit_bias is not supported"),
    "best_of": (_off(1), "best_of is not supported"),
    "echo": (_off(False), "echo is not supported"),
    "suffix": (_off(""), "suffix is not supported"),
    "prediction": (_off(), "predicted outputs are not supported"),
    "audio": (_off(), "audio output is not supported"),
    "modalities": (_off(["text"]), "only the text modality is supported"),
    "top_k": (_off(-1, 0), "top_k is not supported"),
    "min_p": (_off(0, 0.0), "min_p is not supported"),
    "min_tokens": (_off(0), "min_tokens is not supported"),
    "use_beam_search": (_off(False), "beam search is not supported"),
    "prompt_logprobs": (_off(), "prompt_logprobs is not supported"),
    "guided_json": (_off(), "guided decoding is not supported"),
    "guided_regex": (_off(), "guided decoding is not supported"),
    "guided_choice": (_off(), "guided decoding is not supported"),
    "guided_grammar": (_off(), "guided decoding is not supported"),
    "structured_outputs": (_off(), "structured output is not supported"),
}


def unsupported_parameter(body: BaseModel) -> None:
    """Raise a 400 naming the first parameter of :data:`_UNSUPPORTED` set to a value that is
    not "off" (``{"error": {"param": NAME, "code": "unsupported_parameter"}}``)."""
    extra = body.model_extra or {}
    for name, (is_off, why) in _UNSUPPORTED.items():
        if name in extra and not is_off(extra[name]):
            raise APIError(
                400,
                f"{why}; remove `{name}` or set it to its default",
                param=name,
                code="unsupported_parameter",
            )


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_usage: bool = False


class _Sampling(BaseModel):
    model_config = _REQUEST
    model: str
    max_tokens: int | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool = False
    user: str | None = None

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if len(stops) > 4:
            raise APIError(400, "at most 4 stop sequences are supported", param="stop")
        if any(s == "" for s in stops):
            raise APIError(400, "stop sequences must not be empty", param="stop")
        return stops

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class CompletionRequest(_Sampling):
    #: Text, or token ids (``[1, 2, 3]``); a list of one of either is one prompt too.
    prompt: str | list[str] | list[int] | list[list[int]]
    #: How many alternatives per token to return log probabilities for (the sampled token's
    #: always comes too); None: no log probabilities.
    logprobs: Annotated[int, Field(ge=0, le=_MAX_TOP_LOGPROBS)] | None = None

    def prompt_text(self) -> str | tuple[int, ...]:
        """The one prompt: text, or a tuple of token ids."""
        prompt = self.prompt
        if isinstance(prompt, str):
            return prompt
        if not prompt:
            raise APIError(400, "prompt must not be empty", param="prompt")
        if all(isinstance(p, int) for p in prompt):
            return tuple(p for p in prompt if isinstance(p, int))
        if len(prompt) != 1:
            raise APIError(400, "exactly one prompt per request is supported", param="prompt")
        first = prompt[0]
        if isinstance(first, int):  # not reached: a list of ints was handled above
            return (first,)
        return first if isinstance(first, str) else tuple(first)

    @property
    def wanted_logprobs(self) -> int | None:
        """Alternatives per token when log probabilities are wanted, else None."""
        return self.logprobs


class ImageURL(BaseModel):
    model_config = _STRICT
    url: str
    detail: str | None = None


class TextPart(BaseModel):
    model_config = _STRICT
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    model_config = _STRICT
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(BaseModel):
    model_config = _STRICT
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None


class ChatCompletionRequest(_Sampling):
    messages: Annotated[list[Message], Field(min_length=1)]
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: Annotated[int, Field(ge=0, le=_MAX_TOP_LOGPROBS)] | None = None

    @property
    def wanted_logprobs(self) -> int | None:
        """Alternatives per token when log probabilities are wanted, else None."""
        if self.top_logprobs is not None and not self.logprobs:
            raise APIError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
        return (self.top_logprobs or 0) if self.logprobs else None

    def requested_max_tokens(self) -> int | None:
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return self.max_tokens


_Body = TypeVar("_Body", bound=BaseModel)


def parse_body(model: type[_Body], raw: bytes) -> _Body:
    """Validate a JSON body; any mistake becomes a 400 naming the offending field."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise APIError(400, f"request body is not valid JSON: {first['msg']}") from None
        loc = first["loc"]
        # union members add their type names ('str', 'list[str]') to the location: drop them
        path = ".".join(str(p) for p in loc if isinstance(p, int) or p.isidentifier())
        param = str(loc[0]) if loc else None
        message = f"{path}: {first['msg']}" if path else first["msg"]
        raise APIError(400, message, param=param) from None


def decode_messages(messages: list[Message]) -> tuple[list[ChatMessage], int]:
    """Messages as the backend sees them, images decoded; also the total image bytes."""
    out: list[ChatMessage] = []
    image_bytes = 0
    for i, message in enumerate(messages):
        if message.content is None or isinstance(message.content, str):
            out.append(ChatMessage(message.role, message.content or ""))
            continue
        texts: list[str] = []
        images: list[ImageInput] = []
        for j, part in enumerate(message.content):
            if isinstance(part, TextPart):
                texts.append(part.text)
            else:
                image = decode_data_uri(part.image_url.url, f"messages.{i}.content.{j}.image_url")
                image_bytes += len(image.data)
                images.append(image)
        out.append(ChatMessage(message.role, "\n".join(texts), tuple(images)))
    return out, image_bytes


def decode_data_uri(url: str, param: str) -> ImageInput:
    """A ``data:image/...;base64,...`` URI as bytes; remote URLs are refused (no fetching)."""
    if not url.startswith("data:"):
        raise APIError(
            400, "only base64 data URIs are accepted for images (no remote fetch)", param=param
        )
    header, sep, payload = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        raise APIError(400, "image data URI must be base64-encoded", param=param)
    mime = header[: -len(";base64")] or "application/octet-stream"
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, "image data URI is not valid base64", param=param) from None
    size = image_size(data)
    if size is None:
        raise APIError(400, "image is not a PNG, JPEG, GIF or WebP file", param=param)
    return ImageInput(data=data, mime_type=mime, width=size[0], height=size[1])


def usage_dict(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def model_card(model: str, created: int, runtime: dict[str, str] | None = None) -> dict[str, Any]:
    """An OpenAI model object; ``runtime`` (device, execution provider) as an extra field."""
    card: dict[str, Any] = {
        "id": model,
        "object": "model",
        "created": created,
        "owned_by": "open-autoglm",
    }
    if runtime:
        card["runtime"] = runtime
    return card
