"""Images in and out: Pillow files as ``(channels, height, width)`` float32 in [0, 1];
:func:`save` maps values outside [0, 1] to 8 bits by an explicit ``scale`` and says how."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convkit import ops
from convkit.fileio import atomic_output

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def load(path: str | os.PathLike[str], mode: str = "auto") -> np.ndarray:
    """Read a PNG or JPEG as float32 ``(C, H, W)`` in [0, 1]: ``C`` is 1 for greyscale,
    3 for colour (``mode="auto"``), or forced with ``mode="grey"`` / ``"rgb"``. An alpha
    channel is dropped (convkit filters colour, not transparency).

    8-bit images are divided by 255, 16-bit greyscale ones (Pillow's ``I`` modes) by
    65535, with ``mode="rgb"`` too (the grey plane replicated to three channels, where
    Pillow's own conversion to RGB would clip); 32-bit float images (``F``) are taken as
    they are.

    Pillow's decompression-bomb guard stays on: an absurdly large image is refused. A
    missing file is a :class:`FileNotFoundError` (as :func:`open` raises it); a file
    Pillow cannot read is a :class:`ValueError`.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "grey.png"
    >>> _ = save(p, np.full((1, 2, 3), 0.5))
    >>> load(p).shape, load(p, mode="rgb").shape
    ((1, 2, 3), (3, 2, 3))
    """
    from PIL import Image, UnidentifiedImageError

    if mode not in ("auto", "grey", "rgb"):
        raise ValueError(f"mode={mode!r}; expected 'auto', 'grey' or 'rgb'")
    try:
        with Image.open(path) as img:
            img.load()
            grey_modes = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
            deep = img.mode.startswith("I") or img.mode == "F"  # not 8 bits a channel
            if mode == "grey" or (mode == "auto" and img.mode in grey_modes) or deep:
                arr: np.ndarray
                if img.mode.startswith("I"):  # 16-bit PNGs load as I or I;16
                    arr = np.asarray(img, dtype=np.float64) / 65535.0
                elif img.mode == "F":
                    arr = np.asarray(img, dtype=np.float64)
                else:
                    arr = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
                plane = arr.astype(np.float32)[None]
                return np.repeat(plane, 3, axis=0) if mode == "rgb" else plane
            arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
            return np.ascontiguousarray(arr.transpose(2, 0, 1))
    except Image.DecompressionBombError as exc:
        raise ValueError(f"{path}: refused by Pillow's decompression-bomb guard: {exc}") from exc
    except FileNotFoundError:
        raise  # open()'s own error, naming the path
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from exc


SCALES = ("clip", "minmax", "abs")
"""How :func:`save` maps values to an 8-bit image's [0, 1]; ``"clip"`` is the default."""


@dataclass(frozen=True)
class Scaling:
    """How :func:`to_unit_range` mapped values to [0, 1]: the ``scale`` applied, the
    finite values' range before it (``low``, ``high``), and how many of the ``pixels``
    were ``clipped`` (a pixel counts once, whichever of its channels left [0, 1];
    NaN counts as clipped, to 0).

    >>> print(Scaling("clip", -0.5, 1.0, clipped=2, pixels=8))
    scale=clip: 2 of 8 pixels (25.0%) clipped to [0, 1]
    """

    scale: str
    low: float
    high: float
    clipped: int
    pixels: int

    def __str__(self) -> str:
        how = {
            "clip": "scale=clip",
            "minmax": f"scale=minmax: [{self.low:.4g}, {self.high:.4g}] stretched to [0, 1]",
            "abs": f"scale=abs: absolute values (range [{self.low:.4g}, {self.high:.4g}])",
        }[self.scale]
        if not self.clipped:
            return f"{how}, no pixel clipped" if self.scale != "minmax" else how
        share = 100 * self.clipped / max(1, self.pixels)
        return f"{how}: {self.clipped} of {self.pixels} pixels ({share:.1f}%) clipped to [0, 1]"


def to_unit_range(image: Any, scale: str = "clip") -> tuple[np.ndarray, Scaling]:
    """Map ``(C, H, W)`` values to [0, 1] for an 8-bit image, and say what happened.

    ``scale`` is ``"clip"`` (values kept as they are, those outside [0, 1] clipped:
    right for blurs and sharpening, whose results are images; what Pillow users and
    scikit-image's ``img_as_ubyte`` do), ``"minmax"`` (the smallest value becomes 0,
    the largest 1, all channels together: shows a signed result such as a Sobel
    derivative whole, zero as mid-grey when it is symmetric) or ``"abs"`` (the
    magnitude ``|x|``, clipped at 1: edges bright whatever their sign). A constant
    image under ``"minmax"`` is clipped instead.

    >>> x = np.array([[[-0.5, 0.0, 0.5, 1.5]]])
    >>> y, how = to_unit_range(x)
    >>> y.tolist(), how.clipped
    ([[[0.0, 0.0, 0.5, 1.0]]], 2)
    >>> to_unit_range(x, "minmax")[0].tolist()
    [[[0.0, 0.25, 0.5, 1.0]]]
    >>> to_unit_range(x, "abs")[0].tolist()
    [[[0.5, 0.0, 0.5, 1.0]]]
    """
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r} is not a scaling; expected one of {', '.join(SCALES)}")
    arr = np.asarray(image, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if scale == "abs":
        arr = np.abs(arr)
    elif scale == "minmax" and high > low:
        arr = (arr - low) / (high - low)
    outside = ~((arr >= 0.0) & (arr <= 1.0))  # NaN is outside too
    pixels = outside.reshape(-1, *arr.shape[-2:]).any(axis=0) if arr.ndim >= 2 else outside
    out = np.nan_to_num(np.clip(arr, 0.0, 1.0), nan=0.0)
    return out, Scaling(scale, low, high, int(np.count_nonzero(pixels)), int(pixels.size))


def save(
    path: str | os.PathLike[str], image: Any, *, scale: str = "clip", overwrite: bool = True
) -> Scaling:
    """Write ``(1, H, W)`` or ``(3, H, W)`` values as an 8-bit PNG or JPEG, by the
    file's extension, atomically (:mod:`convkit.fileio`); returns how the values were
    mapped to [0, 1] (:func:`to_unit_range`: ``scale`` is ``"clip"``, ``"minmax"`` or
    ``"abs"``) and how many pixels were clipped. With ``overwrite=False`` an existing
    file is refused with :class:`FileExistsError`.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> print(save(d / "edges.png", np.array([[[-1.0, 0.0, 1.0]]]), scale="minmax"))
    scale=minmax: [-1, 1] stretched to [0, 1]
    """
    from PIL import Image

    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(
            f"{path}: unsupported image format; use one of {', '.join(sorted(FORMATS))}"
        )
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise ValueError(f"image must be (1, H, W) or (3, H, W); got shape {arr.shape}")
    unit, scaling = to_unit_range(arr, scale)
    pixels = (unit * 255).round().astype(np.uint8)
    img = Image.fromarray(pixels[0] if arr.shape[0] == 1 else pixels.transpose(1, 2, 0))
    with atomic_output(path, overwrite=overwrite) as f:
        img.save(f, format=fmt)
    return scaling


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

    A floating-point image is filtered in its dtype; an integer (or boolean) one in
    float32, its values as they are (not divided by 255), as
    :func:`convkit.adapters.arrays.filter_file` does.

    >>> filter(np.ones((1, 4, 4)), np.full((3, 3), 1 / 9)).round(6).tolist()[0][0]
    [1.0, 1.0, 1.0, 1.0]
    >>> filter(np.full((1, 2, 2), 9, dtype=np.uint8), np.ones((1, 1))).dtype
    dtype('float32')
    """
    img = np.asarray(image)
    k = np.asarray(kernel, dtype=np.float64)
    if img.ndim != 3:
        raise ValueError(f"image must be (C, H, W); got shape {img.shape}")
    if k.ndim != 2:
        raise ValueError(f"an image kernel must be 2-d; got shape {k.shape}")
    if img.dtype.kind in "biu":
        img = img.astype(np.float32)
    weight = k[::-1, ::-1][None, None].astype(img.dtype if img.dtype.kind == "f" else np.float32)
    y = ops.conv(img[:, None], weight, padding="same", padding_mode=padding_mode, backend=backend)
    return np.asarray(y)[:, 0]
