"""Where the API key comes from: ``--api-key``, ``--api-key-file`` or ``OPENAI_API_KEY``.

``--api-key`` puts the key on the command line, where ``ps`` shows it to every user of the
machine; the file and the variable do not. The key is sent as a Bearer token and written
nowhere (results record only that a key was sent, and from which source).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from open_autoglm.loadgen._errors import ConfigError

API_KEY_ENV: Final = "OPENAI_API_KEY"

ApiKeySource = Literal["--api-key", "--api-key-file", "OPENAI_API_KEY"]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key and where it came from; ``repr()`` never shows the key."""

    value: str
    source: ApiKeySource

    def __repr__(self) -> str:
        return f"ApiKey(source={self.source!r})"


def api_key_from(
    flag: str | None,
    file: Path | None,
    environ: Mapping[str, str],
    *,
    use_environment: bool = True,
) -> ApiKey | None:
    """The key from the flag, else the file (its first line, surrounding blanks stripped),
    else ``OPENAI_API_KEY`` when ``use_environment`` (off when the request already carries
    credentials of its own). Raises :class:`ConfigError` for both flags at once, an unreadable
    or empty file, or an empty flag."""
    if flag is not None and file is not None:
        raise ConfigError("--api-key and --api-key-file exclude each other")
    if flag is not None:
        if not flag.strip():
            raise ConfigError("--api-key is empty")
        return ApiKey(flag.strip(), "--api-key")
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8").strip().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
            raise ConfigError(f"cannot read --api-key-file {file}: {reason}") from None
        if not lines or not lines[0].strip():
            raise ConfigError(f"--api-key-file {file} is empty")
        return ApiKey(lines[0].strip(), "--api-key-file")
    value = environ.get(API_KEY_ENV, "").strip() if use_environment else ""
    return ApiKey(value, API_KEY_ENV) if value else None


def carries_credentials(url: str | None, headers: Mapping[str, str]) -> bool:
    """True when requests already authenticate: credentials in ``url`` or an
    ``Authorization`` header; then ``OPENAI_API_KEY`` is not added to them."""
    if any(name.lower() == "authorization" for name in headers):
        return True
    if not url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.username is not None or parts.password is not None
