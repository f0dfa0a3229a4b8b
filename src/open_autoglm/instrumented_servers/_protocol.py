"""Request bodies of the OpenAI-compatible API, validated strictly, and response shapes."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from open_autoglm.instrumented_servers._backend import ChatMessage, ImageInput
from open_autoglm.instrumented_servers._errors import APIError
from open_autoglm.instrumented_servers._images import image_size

_STRICT = ConfigDict(strict=True, extra="ignore")  # unknown fields are ignored, as vLLM does


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_usage: bool = False


class _Sampling(BaseModel):
    model_config = _STRICT
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
    prompt: str | list[str]

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise APIError(400, "exactly one prompt per request is supported", param="prompt")
        return self.prompt[0]


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
