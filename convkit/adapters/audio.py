"""Audio in and out through soundfile: ``(channels, time)`` float32 and a sample rate."""

from __future__ import annotations

import errno
import math
import operator
import os
from pathlib import Path
from typing import Any, SupportsIndex

import numpy as np

from convkit import ops
from convkit.fileio import atomic_output

FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


def load(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read WAV, FLAC or OGG as float32 ``(channels, time)`` and its sample rate.

    A file whose data is cut off (its header promises more frames than it holds) yields
    the frames that are there, as libsndfile reads it; a file with no readable header or
    no frames at all is a :class:`ValueError`, a missing file a :class:`FileNotFoundError`
    (as :func:`open` raises it).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "stereo.wav"
    >>> save(p, np.zeros((2, 400)), 8000)
    >>> data, rate = load(p)
    >>> data.shape, data.dtype, rate
    ((2, 400), dtype('float32'), 8000)
    """
    import soundfile

    if isinstance(path, str | os.PathLike) and not os.path.exists(path):
        name = os.fspath(path)
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
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

    WAV and FLAC are 16-bit PCM, which holds [-1, 1] only: ``data`` with a sample
    outside it is refused with a :class:`ValueError` naming the peak (scale or clip it
    first) rather than clipped without notice; OGG Vorbis keeps such samples. A sample
    that is not finite (NaN, infinity) is refused in every format.

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
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(
            f"{path}: data holds {bad} value{'s' if bad > 1 else ''} that "
            f"{'are' if bad > 1 else 'is'} not finite (NaN or infinity); no audio format "
            "stores them"
        )
    peak = float(np.abs(arr).max())
    if fmt != "OGG" and peak > 1.0:
        raise ValueError(
            f"{path}: data: peak {peak:.6g} lies outside [-1, 1], which {fmt} (16-bit PCM) "
            f"would clip; scale it (data / {peak:.6g}) or clip it (np.clip(data, -1, 1)) "
            "first, or write .ogg, which keeps such values"
        )
    with atomic_output(path, overwrite=overwrite) as f:
        soundfile.write(f, arr.T, rate, format=fmt)


def resample(data: Any, rate: SupportsIndex, new_rate: SupportsIndex) -> np.ndarray:
    """Resample ``(channels, time)`` from ``rate`` to ``new_rate`` with a polyphase
    filter (``scipy.signal.resample_poly``).

    Rates are integers (any integral type but ``bool``), in Hz.

    >>> resample(np.ones((2, 8000)), 8000, 16000).shape
    (2, 16000)
    """
    import scipy.signal

    old, new = _rate("rate", rate), _rate("new_rate", new_rate)
    x = np.asarray(data)
    if x.ndim != 2:
        raise ValueError(
            f"data must be (channels, time); got shape {x.shape} (give a 1-d signal as x[None])"
        )
    g = math.gcd(old, new)
    out = scipy.signal.resample_poly(x, new // g, old // g, axis=-1)
    return np.asarray(out, dtype=np.float32)


def _rate(name: str, value: Any) -> int:
    """``value`` as a positive integer sample rate, or a clear error naming ``name``."""
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}={value!r} must be an integer number of Hz; got a bool")
    try:
        hz = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name}={value!r} must be an integer number of Hz; got {type(value).__name__}"
        ) from None
    if hz < 1:
        raise ValueError(f"{name}={value!r} must be positive")
    return hz


def fir_filter(data: Any, taps: Any, *, backend: str | None = None) -> np.ndarray:
    """Filter every channel of ``(channels, time)`` with FIR ``taps``, same length out.

    Floating-point (and complex) data is filtered in its own dtype, the taps cast to it.
    Integer (and boolean) data, such as PCM samples, is filtered in float64, values as
    they are (not scaled to [-1, 1]), as ``scipy.signal.lfilter`` and ``convolve`` do
    with floating-point taps; float64 holds every 32-bit sample exactly.

    >>> fir_filter(np.ones((1, 5)), np.array([0.5, 0.5])).tolist()
    [[0.5, 1.0, 1.0, 1.0, 1.0]]
    >>> fir_filter(np.ones((1, 5), dtype=np.int16), [0.5, 0.5]).tolist()
    [[0.5, 1.0, 1.0, 1.0, 1.0]]
    """
    x = np.asarray(data)
    h = np.asarray(taps)
    if x.ndim != 2 or h.ndim != 1:
        raise ValueError(f"expected (channels, time) data and 1-d taps; got {x.shape}, {h.shape}")
    if x.dtype.kind in "biu":
        x = x.astype(np.float64)
    y = ops.convolve(x, h[None].astype(x.dtype), "full", axes=-1, backend=backend)
    return np.asarray(y)[:, : x.shape[1]]  # causal: output[t] uses input up to t


def run_conv1d(layer: Any, waveform: Any) -> np.ndarray:
    """Run a ``convkit.nn.Conv1d`` over one ``(channels, time)`` waveform (time last).

    >>> from convkit import nn
    >>> layer = nn.Conv1d(2, 4, kernel_size=3)
    >>> run_conv1d(layer, np.zeros((2, 100), dtype=np.float32)).shape
    (4, 98)
    """
    x = np.asarray(waveform)
    if x.ndim != 2:
        raise ValueError(f"waveform must be (channels, time); got shape {x.shape}")
    return np.asarray(layer(x[None]))[0]
