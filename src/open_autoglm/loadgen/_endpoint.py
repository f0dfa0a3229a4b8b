"""Where requests go and what every request carries (headers, fixed body fields, timeout)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from open_autoglm._redact import redact_url
from open_autoglm.loadgen._errors import ConfigError
from open_autoglm.telemetry import names

Api = Literal["chat", "completions"]
APIS: tuple[Api, ...] = ("chat", "completions")
_PATHS: dict[Api, str] = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """An OpenAI-compatible endpoint. ``url`` is the server's base address (``http://h:p``,
    ``http://h:p/v1``) or the full route; :attr:`request_url` is what gets the POSTs.

    Credentials in ``url`` (``http://user:password@host``) are taken out of it when the config
    is built and sent as HTTP Basic authorization; ``url`` then holds no secret, so nothing
    that writes it can leak one. ``api_key`` (sent as a Bearer token) and the credentials are
    left out of ``repr()``. Raises :class:`ConfigError` for a bad URL (message redacted) and
    for URL credentials together with an API key or an ``Authorization`` header.
    """

    url: str
    api: Api = "chat"
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    ignore_eos: bool = False
    timeout_s: float = 600.0
    read_buffer_bytes: int = 4 * 1024 * 1024
    #: One server-sent event (or a JSON body) larger than this fails its request as malformed.
    max_event_bytes: int = 16 * 1024 * 1024
    #: ``Basic ...`` from the credentials that were in ``url``; None when it had none.
    url_authorization: str | None = field(default=None, repr=False, init=False)
    #: ``gen_ai.provider.name`` of the CLIENT spans: ``openai`` for an OpenAI-compatible
    #: server we know nothing more of (as the conventions ask), the backend in a managed run.
    provider: str = names.PROVIDER_OPENAI

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise ConfigError(f"unknown API {self.api!r}; choose one of {', '.join(APIS)}")
        parts = urlsplit(self.url)
        shown = redact_url(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"bad URL {shown!r}: expected http(s)://host:port")
        try:
            parts.port  # noqa: B018 -- urlsplit validates the port lazily
        except ValueError as exc:
            raise ConfigError(f"bad URL {shown!r}: port is not a number in 0-65535") from exc
        if parts.username is not None or parts.password is not None:
            if self.api_key or any(h.lower() == "authorization" for h in self.headers):
                raise ConfigError(
                    f"the URL {shown} carries credentials and an API key or Authorization "
                    "header is given too: give one of them"
                )
            pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            basic = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
            netloc = parts.netloc.rpartition("@")[2]
            object.__setattr__(self, "url_authorization", basic)
            object.__setattr__(self, "url", urlunsplit(parts._replace(netloc=netloc)))
        if not self.timeout_s > 0:
            raise ConfigError(f"--timeout must be > 0, got {self.timeout_s}")
        if self.read_buffer_bytes < 65536:
            raise ConfigError("the read buffer must be at least 64 KiB")
        if not self.provider:
            raise ConfigError("the provider name must not be empty")
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
    def server_address(self) -> tuple[str, int]:
        """Host and port the requests go to (the scheme's default port when none is given)."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.hostname or "", port

    @property
    def operation(self) -> str:
        return "chat" if self.api == "chat" else "text_completion"

    def request_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif self.url_authorization:
            headers["Authorization"] = self.url_authorization
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
