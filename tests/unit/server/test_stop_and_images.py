from __future__ import annotations

import io

import pytest
from PIL import Image

from open_autoglm.instrumented_servers._images import image_size
from open_autoglm.instrumented_servers._stop import StopMatcher


def test_stop_matcher_across_deltas() -> None:
    m = StopMatcher(("END",))
    assert m.feed("abc E") == ("abc", False)
    assert m.feed("N") == (" ", False)
    assert m.feed("Dxyz") == ("", True)


def test_stop_matcher_releases_held_text() -> None:
    m = StopMatcher(("STOP",))
    out, stopped = m.feed("ST")
    assert (out, stopped) == ("", False)
    assert m.feed("ay") == ("S", False)  # "S" can no longer start "STOP"
    assert m.flush() == "Tay"


def test_no_stop_sequences_passes_through() -> None:
    assert StopMatcher(()).feed("anything") == ("anything", False)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_image_size_from_headers(fmt: str) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (123, 45), "blue").save(buf, format=fmt)
    assert image_size(buf.getvalue()) == (123, 45)


def test_unknown_image_format() -> None:
    assert image_size(b"not an image at all") is None
