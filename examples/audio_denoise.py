"""Denoise audio with a stack of Conv1d layers, against the best linear filter.

The recordings are plucked-string melodies synthesised with the Karplus–Strong
algorithm (a delay line with a damped average in its feedback loop: the sound of a
string, not a sum of sines), 16 kHz mono. They are written to WAV files and read back
with ``convkit.adapters.audio``, as a user's own recordings would be; white noise is
added at about 0 dB signal-to-noise ratio (as much noise as signal).

The model is three ``Conv1d`` layers with ReLUs between them (15, then dilated 15, then
15 taps: 57 samples of context) trained with Adam on random 1,024-sample slices of the
training clips to output the clean signal. Its baseline is the one a signal-processing
engineer would pick: the Wiener filter — the linear FIR filter of the same 57-sample
span that minimises the squared error on the same training data, solved exactly by
least squares. It is the best any linear convolution of that span can do, so the
comparison asks what the nonlinearity buys. Both are scored on a held-out clip.

    python examples/audio_denoise.py [--out out/audio_denoise]   # about 25 s on 2 cores
    python examples/audio_denoise.py --quick                      # checks that it runs

Writes the clean, noisy and denoised test clips as WAV files and a figure
(``denoise.png``: a stretch of the waveforms and the SNR of each method).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import convkit as ck
from convkit import nn
from convkit.adapters import audio
from convkit.fileio import atomic_output

RATE = 16_000
NOISE = 0.1  # standard deviation of the added white noise
SPAN = 57  # samples of context of the network below: 15 + 2 * 14 + 14 = 57


def pluck(freq: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One Karplus–Strong note: a noise burst in a delay line of one period, averaged and
    slightly damped on every pass."""
    period = max(2, round(RATE / freq))
    line = rng.uniform(-1, 1, period)
    out = np.empty(int(seconds * RATE))
    for i in range(out.size):
        j = i % period
        out[i] = line[j]
        line[j] = 0.996 * 0.5 * (line[j] + line[(j + 1) % period])
    return out


def melody(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Notes from an A-minor pentatonic scale at random times, overlapping as they ring."""
    scale = 220.0 * 2 ** (np.array([0, 3, 5, 7, 10, 12, 15, 17, 19]) / 12)
    out = np.zeros(int(seconds * RATE))
    t = 0
    while t < out.size:
        note = pluck(rng.choice(scale), 0.8, rng) * rng.uniform(0.3, 0.8)
        end = min(out.size, t + note.size)
        out[t:end] += note[: end - t]
        t += int(rng.uniform(0.12, 0.4) * RATE)
    return (0.9 * out / np.max(np.abs(out))).astype(np.float32)


def snr_db(clean: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-noise ratio of ``estimate`` against ``clean``, in dB."""
    return float(10 * np.log10(np.sum(clean**2) / np.sum((estimate - clean) ** 2)))


def recordings(out: Path, seconds: float, clips: int, seed: int) -> dict[str, np.ndarray]:
    """Clean and noisy training and test clips, each through a WAV file and back."""
    rng = np.random.default_rng(seed)
    sets: dict[str, np.ndarray] = {}
    for name, count in (("train", clips), ("test", 1)):
        clean, noisy = [], []
        for i in range(count):
            c = melody(seconds, rng)
            n = c + NOISE * rng.standard_normal(c.size).astype(np.float32)
            for kind, data in (("clean", c), ("noisy", np.clip(n, -1, 1))):
                path = out / f"{name}-{i}-{kind}.wav"
                audio.save(path, data[None], RATE)
                (clean if kind == "clean" else noisy).append(audio.load(path)[0][0])
        sets[f"{name}_clean"], sets[f"{name}_noisy"] = np.stack(clean), np.stack(noisy)
    return sets


def wiener_fir(noisy: np.ndarray, clean: np.ndarray, taps: int) -> np.ndarray:
    """The centred FIR filter of ``taps`` taps minimising ``Σ (filter * noisy - clean)²``
    over all clips: least squares on the matrix of sliding windows."""
    half = taps // 2
    rows, targets = [], []
    for x, y in zip(noisy, clean, strict=True):
        windows = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), taps)
        rows.append(windows)
        targets.append(y[half : half + len(windows)])
    h, *_ = np.linalg.lstsq(np.concatenate(rows), np.concatenate(targets), rcond=None)
    return h  # correlation taps: estimate[t] = Σ_a h[a] noisy[t - half + a]


