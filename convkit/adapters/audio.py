"""Audio in and out through soundfile: ``(channels, time)`` float32 and a sample rate."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from convkit import ops
from convkit.fileio import atomic_output

FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


def load(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read WAV, FLAC or OGG as float32 ``(channels, time)`` and its sample rate.

    A file whose data is cut off (its header promises more frames than it holds) yields
    the frames that are there, as libsndfile reads it; a file with no readable header or
    no frames at all is an error."""
    import soundfile

    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable audio file ({exc})") from exc
    if data.shape[0] == 0:
        raise ValueError(f"{path}: the audio file holds no samples")
    return np.ascontiguousarray(data.T), int(rate)


def save(path: str | os.PathLike[str], data: Any, rate: int, *, overwrite: bool = True) -> None:
    """Write ``(channels, time)`` (values in [-1, 1]) as WAV, FLAC or OGG by extension,
    atomically (:mod:`convkit.fileio`); with ``overwrite=False`` an existing file is
    refused with :class:`FileExistsError`.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> save(d / "tone.wav", np.zeros((1, 800)), 8000)
    >>> load(d / "tone.wav")[0].shape
    (1, 800)
    """
    import soundfile

    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(
            f"{path}: unsupported audio format; use one of {', '.join(sorted(FORMATS))}"
        )
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"audio must be (channels, time) with samples; got shape {arr.shape}")
    with atomic_output(path, overwrite=overwrite) as f:
        soundfile.write(f, arr.T, rate, format=fmt)


def resample(data: Any, rate: int, new_rate: int) -> np.ndarray:
    """Resample ``(channels, time)`` from ``rate`` to ``new_rate`` with a polyphase
    filter (``scipy.signal.resample_poly``)."""
    import scipy.signal

    if rate < 1 or new_rate < 1:
        raise ValueError(f"sample rates must be positive; got {rate} and {new_rate}")
    g = math.gcd(rate, new_rate)
    out = scipy.signal.resample_poly(np.asarray(data), new_rate // g, rate // g, axis=-1)
    return np.asarray(out, dtype=np.float32)


def fir_filter(data: Any, taps: Any, *, backend: str | None = None) -> np.ndarray:
    """Filter every channel of ``(channels, time)`` with FIR ``taps``, same length out.

    >>> fir_filter(np.ones((1, 5)), np.array([0.5, 0.5])).tolist()
    [[0.5, 1.0, 1.0, 1.0, 1.0]]
    """
    x = np.asarray(data)
    h = np.asarray(taps)
    if x.ndim != 2 or h.ndim != 1:
        raise ValueError(f"expected (channels, time) data and 1-d taps; got {x.shape}, {h.shape}")
    y = ops.convolve(x, h[None].astype(x.dtype), "full", axes=-1, backend=backend)
    return np.asarray(y)[:, : x.shape[1]]  # causal: output[t] uses input up to t


def run_conv1d(layer: Any, waveform: Any) -> np.ndarray:
    """Run a ``convkit.nn.Conv1d`` over one ``(channels, time)`` waveform (time last)."""
    x = np.asarray(waveform)
    if x.ndim != 2:
        raise ValueError(f"waveform must be (channels, time); got shape {x.shape}")
    return np.asarray(layer(x[None]))[0]
