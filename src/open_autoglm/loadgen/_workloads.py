"""Workloads: synthetic prompts with length distributions, ShareGPT and JSONL datasets, and
multimodal chat requests. Loading validates everything (a bad file is a one-line error before
anything is sent); :func:`build_requests` then serialises each request body once, up front."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from open_autoglm.loadgen._arrivals import level_rng
from open_autoglm.loadgen._endpoint import EndpointConfig
from open_autoglm.loadgen._errors import ConfigError, DatasetError
from open_autoglm.loadgen._images import (
    EncodedImage,
    ImageFormat,
    file_image,
    synthetic_image,
)
from open_autoglm.loadgen._tokens import TokenCounter

Dataset = Literal["synthetic", "sharegpt", "jsonl"]
DATASETS: tuple[Dataset, ...] = ("synthetic", "sharegpt", "jsonl")
Distribution = Literal["fixed", "uniform", "normal", "lognormal"]
DISTRIBUTIONS: tuple[Distribution, ...] = ("fixed", "uniform", "normal", "lognormal")

#: Random streams of one run, by purpose (see :func:`level_rng`); level -1 is "no level".
_STREAM_PROMPTS, _STREAM_IMAGES, _STREAM_ORDER = 1, 2, 3

_WORDS = (
    "time year people way day man thing woman life child world school state family student "
    "group country problem hand part place case week company system program question work "
    "government number night point home water room mother area money story fact month lot "
    "right study book eye job word business issue side kind head house service friend father "
    "power hour game line end member law car city community name president team minute idea "
    "kid body information back parent face others level office door health person art war "
    "history party result change morning reason research girl guy moment air teacher force "
    "education foot boy age policy music market sense nation plan college interest death "
    "experience effect class control care field development role effort rate heart drug show "
    "leader light voice wife police mind price report decision son view relationship town road"
).split()


@dataclass(frozen=True, slots=True)
class LengthDistribution:
    """Token lengths: ``fixed`` at ``mean``; ``uniform`` on mean·(1 ± spread); ``normal``
    with standard deviation mean·spread; ``lognormal`` with median ``mean`` and log-σ
    ``spread``. Samples are rounded and kept ≥ 1."""

    mean: int
    distribution: Distribution = "fixed"
    spread: float = 0.0

    def __post_init__(self) -> None:
        if self.mean < 1:
            raise ConfigError(f"token lengths must be >= 1, got {self.mean}")
        if self.distribution not in DISTRIBUTIONS:
            raise ConfigError(f"unknown length distribution {self.distribution!r}")
        if self.spread < 0 or (self.distribution == "uniform" and self.spread > 1):
            raise ConfigError(f"bad length spread {self.spread:g}")

    def sample(self, rng: np.random.Generator, count: int) -> list[int]:
        mean, spread = float(self.mean), self.spread
        if self.distribution == "fixed" or spread == 0:
            values = np.full(count, mean)
        elif self.distribution == "uniform":
            values = rng.uniform(mean * (1 - spread), mean * (1 + spread), count)
        elif self.distribution == "normal":
            values = rng.normal(mean, mean * spread, count)
        else:
            values = rng.lognormal(np.log(mean), spread, count)
        return [max(1, round(v)) for v in values]


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    dataset: Dataset = "synthetic"
    path: Path | None = None
    input_len: LengthDistribution = field(default_factory=lambda: LengthDistribution(128))
    output_len: LengthDistribution = field(default_factory=lambda: LengthDistribution(64))
    output_len_from_dataset: bool = True  # ShareGPT/JSONL lengths win unless told otherwise
    prefix_len: int = 0
    images: int = 0
    image_size: tuple[int, int] = (512, 512)
    image_format: ImageFormat = "png"
    image_files: tuple[Path, ...] = ()
    distinct_images: int = 32  # synthetic images made, then reused round-robin
    pool_size: int = 1024  # distinct requests prepared; the run cycles through them
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {self.dataset!r}; choose one of {DATASETS}")
        if self.dataset != "synthetic" and self.path is None:
            raise ConfigError(f"the {self.dataset} dataset needs --dataset-path FILE")
        if self.prefix_len < 0 or self.images < 0 or self.pool_size < 1:
            raise ConfigError("--prefix-len, --images must be >= 0")
        if self.image_files and self.images == 0:
            object.__setattr__(self, "images", 1)


@dataclass(frozen=True, slots=True)
class Prompt:
    """One request's content before it is serialised for an endpoint."""

    text: str | None
    messages: tuple[dict[str, Any], ...] | None
    input_tokens: int
    output_tokens: int
    images: tuple[EncodedImage, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """A ready-to-send request: the body is serialised once, before the run."""

    body: bytes
    input_tokens: int
    max_tokens: int
    image_count: int = 0
    image_bytes: int = 0
    stream: bool = True  # what the body asks (``--body stream=false`` turns it off)


def load_prompts(config: WorkloadConfig, counter: TokenCounter) -> list[Prompt]:
    """Read or make ``config.pool_size`` prompts; raises :class:`DatasetError` on bad files."""
    images = _load_images(config)
    if config.dataset == "synthetic":
        prompts = _synthetic(config, counter)
    else:
        assert config.path is not None
        raw = _sharegpt(config.path) if config.dataset == "sharegpt" else _jsonl(config.path)
        prompts = _from_items(raw, config, counter)
    if images:
        prompts = [
            Prompt(
                p.text,
                p.messages,
                p.input_tokens,
                p.output_tokens,
                tuple(images[(i * config.images + k) % len(images)] for k in range(config.images)),
            )
            for i, p in enumerate(prompts)
        ]
    return prompts


def build_requests(
    prompts: Sequence[Prompt], endpoint: EndpointConfig, model: str
) -> list[RequestSpec]:
    """Serialise each prompt into a streaming request body for ``endpoint``."""
    specs = []
    for prompt in prompts:
        body: dict[str, Any] = {"model": model}
        if endpoint.api == "chat":
            body["messages"] = _chat_messages(prompt)
        else:
            if prompt.messages is not None or prompt.images:
                raise ConfigError("chat messages and images need --api chat")
            body["prompt"] = prompt.text
        body["max_tokens"] = prompt.output_tokens
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        if endpoint.ignore_eos:
            body["ignore_eos"] = True
        body.update(endpoint.extra_body)
        specs.append(
            RequestSpec(
                body=json.dumps(body, separators=(",", ":")).encode(),
                input_tokens=prompt.input_tokens,
                max_tokens=int(body.get("max_tokens", prompt.output_tokens)),
                stream=bool(body.get("stream")),
                image_count=len(prompt.images),
                image_bytes=sum(image.size_bytes for image in prompt.images),
            )
        )
    return specs


def _chat_messages(prompt: Prompt) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (
        [dict(m) for m in prompt.messages]
        if prompt.messages is not None
        else [{"role": "user", "content": prompt.text}]
    )
    if prompt.images:
        last = messages[-1]
        content = last.get("content")
        parts: list[Any] = (
            list(content) if isinstance(content, list) else [{"type": "text", "text": content}]
        )
        parts.extend(
            {"type": "image_url", "image_url": {"url": image.data_uri}} for image in prompt.images
        )
        last["content"] = parts
    return messages


def _load_images(config: WorkloadConfig) -> list[EncodedImage]:
    if config.images == 0:
        return []
    if config.image_files:
        return [file_image(path) for path in config.image_files]
    rng = level_rng(config.seed, -1, _STREAM_IMAGES)
    count = min(config.distinct_images, config.pool_size * config.images)
    return [synthetic_image(config.image_size, config.image_format, rng) for _ in range(count)]


def _synthetic(config: WorkloadConfig, counter: TokenCounter) -> list[Prompt]:
    rng = level_rng(config.seed, -1, _STREAM_PROMPTS)
    words = np.array(_WORDS)
    prefix = " ".join(words[rng.integers(0, len(words), config.prefix_len)])
    inputs = config.input_len.sample(rng, config.pool_size)
    outputs = config.output_len.sample(rng, config.pool_size)
    prompts = []
    for n_in, n_out in zip(inputs, outputs, strict=True):
        body = " ".join(words[rng.integers(0, len(words), n_in)])
        text = f"{prefix} {body}" if prefix else body
        prompts.append(Prompt(text, None, counter.count(text), n_out))
    return prompts


def _sharegpt(path: Path) -> list[dict[str, Any]]:
    data = _read_json(path)
    if not isinstance(data, list):
        raise DatasetError(f"{path}: a ShareGPT file is a JSON list of conversations")
    items = []
    for entry in data:
        turns = entry.get("conversations") if isinstance(entry, dict) else None
        if not isinstance(turns, list) or len(turns) < 2:
            continue
        first, second = turns[0], turns[1]
        if not (isinstance(first, dict) and isinstance(second, dict)):
            continue
        if first.get("from") not in ("human", "user") or not isinstance(first.get("value"), str):
            continue
        items.append({"prompt": first["value"], "completion": str(second.get("value", ""))})
    if not items:
        raise DatasetError(f"{path}: no conversation with a human turn followed by a reply")
    return items


def _jsonl(path: Path) -> list[dict[str, Any]]:
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetError(f"dataset file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read dataset {path}: {type(exc).__name__}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(item, dict) or not (
            isinstance(item.get("prompt"), str) or isinstance(item.get("messages"), list)
        ):
            raise DatasetError(f"{path}:{number}: expected an object with 'prompt' or 'messages'")
        items.append(item)
    if not items:
        raise DatasetError(f"{path}: no prompts in the file")
    return items


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"dataset file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read dataset {path}: {type(exc).__name__}") from None


def _from_items(
    items: list[dict[str, Any]], config: WorkloadConfig, counter: TokenCounter
) -> list[Prompt]:
    rng = level_rng(config.seed, -1, _STREAM_ORDER)
    order = rng.permutation(len(items))[: config.pool_size]
    default_out = config.output_len.sample(rng, len(order))
    prompts = []
    for k, i in enumerate(order):
        item = items[int(i)]
        messages = item.get("messages")
        if messages is not None:
            text = " ".join(_message_text(m) for m in messages)
            msgs: tuple[dict[str, Any], ...] | None = tuple(messages)
        else:
            text, msgs = item["prompt"], None
        n_out = default_out[k]
        if config.output_len_from_dataset:
            explicit = item.get("max_tokens", item.get("output_len"))
            if isinstance(explicit, int) and explicit > 0:
                n_out = explicit
            elif isinstance(item.get("completion"), str):
                n_out = max(1, counter.count(item["completion"]))
        prompts.append(Prompt(None if msgs else text, msgs, counter.count(text), n_out))
    return prompts


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""
