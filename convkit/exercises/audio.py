"""Exercise 4: an audio conv layer, h[t, d] = u[d] + Σ_c Σ_a V[a, c, d] · x[t + a, c].

Time is the only spatial axis and the channels are ``c``: that is a ``Conv1d`` with
``weight[d, c, a] = V[a, c, d]`` and ``bias[d] = u[d]``. The exercise denoises audio with
it, scored on fresh test clips with noise the models never saw (and, for the synthetic
music, also on the validation clip the net's size was chosen on):

- the Wiener filter, the linear filter of the same span (63 taps, every input channel to
  every output channel) that minimises the squared error on the training data, solved in
  closed form from the normal equations — the expert's baseline;
- the same layer trained by Adam, which should land on the Wiener filter (a single conv
  layer is a linear filter, and its loss is convex);
- a nonlinear net of three dilated Conv1d layers with ReLUs and the same 63-sample span,
  over several seeds: what the nonlinearity buys;
- a short-time spectral Wiener filter (STFT, noise level known), the classical method
  whose gain also follows the signal.

Recordings (:mod:`convkit.exercises.audio_data`): synthesised stereo plucked strings
always; the real speech recording that ``AMFM_decompy`` ships when it is installed; the
user's own file with ``convkit exercises --audio PATH``. Then a second use of the
operation: normalised cross-correlation finds the onsets of a hidden chirp.

Why this module is long: one exercise's whole argument lives here — the layer's
derivation, the closed-form Wiener baseline, the linear and the nonlinear models, the
held-out scoring, the hidden-sound search and the report's figures and text — each part
short; the recordings themselves are in :mod:`convkit.exercises.audio_data`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import convkit as ck
from convkit import nn
from convkit.adapters import audio
from convkit.exercises import audio_data
from convkit.exercises.audio_data import RATE, Recording
from convkit.exercises.common import Context, Result, mean_sd, pyplot, save_figure
from convkit.threads import limit_blas

SPAN = 63
"""Taps of every filter compared, linear or not (the nonlinear net's receptive field)."""
SLICE = 1024
"""Samples per training example."""


def snr_db(clean: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-noise ratio of ``estimate`` against ``clean``, in dB.

    >>> snr_db(np.ones(4), np.ones(4) * 1.1)
    20.0
    """
    clean = np.asarray(clean, dtype=np.float64)
    err = np.asarray(estimate, dtype=np.float64) - clean
    return round(float(10 * np.log10(np.sum(clean**2) / np.sum(err**2))), 10)


def normal_equations(
    noisy: np.ndarray, clean: np.ndarray, span: int = SPAN
) -> tuple[np.ndarray, np.ndarray]:
    """``(Φᵀ Φ, Φᵀ Y)`` of the least-squares problem :func:`wiener` solves: ``Φ`` has one
    row per full window (every channel's ``span`` samples, then a 1 for the bias), ``Y``
    the clean sample at each window's centre, one column per channel. Float64, built a
    few examples at a time."""
    n, c, _ = noisy.shape
    half = span // 2
    k = c * span + 1
    gram = np.zeros((k, k))
    cross = np.zeros((k, c))
    for lo in range(0, n, 16):
        x = noisy[lo : lo + 16].astype(np.float64)
        y = clean[lo : lo + 16].astype(np.float64)
        windows = np.lib.stride_tricks.sliding_window_view(x, span, axis=2)  # (n, C, T', span)
        phi = np.ones((len(x), windows.shape[2], k))
        phi[..., :-1] = windows.transpose(0, 2, 1, 3).reshape(len(x), windows.shape[2], -1)
        phi = phi.reshape(-1, k)
        gram += phi.T @ phi
        target = y[:, :, half : half + windows.shape[2]].transpose(0, 2, 1).reshape(-1, c)
        cross += phi.T @ target
    return gram, cross


def wiener(
    noisy: np.ndarray,
    clean: np.ndarray,
    span: int = SPAN,
    mix: bool = True,
    equations: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The FIR filter ``V[a, c, d]``, ``u[d]`` (the layer's parameters) minimising
    ``Σ (u[d] + Σ_c Σ_a V[a, c, d] noisy[n, c, t − span//2 + a] − clean[n, d, t])²`` over
    every example ``n`` and every ``t`` whose window lies inside the example: least
    squares, solved from the normal equations (``equations``: those of
    :func:`normal_equations`, when already built). ``mix=False`` solves each channel
    alone (``V[a, c, d] = 0`` for ``c ≠ d``).

    Returns ``(V, u)`` in float64: ``V`` of shape ``(span, C, C)``.
    """
    c = noisy.shape[1]
    gram, cross = normal_equations(noisy, clean, span) if equations is None else equations
    k = c * span + 1
    v = np.zeros((span, c, c))
    u = np.zeros(c)
    for d in range(c):
        cols = np.arange(k) if mix else np.r_[np.arange(d * span, (d + 1) * span), k - 1]
        sol = np.linalg.solve(gram[np.ix_(cols, cols)], cross[cols, d])
        if mix:
            v[:, :, d] = sol[:-1].reshape(c, span).T
        else:
            v[:, d, d] = sol[:-1]
        u[d] = sol[-1]
    return v, u


def apply_filter(x: np.ndarray, v: np.ndarray, u: np.ndarray, backend: str | None) -> np.ndarray:
    """``h[t, d] = u[d] + Σ_c Σ_a V[a, c, d] x[t − span//2 + a, c]`` over a
    ``(C, T)`` recording, as the Conv1d it is: ``weight[d, c, a] = V[a, c, d]``, zero
    padding (``same``)."""
    weight = np.ascontiguousarray(v.transpose(2, 1, 0)).astype(np.float32)
    out = ck.conv(x[None], weight, u.astype(np.float32), padding="same", backend=backend)
    return np.asarray(out)[0]


def response_db(v: np.ndarray, n: int = 1024) -> np.ndarray:
    """``|H_cd(f)|`` in dB for every input ``c`` and output ``d``: ``(n//2 + 1, C, C)``."""
    return 20 * np.log10(np.abs(np.fft.rfft(v, n=n, axis=0)) + 1e-12)


def nonlinear_net(channels: int, width: int, seed: int, backend: str | None) -> nn.Sequential:
    """Three Conv1d layers with ReLUs between them, 15, 17 (dilation 2) and 17 taps:
    a receptive field of 1 + 14 + 32 + 16 = 63 samples, the Wiener filter's span."""
    return nn.Sequential(
        nn.Conv1d(channels, width, 15, padding="same", seed=seed, backend=backend),
        nn.ReLU(),
        nn.Conv1d(width, width, 17, padding="same", dilation=2, seed=seed + 1, backend=backend),
        nn.ReLU(),
        nn.Conv1d(width, channels, 17, padding="same", seed=seed + 2, backend=backend),
    )


def spectral_wiener(
    noisy: np.ndarray,
    sigma: float,
    nperseg: int = 512,
    alpha: float = 0.98,
    floor_db: float = -25.0,
    decision_directed: bool = True,
) -> np.ndarray:
    """Short-time spectral denoising of a ``(C, T)`` recording in white noise of known
    standard deviation ``sigma``: a Hann STFT (``nperseg`` samples, half overlap), a gain
    per bin and frame, then the inverse STFT.

    ``decision_directed``: the Wiener gain ``ξ/(1 + ξ)`` with the a-priori SNR ``ξ``
    estimated by Ephraim and Malah's decision-directed rule, ``ξ = α |Ŝ_prev|²/λ +
    (1 − α) max(γ − 1, 0)``, floored at ``floor_db`` (``γ = |X|²/λ``, ``λ`` the noise
    power per bin). Otherwise power spectral subtraction's ``max(1 − 1/γ, 0)``. Textbook
    settings (32 ms frames at 16 kHz, α = 0.98, −25 dB), not tuned on any clip."""
    from scipy import signal

    x = np.asarray(noisy, dtype=np.float64)
    _, _, spec = signal.stft(x, nperseg=nperseg, axis=-1)  # (C, F, frames)
    window = signal.get_window("hann", nperseg)
    lam = sigma**2 * np.sum(window**2) / np.sum(window) ** 2  # E|N|² per bin
    gamma = np.abs(spec) ** 2 / lam
    if decision_directed:
        out = np.empty_like(spec)
        prev = np.zeros(spec.shape[:2])
        floor = 10 ** (floor_db / 10)
        for k in range(spec.shape[2]):
            xi = alpha * prev / lam + (1 - alpha) * np.maximum(gamma[..., k] - 1, 0)
            xi = np.maximum(xi, floor)
            out[..., k] = xi / (1 + xi) * spec[..., k]
            prev = np.abs(out[..., k]) ** 2
    else:
        out = np.maximum(1 - 1 / np.maximum(gamma, 1e-12), 0) * spec
    _, y = signal.istft(out, nperseg=nperseg, time_axis=-1, freq_axis=-2)
    return np.asarray(y[..., : x.shape[-1]], dtype=np.float32)


@dataclass
class Setup:
    """How much training, by mode."""

    slices: int
    seeds: int
    linear_epochs: tuple[int, int]
    net_epochs: tuple[int, int]
    width: int
    synth_seconds: float
    synth_clips: int
    test_draws: int
    """Fresh test clips (synthetic) or noise draws on the held-out part (recordings)."""


FULL = Setup(
    slices=192,
    seeds=3,
    linear_epochs=(4, 4),
    net_epochs=(10, 5),
    width=12,
    synth_seconds=4.0,
    synth_clips=3,
    test_draws=4,
)
QUICK = Setup(
    slices=48,
    seeds=2,
    linear_epochs=(12, 8),
    net_epochs=(3, 2),
    width=8,
    synth_seconds=1.5,
    synth_clips=2,
    test_draws=2,
)


@dataclass
class Case:
    """One recording denoised by every method.

    ``snr[name]``: test SNR per seed (mean over the test draws); ``snr_draws[name]``:
    test SNR per test draw (mean over seeds); ``val_snr[name]``: validation SNR per seed
    (empty without a validation clip)."""

    rec: Recording
    sigma: float
    snr: dict[str, list[float]] = field(default_factory=dict)
    snr_draws: dict[str, list[float]] = field(default_factory=dict)
    val_snr: dict[str, list[float]] = field(default_factory=dict)
    train_mse: dict[str, list[float]] = field(default_factory=dict)
    v_wiener: np.ndarray | None = None
    v_layer: np.ndarray | None = None
    test_clean: np.ndarray | None = None
    test_noisy: np.ndarray | None = None
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    per_draw: dict[str, list[list[float]]] = field(default_factory=dict)


def slices(
    rec: Recording, setup: Setup, sigma: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random ``SLICE``-sample training examples from the training audio, each with its
    own noise draw: ``(noisy, clean)``, both ``(slices, C, SLICE)`` float32. At most
    ``setup.slices``, and about six per ``SLICE`` samples of training audio."""
    clips, _, length = rec.train.shape
    count = min(setup.slices, max(16, 6 * clips * length // SLICE))
    which = rng.integers(0, clips, count)
    starts = rng.integers(0, length - SLICE + 1, count)
    clean = np.stack([rec.train[c, :, s : s + SLICE] for c, s in zip(which, starts, strict=True)])
    return audio_data.noisy(clean, sigma, rng), clean


def train(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    epochs: tuple[int, int],
    rates: tuple[float, float],
    seed: int,
    ctx: Context,
) -> None:
    """Adam on the squared error, batches of 8: ``epochs[0]`` epochs at ``rates[0]``, then
    ``epochs[1]`` at ``rates[1]`` (a step decay; the optimiser's state starts anew)."""
    for stage, (count, lr) in enumerate(zip(epochs, rates, strict=True)):
        nn.fit(
            model,
            nn.MSELoss(),
            nn.Adam(model.parameters(), lr=lr),
            x,
            y,
            epochs=count,
            batch_size=8,
            seed=seed * 2 + stage,
            verbose=ctx.verbose,
        )


def denoise(rec: Recording, ctx: Context, setup: Setup, salt: int) -> Case:
    """Fit and score every method on ``rec``: on the validation clip (when there is one)
    and on ``setup.test_draws`` test draws, each a test clip (cycling through
    ``rec.test``) with its own fresh noise."""
    rng = ctx.rng(salt)
    sigma = float(np.sqrt(np.mean(rec.train.astype(np.float64) ** 2)))  # 0 dB input SNR
    case = Case(rec, sigma)
    x, y = slices(rec, setup, sigma, rng)
    val_clean = None if rec.val is None else rec.val[0]
    val_noisy = None if val_clean is None else audio_data.noisy(val_clean, sigma, rng)
    tests_clean = [rec.test[i % len(rec.test)] for i in range(setup.test_draws)]
    tests_noisy = [audio_data.noisy(c, sigma, rng) for c in tests_clean]
    case.test_clean, case.test_noisy = tests_clean[0], tests_noisy[0]
    channels = x.shape[1]
    backend = ctx.backend

    def score(name: str, method: Any, train_out: np.ndarray | None = None) -> None:
        outs = [method(noisy) for noisy in tests_noisy]
        draws = [snr_db(c, o) for c, o in zip(tests_clean, outs, strict=True)]
        case.per_draw.setdefault(name, []).append(draws)
        case.snr.setdefault(name, []).append(float(np.mean(draws)))
        if val_clean is not None and val_noisy is not None:
            case.val_snr.setdefault(name, []).append(snr_db(val_clean, method(val_noisy)))
        if train_out is not None:
            mse = float(np.mean((train_out.astype(np.float64) - y) ** 2))
            case.train_mse.setdefault(name, []).append(mse)
        case.outputs.setdefault(name, outs[0])

    score("noisy input", lambda n: n, x)
    equations = normal_equations(x, y, SPAN)
    v, u = wiener(x, y, SPAN, equations=equations)
    case.v_wiener = v
    train_out = np.stack([apply_filter(s, v, u, backend) for s in x])
    score(f"Wiener FIR ({SPAN} taps)", lambda n: apply_filter(n, v, u, backend), train_out)
    if channels > 1:
        vs, us = wiener(x, y, SPAN, mix=False, equations=equations)
        score("Wiener, channels apart", lambda n: apply_filter(n, vs, us, backend))
    score(
        "spectral subtraction (STFT, σ known)",
        lambda n: spectral_wiener(n, sigma, decision_directed=False),
    )
    score("spectral Wiener (STFT, decision-directed, σ known)", lambda n: spectral_wiener(n, sigma))
    for seed in range(setup.seeds):
        layer = nn.Conv1d(channels, channels, SPAN, padding="same", seed=seed, backend=backend)
        train(layer, x, y, setup.linear_epochs, (1e-2, 1e-3), seed, ctx)
        if case.v_layer is None:
            case.v_layer = np.asarray(layer.weight.value, dtype=np.float64).transpose(2, 1, 0)
        score(
            f"trained Conv1d({channels}→{channels}, {SPAN} taps)",
            lambda n, layer=layer: audio.run_conv1d(layer, n),
            nn.predict(layer, x),
        )
    for seed in range(setup.seeds):
        net = nonlinear_net(channels, setup.width, 10 * seed + 100, backend)
        train(net, x, y, setup.net_epochs, (6e-3, 2e-3), seed, ctx)
        score(
            f"nonlinear net (3 Conv1d + ReLU, {SPAN}-sample span)",
            lambda n, net=net: nn.predict(net, n[None])[0],
            nn.predict(net, x),
        )
    for name, runs in case.per_draw.items():
        case.snr_draws[name] = np.mean(np.asarray(runs), axis=0).tolist()
    return case


def find_sound(ctx: Context) -> tuple[dict[str, Any], np.ndarray]:
    """Hide a short chirp three times in a long noisy recording; find it by normalised
    cross-correlation."""
    rng = ctx.rng(42)
    seconds = 2.0 if ctx.quick else 6.0
    background = audio_data.melody(seconds, rng).sum(axis=0)
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
    ncc = np.asarray(num / np.sqrt(local_var * np.sum(template**2)))
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


def recordings(ctx: Context, setup: Setup) -> list[Recording]:
    """The synthetic stereo music, the packaged speech recording (when installed) and
    the user's file (when given)."""
    # the validation clip comes from the training clips' generator (as it always has);
    # the test clips from a generator of their own, used for no choice
    recs = [
        audio_data.synthetic(
            setup.synth_seconds, setup.synth_clips, ctx.rng(40), setup.test_draws, ctx.rng(140)
        )
    ]
    speech = audio_data.speech_sample()
    if speech is not None:
        recs.append(audio_data.from_file(speech, "speech", 20.0))
    if ctx.audio is not None:
        recs.append(audio_data.from_file(ctx.audio, "file", 20.0))
    return recs


def _names(case: Case) -> tuple[str, str, str]:
    keys = list(case.snr)
    wiener_key = next(k for k in keys if k.startswith("Wiener FIR"))
    layer_key = next(k for k in keys if k.startswith("trained Conv1d"))
    net_key = next(k for k in keys if k.startswith("nonlinear"))
    return wiener_key, layer_key, net_key


def _stft_key(case: Case) -> str:
    return next(k for k in case.snr if k.startswith("spectral Wiener"))


def _spectrogram(ax: Any, x: np.ndarray, rate: int, title: str) -> Any:
    from scipy import signal

    f, _, s = signal.spectrogram(x.astype(np.float64), fs=rate, nperseg=256, noverlap=192)
    image = ax.imshow(
        10 * np.log10(s + 1e-10),
        origin="lower",
        aspect="auto",
        extent=(0, len(x) / rate, 0, f[-1] / 1000),
        vmin=-100,
        vmax=-30,
        interpolation="nearest",
    )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.tick_params(labelsize=7)
    return image


def figure_denoise(cases: list[Case], ctx: Context) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(
        len(cases),
        6,
        figsize=(20, 3.1 * len(cases)),
        squeeze=False,
        width_ratios=(1.6, 1, 1, 1, 1, 1.2),
    )
    for row, case in zip(axes, cases, strict=True):
        assert case.test_clean is not None and case.test_noisy is not None
        wiener_key, _, net_key = _names(case)
        stft_key = _stft_key(case)
        rate = case.rec.rate
        clean, noisy = case.test_clean[0], case.test_noisy[0]
        lin, net = case.outputs[wiener_key][0], case.outputs[net_key][0]
        stft = case.outputs[stft_key][0]
        energy = np.convolve(clean**2, np.ones(400), "valid")
        t0 = int(np.argmax(energy))
        span = slice(t0, t0 + 400)
        ms = np.arange(400) / rate * 1000
        ax = row[0]
        ax.plot(ms, noisy[span], color="0.75", lw=0.7, label="noisy")
        ax.plot(ms, clean[span], color="k", lw=1.5, label="clean")
        ax.plot(ms, lin[span], color="tab:blue", lw=1, label="Wiener FIR")
        ax.plot(ms, stft[span], color="tab:green", lw=1, label="spectral Wiener")
        ax.plot(ms, net[span], color="tab:red", lw=1, label="nonlinear net")
        ax.set_title(
            f"{case.rec.kind}: first test draw, channel 0 (spectrograms: whole clip; "
            "dB: SNR over all channels)",
            fontsize=8,
        )
        ax.set_xlabel("time (ms)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, ncols=2, loc="lower left")
        names = ("noisy input", wiener_key, stft_key, net_key)
        scores = (None, *(case.per_draw[k][0][0] for k in names))
        image = None
        for ax, sig, name, score in zip(
            row[1:],
            (clean, noisy, lin, stft, net),
            ("clean", "noisy", "Wiener FIR", "spectral Wiener", "nonlinear net, seed 0"),
            scores,
            strict=True,
        ):
            snr = "" if score is None else f" ({score:.1f} dB)"
            image = _spectrogram(ax, sig, rate, f"{name}{snr}")
        row[1].set_ylabel("kHz", fontsize=8)
        bar = fig.colorbar(image, ax=row[-1])
        bar.set_label("power spectral density (dB)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    fig.tight_layout()
    return save_figure(fig, ctx, "audio-denoise")


def figure_filters(cases: list[Case], ctx: Context) -> str:
    plt = pyplot()
    case = cases[0]
    assert case.v_wiener is not None and case.v_layer is not None
    channels = case.v_wiener.shape[1]
    fig, axes = plt.subplots(1, 2, figsize=(14, 4), width_ratios=(1.4, 1))
    ax = axes[0]
    freqs = np.fft.rfftfreq(1024, 1 / case.rec.rate) / 1000
    hw, hl = response_db(case.v_wiener), response_db(case.v_layer)
    colours = ["tab:blue", "tab:orange"]
    for c in range(channels):
        what = "left → left" if c == 0 else "right → left"
        ax.plot(freqs, hw[:, c, 0], color=colours[c], lw=2.2, alpha=0.5, label=f"Wiener, {what}")
        ax.plot(freqs, hl[:, c, 0], color=colours[c], lw=0.9, ls="--", label=f"trained, {what}")
    rel = np.linalg.norm(case.v_layer - case.v_wiener) / np.linalg.norm(case.v_wiener)
    ax.set(
        xlabel="frequency (kHz)",
        ylabel="|H(f)| (dB)",
        ylim=(max(-60.0, float(np.min(hw[1:, :, 0])) - 10), 5),
        title=f"{case.rec.kind}: trained Conv1d layer (seed 0) vs closed-form Wiener filter "
        f"(taps differ by {100 * rel:.1f}%)",
    )
    ax.legend(fontsize=8)
    ax = axes[1]
    labels, rows = [], 0
    for k, case in enumerate(cases):
        for name, values in case.snr_draws.items():
            short = name.split(" (")[0].replace("trained ", "")
            ax.barh(rows, np.mean(values), color=f"C{k}", alpha=0.6)
            ax.plot(values, [rows] * len(values), "k.", ms=4)
            right = max(float(np.mean(values)), *values, 0.0)
            ax.text(right + 0.15, rows, f"{np.mean(values):.2f}", va="center", fontsize=7)
            labels.append(f"{case.rec.kind}: {short}")
            rows += 1
    ax.set_yticks(range(rows), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set(
        xlabel="test SNR (dB; bars: mean, dots: test draws, each averaged over seeds)",
        title="denoising, on test clips and noise never used for a choice",
    )
    fig.tight_layout()
    return save_figure(fig, ctx, "audio-filters")


def figure_onsets(ncc: np.ndarray, hunt: dict[str, Any], ctx: Context) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 2.6))
    ax.plot(np.arange(len(ncc)) / RATE, ncc, lw=0.6)
    for s in hunt["true_onsets"]:
        ax.axvline(s / RATE, color="r", ls="--", lw=0.8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("normalised correlation")
    ax.set_title("finding a 40 ms chirp in music and noise (red: true onsets)")
    return save_figure(fig, ctx, "audio-onsets")


def _table(cases: list[Case]) -> str:
    lines = [
        "| recording | method | test SNR (dB), over seeds | test SNR (dB), over test draws "
        "| validation SNR (dB) | training MSE |",
        "|---|---|---|---|---|---|",
    ]

    def cell(values: list[float]) -> str:
        return mean_sd(values, 2) if len(values) > 1 else f"{values[0]:.2f}"

    for case in cases:
        for name, values in case.snr.items():
            mse = case.train_mse.get(name)
            val = case.val_snr.get(name)
            lines.append(
                f"| {case.rec.kind} | {name} | {cell(values)} | {cell(case.snr_draws[name])} "
                f"| {'' if not val else cell(val)} | "
                f"{'' if mse is None else f'{np.mean(mse):.2e}'} |"
            )
    return "\n".join(lines)


def run(ctx: Context) -> Result:
    """Denoise held-out audio with the Wiener filter, the same layer trained, and a
    nonlinear net; find hidden sounds by correlation."""
    setup = QUICK if ctx.quick else FULL
    # One BLAS thread: these matrices are small, and extra threads cost more than they
    # give (measured on 2 cores: the quick run's CPU time halves).
    with limit_blas(1):
        cases = [denoise(rec, ctx, setup, 41 + i) for i, rec in enumerate(recordings(ctx, setup))]
    hunt, ncc = find_sound(ctx)
    figures = [
        figure_denoise(cases, ctx),
        figure_filters(cases, ctx),
        figure_onsets(ncc, hunt, ctx),
    ]
    first = cases[0]
    assert first.test_noisy is not None and first.v_wiener is not None
    assert first.v_layer is not None
    ctx.out.mkdir(parents=True, exist_ok=True)
    for name, sig in (
        ("noisy", first.test_noisy),
        ("wiener", first.outputs[_names(first)[0]]),
        ("net", first.outputs[_names(first)[2]]),
    ):
        audio.save(ctx.out / f"audio-{name}.wav", np.clip(sig, -1, 1), first.rec.rate)

    numbers: dict[str, Any] = {
        "span_taps": SPAN,
        "slice_samples": SLICE,
        "test_draws": setup.test_draws,
        "recordings": [],
    }
    for case in cases:
        wiener_key, layer_key, net_key = _names(case)
        stft_key = _stft_key(case)
        net_draws = np.asarray(case.snr_draws[net_key])
        entry: dict[str, Any] = {
            "kind": case.rec.kind,
            "source": case.rec.source,
            "channels": int(case.rec.train.shape[1]),
            "train_samples": int(case.rec.train.shape[0] * case.rec.train.shape[2]),
            "test_clips": int(case.rec.test.shape[0]),
            "test_samples_per_clip": int(case.rec.test.shape[2]),
            "noise_sigma": case.sigma,
            "snr_db_test_per_seed": case.snr,
            "snr_db_test_per_draw": case.snr_draws,
            "snr_db_test_per_seed_and_draw": case.per_draw,
            "snr_db_validation_per_seed": case.val_snr,
            "train_mse": case.train_mse,
            "net_minus_wiener_db_per_draw": (
                net_draws - np.asarray(case.snr_draws[wiener_key])
            ).tolist(),
            "net_minus_wiener_db_per_seed": (
                np.asarray(case.snr[net_key]) - case.snr[wiener_key][0]
            ).tolist(),
            "net_minus_spectral_wiener_db_per_draw": (
                net_draws - np.asarray(case.snr_draws[stft_key])
            ).tolist(),
        }
        if case.val_snr:
            entry["net_minus_wiener_db_validation_per_seed"] = (
                np.asarray(case.val_snr[net_key]) - case.val_snr[wiener_key][0]
            ).tolist()
        if case.v_wiener is not None and case.v_layer is not None:
            hw, hl = response_db(case.v_wiener), response_db(case.v_layer)
            passband = hw > np.max(hw) - 30
            entry["layer_vs_wiener_taps_rel_diff"] = float(
                np.linalg.norm(case.v_layer - case.v_wiener) / np.linalg.norm(case.v_wiener)
            )
            entry["layer_vs_wiener_response_max_db_diff_within_30db"] = float(
                np.max(np.abs(hw - hl)[passband])
            )
        numbers["recordings"].append(entry)
    numbers["onsets"] = hunt
    numbers["sample_rate_onsets"] = RATE

    music = numbers["recordings"][0]
    wiener_key, layer_key, net_key = _names(first)
    stft_key = _stft_key(first)
    draws = setup.test_draws

    def over_draws(c: Case, key: str) -> str:
        return mean_sd(c.snr_draws[key], 2)

    snr_in = float(np.mean(first.snr["noisy input"]))
    snr_l = first.snr[layer_key]
    gain = music["net_minus_wiener_db_per_draw"]
    gain_stft = music["net_minus_spectral_wiener_db_per_draw"]
    val_gain = music.get("net_minus_wiener_db_validation_per_seed", [])
    errors: list[int] = hunt["onset_errors_samples"]
    found_ok = sum(e <= 2 for e in errors)
    taps = f"{100 * music['layer_vs_wiener_taps_rel_diff']:.1f}%"
    others = "".join(
        f"; {c.rec.kind}: Wiener FIR {over_draws(c, _names(c)[0])}, spectral Wiener "
        f"{over_draws(c, _stft_key(c))}, net {over_draws(c, _names(c)[2])} dB"
        for c in cases[1:]
    )
    verdict = (
        f"test music ({snr_in:.1f} dB in, {draws} fresh clips): trained Conv1d(2→2, {SPAN} "
        f"taps) {np.mean(snr_l):.2f} dB ≈ closed-form Wiener FIR "
        f"{over_draws(first, wiener_key)} dB (taps within {taps}); 3-layer ReLU net "
        f"{over_draws(first, net_key)} dB; STFT spectral Wiener "
        f"{over_draws(first, stft_key)} dB{others}; correlation finds {found_ok}/3 hidden "
        "sounds within 2 samples"
    )
    details = _details(cases, hunt, setup)
    if ctx.quick:
        details += (
            "\n\n*Quick mode*: little data and a few epochs; the nonlinear net is "
            "undertrained here, so its score says nothing about what depth buys."
        )
    speech = ""
    for entry, c in zip(numbers["recordings"][1:], cases[1:], strict=True):
        if c.rec.kind == "speech":
            speech += (
                " On the real speech recording — scored on the last "
                f"{c.rec.test.shape[2] / c.rec.rate:.2f} s of the same "
                f"{(c.rec.train.shape[2] + c.rec.test.shape[2]) / c.rec.rate:.1f} s "
                "utterance whose start it trained on, a weak test of generalisation — the "
                f"net's gain over the Wiener FIR is "
                f"{mean_sd(entry['net_minus_wiener_db_per_draw'], 2)} dB and over the "
                "spectral Wiener filter "
                f"{mean_sd(entry['net_minus_spectral_wiener_db_per_draw'], 2)} dB."
            )
    beats = np.mean(gain_stft) > 0
    answer = (
        "The layer is `h[t, d] = u[d] + Σ_c Σ_a V[a, c, d] · x[t + a, c]`: a Conv1d with "
        "`weight[d, c, a] = V[a, c, d]`, time the only spatial axis, the channels (left, "
        "right) mixed at every offset. Trained to denoise, one such layer is a linear "
        f"filter and converges to the Wiener FIR filter of its span: {np.mean(snr_l):.2f} dB "
        f"vs {np.mean(first.snr[wiener_key]):.2f} dB on {draws} fresh test clips of music "
        f"(input {snr_in:.1f} dB), taps within {taps}. Three dilated Conv1d layers with "
        f"ReLUs and the same span gain {mean_sd(gain, 2)} dB over that fixed filter on the "
        "test clips (s.d. over clips and noise draws; "
        f"{mean_sd(val_gain, 2)} dB over seeds on the validation clip their size was picked "
        "on). A fixed filter is not the strongest classical baseline, though: a short-time "
        "spectral Wiener filter (STFT, decision-directed gain, noise level known) also "
        "adapts its gain to the signal, and the net "
        + ("beats it by " if beats else "loses to it by ")
        + f"{mean_sd(np.abs(gain_stft) if not beats else gain_stft, 2)} dB on the same "
        f"test clips.{speech}"
    )
    limits = (
        "The music is synthesised (Karplus–Strong strings, each note panned), so the clean "
        "signal is known. The net's width and schedule were picked from about ten tries "
        "scored on one synthetic clip, now the validation clip; the test clips (new "
        "melodies, new noise) were generated afterwards and used for no choice. The only "
        "real recording is 0.9 s of one utterance (when AMFM_decompy is installed), split "
        "in time: its test part is the last 0.27 s of the same utterance and speaker, "
        "with several noise draws, so it shows little about generalisation. The noise is "
        f"white and Gaussian at 0 dB with σ known to the spectral methods; the Wiener FIR "
        f"filter is optimal only among linear {SPAN}-tap filters. The spectral methods use "
        "textbook settings (32 ms Hann frames, half overlap, α = 0.98, −25 dB floor), not "
        "tuned on any clip. A wider or longer-trained net may gain more (it is sized for "
        "a budget of seconds). SNR is the only score, nothing perceptual. The ± over seeds "
        "vary the net's initialisation and batch order; the ± over test draws vary the "
        "clip and the noise, with the training data fixed."
    )
    return Result(
        name="audio",
        title="An audio conv layer",
        verdict=verdict,
        key=f"net − Wiener FIR {np.mean(gain):+.2f} dB, − spectral Wiener "
        f"{np.mean(gain_stft):+.2f} dB",
        numbers=numbers,
        figures=figures,
        details=details,
        question=(
            "Derive the convolutional layer for audio (time the only spatial axis, channels "
            "such as stereo) and show what it does on sound."
        ),
        answer=answer,
        limits=limits,
    )


def _details(cases: list[Case], hunt: dict[str, Any], setup: Setup) -> str:
    lines = [
        "From the chapter's `h[i, j] = u + Σ_a Σ_b V[a, b] · x[i + a, j + b]` drop one "
        "spatial axis and keep the channels: `h[t, d] = u[d] + Σ_c Σ_a V[a, c, d] · "
        "x[t + a, c]`. Translation invariance in time (`V` does not depend on `t`), "
        f"locality (`a` over a window, here {SPAN} taps centred on `t`), every input "
        "channel `c` feeding every output `d`. It is `Conv1d(C, D, kernel_size)` with "
        "`weight[d, c, a] = V[a, c, d]`, `bias = u`; the exercise applies the Wiener filter "
        "through exactly that transposition and `convkit.conv`.",
        "",
        f"Every model sees the same {setup.slices} training slices of {SLICE} samples "
        "(each with its own noise draw). Every model is scored on test draws — "
        f"{setup.test_draws} fresh synthetic clips (new melodies, generated from a seed of "
        "their own after every choice was made), or for a recording its held-out part, "
        "each with new noise — and, for the music, on the validation clip the net's size "
        "and schedule were picked on. The Wiener FIR filter minimises the squared error over every full window of those "
        "slices (normal equations, float64); the trained models use zero padding at the "
        "slice borders. Linear layer: Adam (batches of 8), "
        f"{setup.linear_epochs[0]} epochs at learning rate 0.01, then "
        f"{setup.linear_epochs[1]} at 0.001; nonlinear net: "
        f"Conv1d(C→{setup.width}, 15) · ReLU · Conv1d({setup.width}→{setup.width}, 17, "
        f"dilation 2) · ReLU · Conv1d({setup.width}→C, 17), Adam, {setup.net_epochs[0]} "
        f"epochs at 0.006, then {setup.net_epochs[1]} at 0.002; {setup.seeds} seeds each. "
        "The stereo Wiener filter is also solved with the channels apart (no `c ≠ d` "
        "taps), to show what mixing the channels buys. The second classical baseline is "
        "short-time spectral: a Hann STFT of 512 samples with half overlap, a gain per bin "
        "and frame from the known noise power λ = σ² Σw²/(Σw)², and the inverse STFT — "
        "power spectral subtraction `max(1 − λ/|X|², 0)`, and the Wiener gain `ξ/(1 + ξ)` "
        "with Ephraim and Malah's decision-directed a-priori SNR (α = 0.98, floor −25 dB).",
        "",
        _table(cases),
        "",
    ]
    for case in cases:
        lines.append(f"- **{case.rec.kind}**: {case.rec.source}; noise σ = {case.sigma:.4f}.")
    lines += [
        "",
        "Correlation as detection: a 40 ms chirp hidden three times in plucked-string music "
        f"with noise; true onsets {hunt['true_onsets']}, found {hunt['found_onsets']} "
        f"(errors {hunt['onset_errors_samples']} samples, peak normalised correlation "
        f"{hunt['peak_ncc']:.2f}).",
    ]
    return "\n".join(lines)
