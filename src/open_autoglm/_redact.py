"""Secrets kept out of what the tool writes: results, reports, logs, error messages.

A URL's password (``http://user:PASSWORD@host``) and the values of query parameters that name a
credential (``?api-key=...``, ``?token=...``) are replaced by :data:`REDACTED`; header values and
API keys are never written at all (results keep header names and whether a key was sent).
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED: Final = "***"
_SECRET_PARAM: Final = re.compile(r"key|token|secret|pass|auth|sig|credential", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with its password and credential-like query values replaced by ``***``.

    The user name, host, port and path stay (they identify the endpoint). Text that does not
    parse as a URL comes back with anything between ``://`` and ``@`` redacted.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return re.sub(r"(?<=://)[^/@]*@", f"{REDACTED}@", url)
    netloc = parts.netloc
    if parts.password is not None or "@" in netloc:
        host = parts.hostname or ""
        if ":" in host:  # IPv6
            host = f"[{host}]"
        user = parts.username or ""
        secret = f":{REDACTED}" if parts.password is not None else ""
        netloc = f"{user}{secret}@{host}" + (f":{port}" if port is not None else "")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.search(k) for k, _ in pairs):
            query = urlencode(
                [(k, REDACTED if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*"
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every ``scheme://user:password@`` in free text (an exception's message) redacted."""
    return re.sub(r"(\w+://[^\s/:@]*):[^\s/@]*@", rf"\1:{REDACTED}@", text)
