"""``--backend-option KEY=VALUE`` (``serve`` and ``benchmark``): the one parser of the pairs."""

from __future__ import annotations

from collections.abc import Iterable

from open_autoglm.commands._errors import UsageError


def parse_backend_options(pairs: Iterable[str]) -> dict[str, str]:
    """``["cost=zero", "decode_base_ms=5"]`` as ``{"cost": "zero", "decode_base_ms": "5"}``.

    Keys and values are stripped; a later pair wins over an earlier one with the same key.
    Each backend checks and converts its own keys when it is built. Raises
    :class:`UsageError` on a pair without ``=`` or with an empty key.
    """
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--backend-option expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = value.strip()
    return options
