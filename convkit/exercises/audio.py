"""Exercise 4: an audio conv layer, h[t, d] = u[d] + Σ_a Σ_c V[a, c, d] · x[t + a, c].

With time as the only spatial axis and the channels as ``c``, that is a ``Conv1d`` with
``weight[d, c, a] = V[a, c, d]`` and ``bias[d] = u[d]``. The recordings are synthesised
stereo music, because both tasks need ground truth: the clean signal under the noise,
and the true onsets of the hidden sound. They go through real WAV files on the way.
"""

from __future__ import annotations

import numpy as np

import convkit as ck
from convkit import nn
from convkit.adapters import audio, kernels
from convkit.exercises.common import Context, Result, pyplot, save_figure

RATE = 16_000
NOTES = [220.0, 261.63, 293.66, 329.63, 392.0, 440.0, 523.25]  # A minor-ish


def music(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Stereo notes with four decaying harmonics and soft attacks: ``(2, T)``."""
    t = np.arange(int(seconds * RATE)) / RATE
    out = np.zeros((2, t.size))
    note = int(0.25 * RATE)
    for ch in range(2):
        for start in range(0, t.size, note):
            f = NOTES[rng.integers(len(NOTES))] * (1 if ch == 0 else 1.5)
            seg = t[start : start + note] - t[start]
            env = np.minimum(1, seg / 0.02) * np.exp(-seg * 4)
            tone = sum(np.sin(2 * np.pi * f * h * seg) / h**1.5 for h in range(1, 5))
            out[ch, start : start + note] += 0.3 * env * tone
    return out.astype(np.float32)


def snr_db(clean: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-noise ratio of ``estimate`` against ``clean``, in dB."""
    return float(10 * np.log10(np.sum(clean**2) / np.sum((estimate - clean) ** 2)))


def denoise(ctx: Context) -> dict[str, float]:
    rng = ctx.rng(41)
    seconds = 1.0 if ctx.quick else 3.0
    clean = music(seconds, rng)
    path = ctx.out / "audio-clean.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    audio.save(path, clean, RATE)
    clean, rate = audio.load(path)  # through a real file and back
    noisy = clean + 0.12 * rng.standard_normal(clean.shape).astype(np.float32)
    audio.save(ctx.out / "audio-noisy.wav", np.clip(noisy, -1, 1), rate)

    layer = nn.Conv1d(2, 2, 63, padding="same", backend=ctx.backend, seed=4)
    seg = 4096
    starts = rng.integers(0, clean.shape[1] - seg, 64)
    x = np.stack([noisy[:, s : s + seg] for s in starts])
    y = np.stack([clean[:, s : s + seg] for s in starts])
    nn.fit(
        layer,
        nn.MSELoss(),
        nn.Adam(layer.parameters(), lr=3e-3),
        x,
        y,
        epochs=8 if ctx.quick else 25,
        batch_size=8,
        seed=5,
        verbose=ctx.verbose,
    )
    learned = audio.run_conv1d(layer, noisy)
    taps = kernels.lowpass(cutoff=2500, rate=rate, numtaps=63)
    designed = ck.convolve(
        noisy, taps[None].astype(np.float32), "same", axes=-1, backend=ctx.backend
    )
    audio.save(ctx.out / "audio-denoised.wav", np.clip(learned, -1, 1), rate)
    return {
        "snr_noisy_db": snr_db(clean, noisy),
        "snr_conv1d_db": snr_db(clean, learned),
        "snr_firwin_db": snr_db(clean, designed),
        "seconds": seconds,
    }


def find_sound(ctx: Context) -> tuple[dict[str, object], object]:
    """Hide a short chirp three times in a long noisy recording; find it by normalised
    cross-correlation."""
    rng = ctx.rng(42)
    seconds = 2.0 if ctx.quick else 6.0
    background = music(seconds, rng).sum(axis=0)
    background += 0.05 * rng.standard_normal(background.shape).astype(np.float32)
    t = np.arange(int(0.04 * RATE)) / RATE
    chirp = (np.sin(2 * np.pi * (1000 + 25_000 * t) * t) * np.hanning(t.size)).astype(np.float32)
    onsets = np.sort(
        rng.choice(
            np.arange(RATE // 4, background.size - chirp.size, chirp.size * 3), 3, replace=False
        )
    )
    recording = background.copy()
    for s in onsets:
        recording[s : s + chirp.size] += 0.5 * chirp
    template = chirp - chirp.mean()
    num = ck.correlate(recording, template, "valid", backend=ctx.backend)
    window = np.ones(chirp.size, dtype=np.float32)
    local_sum = ck.correlate(recording, window, "valid", backend=ctx.backend)
    local_sq = ck.correlate(recording**2, window, "valid", backend=ctx.backend)
    local_var = np.maximum(local_sq - local_sum**2 / chirp.size, 1e-12)
    ncc = num / np.sqrt(local_var * np.sum(template**2))
    found = []
    score = ncc.copy()
    for _ in range(3):
        i = int(np.argmax(score))
        found.append(i)
        score[max(0, i - chirp.size) : i + chirp.size] = -np.inf
    found.sort()
    errors = [abs(int(a) - int(b)) for a, b in zip(found, onsets, strict=True)]
    return {
        "true_onsets": [int(s) for s in onsets],
        "found_onsets": found,
        "onset_errors_samples": errors,
        "peak_ncc": float(np.max(ncc)),
    }, ncc


def run(ctx: Context) -> Result:
    """Denoise with a trained Conv1d against a designed filter; find a sound."""
    den = denoise(ctx)
    hunt, ncc = find_sound(ctx)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 2.6))
    times = np.arange(len(ncc)) / RATE  # type: ignore[arg-type]
    ax.plot(times, ncc, lw=0.6)
    for s in hunt["true_onsets"]:  # type: ignore[attr-defined]
        ax.axvline(s / RATE, color="r", ls="--", lw=0.8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("normalised correlation")
    ax.set_title("finding a 40 ms chirp in music and noise (red: true onsets)")
    figure = save_figure(fig, ctx, "audio-waldo")
    errors: list[int] = hunt["onset_errors_samples"]  # type: ignore[assignment]
    worst = max(errors)
    found_ok = sum(e <= 2 for e in errors)
    return Result(
        name="audio",
        title="An audio conv layer",
        verdict=f"a trained Conv1d(2→2, 63 taps) lifts the SNR from {den['snr_noisy_db']:.1f} to "
        f"{den['snr_conv1d_db']:.1f} dB (firwin low-pass: {den['snr_firwin_db']:.1f} dB); "
        f"correlation finds {found_ok} of 3 hidden sounds within 2 samples (worst error {worst})",
        key=f"SNR {den['snr_noisy_db']:.1f} → {den['snr_conv1d_db']:.1f} dB",
        numbers={**den, **hunt, "sample_rate": RATE},
        figures=[figure],
    )
