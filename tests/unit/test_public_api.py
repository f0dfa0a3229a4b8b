"""Each package's public surface: a sorted ``__all__`` whose every name resolves."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = (
    "open_autoglm.telemetry",
    "open_autoglm.instrumented_servers",
    "open_autoglm.loadgen",
    "open_autoglm.collector",
    "open_autoglm.analysis",
    "open_autoglm.testing",
    "open_autoglm.dashboards",
    "open_autoglm.errors",
    "open_autoglm.commands",
    "open_autoglm.run",
    "open_autoglm.attach",
    "open_autoglm.objectives",
    "open_autoglm.attach",
)


def isort_key(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then functions."""
    if name.isupper():
        return (0, name)
    return (1, name) if name[0].isupper() else (2, name)


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_sorted_and_resolves(package: str) -> None:
    module = importlib.import_module(package)
    names = list(module.__all__)
    assert names == sorted(names, key=isort_key)
    assert len(set(names)) == len(names)
    for name in names:
        assert getattr(module, name) is not None, name