def model(seed: int = 0) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(1, 16, 15, padding="same", seed=seed),
        nn.ReLU(),
        nn.Conv1d(16, 16, 15, padding="same", dilation=2, seed=seed + 1),
        nn.ReLU(),
        nn.Conv1d(16, 1, 15, padding="same", seed=seed + 2),
    )


def figure(path: Path, clean, noisy, linear, learned, scores: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = int(0.5 * RATE)
    t = np.arange(t0, t0 + 400) / RATE * 1000
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), height_ratios=(2, 1))
    top.plot(t, noisy[t0 : t0 + 400], color="0.75", lw=0.8, label="noisy")
    top.plot(t, clean[t0 : t0 + 400], color="k", lw=1.4, label="clean")
    top.plot(t, linear[t0 : t0 + 400], color="tab:blue", lw=1, label="Wiener FIR")
    top.plot(t, learned[t0 : t0 + 400], color="tab:red", lw=1, label="Conv1d stack")
    top.set(xlabel="time (ms)", ylabel="amplitude", title="held-out clip, 25 ms")
    top.legend(loc="upper right", ncols=4, fontsize=8)
    names = list(scores)
    bottom.barh(names, [scores[n] for n in names], color=["0.6", "tab:blue", "tab:red"])
    for i, n in enumerate(names):
        bottom.text(scores[n] + 0.2, i, f"{scores[n]:.1f} dB", va="center")
    bottom.set(
        xlabel="SNR on the held-out clip (dB)",
        xlim=(min(0, *scores.values()), 1.15 * max(scores.values())),
    )
    fig.tight_layout()
    with atomic_output(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/audio_denoise"))
    parser.add_argument("--quick", action="store_true", help="little data, 1 epoch")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    seconds, clips, epochs = (1.0, 2, 1) if args.quick else (4.0, 6, args.epochs)
    args.out.mkdir(parents=True, exist_ok=True)

    data = recordings(args.out, seconds, clips, args.seed)
    clean, noisy = data["train_clean"], data["train_noisy"]
    test_clean, test_noisy = data["test_clean"][0], data["test_noisy"][0]

    start = time.perf_counter()
    h = wiener_fir(noisy, clean, SPAN)
    linear = np.asarray(
        ck.conv(test_noisy[None, None].astype(np.float64), h[None, None], padding="same")
    )[0, 0]
    linear_seconds = time.perf_counter() - start

    rng = np.random.default_rng(args.seed + 1)
    seg = 1024
    starts = rng.integers(0, clean.shape[1] - seg, (clips, 64 if not args.quick else 8))
    x = np.stack([noisy[c, s : s + seg] for c in range(clips) for s in starts[c]])[:, None]
    y = np.stack([clean[c, s : s + seg] for c in range(clips) for s in starts[c]])[:, None]
    net = model(args.seed)
    start = time.perf_counter()
    history = nn.fit(
        net,
        nn.MSELoss(),
        nn.Adam(net.parameters(), lr=2e-3),
        x,
        y,
        epochs=epochs,
        batch_size=16,
        seed=args.seed,
    )
    train_seconds = time.perf_counter() - start
    learned = nn.predict(net, test_noisy[None, None])[0, 0]

    scores = {
        "noisy input": snr_db(test_clean, test_noisy),
        f"Wiener FIR ({SPAN} taps)": snr_db(test_clean, linear),
        "Conv1d stack": snr_db(test_clean, learned),
    }
    audio.save(args.out / "test-denoised-conv1d.wav", np.clip(learned, -1, 1)[None], RATE)
    audio.save(args.out / "test-denoised-wiener.wav", np.clip(linear, -1, 1)[None], RATE)
    figure(args.out / "denoise.png", test_clean, test_noisy, linear, learned, scores)
    print(f"training: {x.shape[0]} slices of {seg} samples from {clips} clips of {seconds:g} s")
    print(f"final training loss {history.history['loss'][-1]:.5f}")
    for name, value in scores.items():
        print(f"{name:>22}: SNR {value:5.2f} dB")
    print(
        f"Wiener filter solved in {linear_seconds:.2f} s; Conv1d stack trained in "
        f"{train_seconds:.1f} s ({epochs} epochs); figure: {args.out / 'denoise.png'}"
    )
    return {**scores, "train_seconds": train_seconds}


if __name__ == "__main__":
    main()
