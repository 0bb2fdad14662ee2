"""Recordings for exercise 4: plucked-string stereo music, a real speech recording, or
the user's own file, with white noise added at a known level.

Denoising needs the clean signal under the noise, so noise is always added here, to
clean audio: a synthesised melody (ground truth by construction), the short speech
recording that the pure-Python package ``AMFM_decompy`` ships (``sample.wav``, 16 kHz,
0.9 s, MIT licence), or any WAV/FLAC/OGG file given with ``convkit exercises --audio``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from convkit.adapters import audio

RATE = 16_000
SCALE = 220.0 * 2 ** (np.array([0, 3, 5, 7, 10, 12, 15, 17, 19]) / 12)  # A minor pentatonic


def pluck(freq: float, seconds: float, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    """One Karplus–Strong note: a noise burst of one period fed back through a delay line
    with a damped two-point average, ``y[n] = b[n] + 0.498 (y[n − P] + y[n − P + 1])``.

    >>> note = pluck(440.0, 0.5, np.random.default_rng(0))
    >>> note.shape, bool(np.abs(note[-400:]).max() < np.abs(note[:400]).max())
    ((8000,), True)
    """
    period = max(2, round(rate / freq))
    burst = np.zeros(int(seconds * rate))
    burst[:period] = rng.uniform(-1, 1, period)
    feedback = np.zeros(period + 1)
    feedback[0] = 1.0
    feedback[period - 1] -= 0.498
    feedback[period] -= 0.498
    return np.asarray(signal.lfilter([1.0], feedback, burst))


def melody(seconds: float, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    """Stereo plucked notes from an A-minor pentatonic scale at random times, each panned
    to a random position (constant-power panning), overlapping as they ring:
    ``(2, T)`` float32, peak 0.9."""
    out = np.zeros((2, int(seconds * rate)))
    t = 0
    while t < out.shape[1]:
        note = pluck(float(rng.choice(SCALE)), 0.8, rng, rate) * rng.uniform(0.3, 0.8)
        pan = rng.uniform(0.1, 0.9) * np.pi / 2
        end = min(out.shape[1], t + note.size)
        out[0, t:end] += np.cos(pan) * note[: end - t]
        out[1, t:end] += np.sin(pan) * note[: end - t]
        t += int(rng.uniform(0.12, 0.4) * rate)
    return (0.9 * out / np.max(np.abs(out))).astype(np.float32)


def speech_sample() -> Path | None:
    """The path of the speech recording ``AMFM_decompy`` ships, or ``None`` when that
    package is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("amfm_decompy")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "sample.wav"
    return path if path.is_file() else None


@dataclass
class Recording:
    """Clean training and test audio ``(clips, channels, time)`` and where it came from."""

    source: str
    """What the audio is, in words, for the report."""
    kind: str
    """``"synthetic"``, ``"speech"`` (the packaged recording) or ``"file"``."""
    rate: int
    train: np.ndarray
    test: np.ndarray
    """The held-out audio the headline is measured on, never used for any choice."""
    val: np.ndarray | None = None
    """Validation audio (what the net's size and schedule were picked on), if any."""


def synthetic(
    seconds: float,
    clips: int,
    rng: np.random.Generator,
    test_clips: int = 1,
    test_rng: np.random.Generator | None = None,
) -> Recording:
    """``clips`` training melodies, one validation melody (drawn from ``rng`` after the
    training ones) and ``test_clips`` test melodies drawn from ``test_rng``, all
    different."""
    train = np.stack([melody(seconds, rng) for _ in range(clips)])
    val = melody(seconds, rng)[None]
    test_rng = rng if test_rng is None else test_rng
    test = np.stack([melody(seconds, test_rng) for _ in range(test_clips)])
    return Recording(
        f"synthesised stereo plucked strings (Karplus–Strong), {clips} training clips, "
        f"1 validation clip and {test_clips} test clips of {seconds:g} s at {RATE} Hz",
        "synthetic",
        RATE,
        train,
        test,
        val,
    )


def from_file(path: Path, kind: str, max_seconds: float, train_share: float = 0.7) -> Recording:
    """A recording split in time: its first ``train_share`` trains, the rest is held out.
    At most ``max_seconds`` are used; the peak is scaled to 0.9."""
    data, rate = audio.load(path)
    data = data[:, : int(max_seconds * rate)].astype(np.float64)
    peak = float(np.max(np.abs(data)))
    if data.shape[1] < 4096 or peak == 0:
        raise ValueError(f"{path}: need at least 4,096 samples of sound; got {data.shape[1]}")
    data = (0.9 * data / peak).astype(np.float32)
    cut = int(train_share * data.shape[1])
    label = "the speech recording shipped by AMFM_decompy" if kind == "speech" else str(path)
    return Recording(
        f"{label} ({data.shape[0]} channel{'s' if data.shape[0] > 1 else ''}, "
        f"{data.shape[1] / rate:.2f} s at {rate} Hz): first {cut / rate:.2f} s train, "
        f"last {(data.shape[1] - cut) / rate:.2f} s held out",
        kind,
        rate,
        data[None, :, :cut],
        data[None, :, cut:],
    )


def noisy(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``clean`` plus white Gaussian noise of standard deviation ``sigma`` (float32)."""
    return (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32)
