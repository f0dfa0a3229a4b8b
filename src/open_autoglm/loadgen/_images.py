"""Images for multimodal chat requests, sent as base64 ``data:`` URIs in ``image_url`` parts."""

from __future__ import annotations

import base64
import io
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from open_autoglm.loadgen._errors import ConfigError, DatasetError

ImageFormat = Literal["png", "jpeg", "webp"]
IMAGE_FORMATS: tuple[ImageFormat, ...] = ("png", "jpeg", "webp")
_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True, slots=True)
class EncodedImage:
    data_uri: str
    size_bytes: int  # the encoded file, before base64
    pixels: int


def parse_size(text: str) -> tuple[int, int]:
    """``"512x384"`` -> ``(512, 384)``."""
    width, sep, height = text.lower().partition("x")
    try:
        size = (int(width), int(height)) if sep else (int(width), int(width))
    except ValueError:
        raise ConfigError(f"bad image size {text!r}: expected WIDTHxHEIGHT") from None
    if min(size) < 1 or max(size) > 16384:
        raise ConfigError(f"bad image size {text!r}: each side must be 1..16384 pixels")
    return size


def synthetic_image(
    size: tuple[int, int], image_format: ImageFormat, rng: np.random.Generator
) -> EncodedImage:
    """A seeded image: a random colour gradient with noise, so that encoders cannot shrink
    it to nothing and no two images are alike."""
    from PIL import Image

    width, height = size
    base = rng.integers(0, 256, size=3)
    ramp_x = np.linspace(0, 1, width)[None, :, None]
    ramp_y = np.linspace(0, 1, height)[:, None, None]
    tint = rng.integers(0, 256, size=(1, 1, 3))
    noise = rng.integers(0, 48, size=(height, width, 3))
    pixels = (base * (1 - ramp_x) + tint * ramp_y + noise) % 256
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=image_format.upper())
    data = buffer.getvalue()
    return _encode(data, _MIME[image_format], width * height)


def file_image(path: Path) -> EncodedImage:
    """An image file as it is on disk (checked to be an image Pillow can open)."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            pixels = image.width * image.height
            fmt = (image.format or "").lower()
    except FileNotFoundError:
        raise DatasetError(f"image file not found: {path}") from None
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"not an image: {path} ({type(exc).__name__})") from None
    mime = _MIME.get(fmt) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return _encode(data, mime, pixels)


def _encode(data: bytes, mime: str, pixels: int) -> EncodedImage:
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return EncodedImage(data_uri=uri, size_bytes=len(data), pixels=pixels)
