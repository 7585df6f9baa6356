"""Image bytes <-> arrays. Catalogue images are PNG; arrays are uint8 (N, H, W, C); tensors are [-1, 1] (N, C, H, W)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from fashiongen.errors import FashiongenError

MODES = {1: "L", 3: "RGB"}
DEEP_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # 16-bit grey PNGs open as I;16 or I


class ImageError(FashiongenError, ValueError):
    """Bytes that do not decode to an image of the expected mode and size."""


def encode_png(array: np.ndarray) -> bytes:
    """uint8 (H, W) or (H, W, C) with C in {1, 3} -> PNG bytes."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_image(data: bytes, mode: str | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """Image bytes (PNG, JPEG...) -> uint8 (H, W, C). 16-bit grey is scaled to 8 bits. With `mode`/`size` given,
    converts and resizes (plain resize, aspect not kept, as the official code); raises ImageError on undecodable
    bytes."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"undecodable image bytes ({exc})") from None
    if img.mode in DEEP_GRAY_MODES:  # scale 0..65535 to 0..255: PIL's convert("L") clips everything above 255
        img = Image.fromarray(np.clip(np.rint(np.asarray(img, dtype=np.float64) / 257), 0, 255).astype(np.uint8))
    if mode and img.mode != mode:
        img = img.convert(mode)
    if size and img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def to_tensor_range(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [-1, 1], as the official code scales pixels."""
    return (images.transpose(0, 3, 1, 2).astype(np.float32) - 127.5) / 127.5


def from_tensor_range(images: np.ndarray) -> np.ndarray:
    """float (N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C)."""
    arr = np.clip(np.rint(images * 127.5 + 127.5), 0, 255).astype(np.uint8)
    return arr.transpose(0, 2, 3, 1)
