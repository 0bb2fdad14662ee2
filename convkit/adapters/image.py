"""Images in and out: Pillow files as ``(channels, height, width)`` float32 in [0, 1]."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from convkit import api
from convkit.fileio import atomic_output

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def load(path: str | os.PathLike[str], mode: str = "auto") -> np.ndarray:
    """Read a PNG or JPEG as float32 ``(C, H, W)`` in [0, 1]: ``C`` is 1 for greyscale,
    3 for colour (``mode="auto"``), or forced with ``mode="grey"`` / ``"rgb"``. An alpha
    channel is dropped (convkit filters colour, not transparency).

    Pillow's decompression-bomb guard stays on: an absurdly large image is refused.
    """
    from PIL import Image, UnidentifiedImageError

    if mode not in ("auto", "grey", "rgb"):
        raise ValueError(f"mode={mode!r}; expected 'auto', 'grey' or 'rgb'")
    try:
        with Image.open(path) as img:
            img.load()
            grey_modes = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
            if mode == "grey" or (mode == "auto" and img.mode in grey_modes):
                arr: np.ndarray
                if img.mode.startswith("I"):  # 16-bit PNGs load as I or I;16
                    arr = np.asarray(img, dtype=np.float64) / 65535.0
                elif img.mode == "F":
                    arr = np.asarray(img, dtype=np.float64)
                else:
                    arr = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
                return arr.astype(np.float32)[None]
            arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
            return np.ascontiguousarray(arr.transpose(2, 0, 1))
    except Image.DecompressionBombError as exc:
        raise ValueError(f"{path}: refused by Pillow's decompression-bomb guard: {exc}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from exc


def save(path: str | os.PathLike[str], image: Any) -> None:
    """Write ``(1, H, W)`` or ``(3, H, W)`` values in [0, 1] (clipped) as PNG or JPEG,
    by the file's extension, atomically."""
    from PIL import Image

    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(
            f"{path}: unsupported image format; use one of {', '.join(sorted(FORMATS))}"
        )
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise ValueError(f"image must be (1, H, W) or (3, H, W); got shape {arr.shape}")
    pixels = (np.clip(arr, 0.0, 1.0) * 255).round().astype(np.uint8)
    img = Image.fromarray(pixels[0] if arr.shape[0] == 1 else pixels.transpose(1, 2, 0))
    with atomic_output(path) as f:
        img.save(f, format=fmt)


def filter(
    image: Any,
    kernel: Any,
    *,
    padding_mode: str = "reflect",
    backend: str | None = None,
) -> np.ndarray:
    """Filter every channel of ``(C, H, W)`` with one 2-d kernel, output the same size
    (``padding="same"``). The kernel is applied as a convolution (flipped), as image
    processing names them.

    >>> filter(np.ones((1, 4, 4)), np.full((3, 3), 1 / 9)).round(6).tolist()[0][0]
    [1.0, 1.0, 1.0, 1.0]
    """
    img = np.asarray(image)
    k = np.asarray(kernel, dtype=np.float64)
    if img.ndim != 3:
        raise ValueError(f"image must be (C, H, W); got shape {img.shape}")
    if k.ndim != 2:
        raise ValueError(f"an image kernel must be 2-d; got shape {k.shape}")
    weight = k[::-1, ::-1][None, None].astype(img.dtype if img.dtype.kind == "f" else np.float32)
    y = api.conv(img[:, None], weight, padding="same", padding_mode=padding_mode, backend=backend)
    return np.asarray(y)[:, 0]
