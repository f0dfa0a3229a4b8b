"""Where requests go and what every request carries (headers, fixed body fields, timeout)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from open_autoglm.loadgen._errors import ConfigError

Api = Literal["chat", "completions"]
APIS: tuple[Api, ...] = ("chat", "completions")
_PATHS: dict[Api, str] = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """An OpenAI-compatible endpoint. ``url`` is the server's base address (``http://h:p``,
    ``http://h:p/v1``) or the full route; :attr:`request_url` is what gets the POSTs."""

    url: str
    api: Api = "chat"
    model: str | None = None
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    ignore_eos: bool = False
    timeout_s: float = 600.0
    read_buffer_bytes: int = 4 * 1024 * 1024
    #: One server-sent event (or a JSON body) larger than this fails its request as malformed.
    max_event_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise ConfigError(f"unknown API {self.api!r}; choose one of {', '.join(APIS)}")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"bad URL {self.url!r}: expected http(s)://host:port")
        try:
            parts.port  # noqa: B018 -- urlsplit validates the port lazily
        except ValueError as exc:
            raise ConfigError(f"bad URL {self.url!r}: {exc}") from exc
        if not self.timeout_s > 0:
            raise ConfigError(f"--timeout must be > 0, got {self.timeout_s}")
        if self.read_buffer_bytes < 65536:
            raise ConfigError("the read buffer must be at least 64 KiB")
        if self.max_event_bytes < 1024:
            raise ConfigError(
                f"the event size limit must be at least 1 KiB, got {self.max_event_bytes}"
            )
        object.__setattr__(self, "headers", _frozen(self.headers))
        object.__setattr__(self, "extra_body", _frozen(self.extra_body))

    @property
    def base_url(self) -> str:
        url = self.url.rstrip("/")
        for path in _PATHS.values():
            if url.endswith(path):
                return url[: -len(path)]
        return url[:-3] if url.endswith("/v1") else url

    @property
    def request_url(self) -> str:
        url = self.url.rstrip("/")
        if url.endswith(_PATHS[self.api]):
            return url
        return self.base_url + _PATHS[self.api]

    @property
    def operation(self) -> str:
        return "chat" if self.api == "chat" else "text_completion"

    def request_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        headers.update(self.headers)
        return headers


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` from ``--header``."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ConfigError(f"bad --header {text!r}: expected 'Name: value'")
    return name.strip(), value.strip()


def parse_body_field(text: str) -> tuple[str, Any]:
    """``key=value`` from ``--body``; the value is JSON when it parses, else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"bad --body {text!r}: expected key=value (value in JSON)")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value
