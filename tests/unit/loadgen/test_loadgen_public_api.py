"""The package's public surface: ``__all__`` sorted the way ruff (RUF022) keeps it, constants
first, and every name in it exists."""

import open_autoglm.loadgen as loadgen


def test_all_is_sorted_and_importable() -> None:
    assert loadgen.__all__ == sorted(loadgen.__all__, key=lambda n: (not n.isupper(), n))
    assert len(set(loadgen.__all__)) == len(loadgen.__all__)
    for name in loadgen.__all__:
        assert getattr(loadgen, name) is not None
