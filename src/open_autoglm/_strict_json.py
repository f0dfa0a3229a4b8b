"""JSON as every parser reads it: no ``NaN`` or ``Infinity`` in anything the package writes.

Python's :mod:`json` writes ``NaN``, ``Infinity`` and ``-Infinity`` by default, which strict
parsers (browsers' ``JSON.parse``, ``jq``, Go, Rust) refuse. :func:`dumps` writes such a number
as ``null`` and says why under ``null_reasons`` (``{"levels[0].tpot_ms.mean": "not a finite
number: nan"}``) in the enclosing object: the top-level one, or each object of a top-level list.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Final

#: The key that explains the ``null`` written for each non-finite number.
NULL_REASONS_KEY: Final = "null_reasons"


def finite(value: Any) -> tuple[Any, dict[str, str]]:
    """``value`` with each non-finite float replaced by ``None``, and the reason per path."""
    reasons: dict[str, str] = {}
    return _clean(value, "", reasons), reasons


def _clean(value: Any, path: str, reasons: dict[str, str]) -> Any:
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        reasons[path or "."] = f"not a finite number: {value!r}"
        return None
    if isinstance(value, dict):
        return {k: _clean(v, f"{path}.{k}" if path else str(k), reasons) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, f"{path}[{i}]", reasons) for i, v in enumerate(value)]
    return value


def dumps(
    value: Any, *, indent: int | None = None, default: Callable[[Any], Any] | None = None
) -> str:
    """``json.dumps`` that never writes ``NaN``/``Infinity`` (see the module notes)."""
    if isinstance(value, list):
        out: Any = [_with_reasons(v) for v in value]
    else:
        out = _with_reasons(value)
    if default is not None:  # objects the default turns into floats are checked too
        out = _with_reasons(json.loads(json.dumps(out, default=default)))
    return json.dumps(out, indent=indent, allow_nan=False)


def _with_reasons(value: Any) -> Any:
    clean, reasons = finite(value)
    if reasons and isinstance(clean, dict):  # (a bare number has nowhere to say why)
        clean[NULL_REASONS_KEY] = {**clean.get(NULL_REASONS_KEY, {}), **reasons}
    return clean
