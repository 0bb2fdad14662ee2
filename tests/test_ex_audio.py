"""Exercise 4 (an audio conv layer): the layer formula, the Wiener baseline, held-out
scoring and the quick run, checked against loops, least squares and theory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import special

from convkit import cli
from convkit.exercises import Context, Result, audio, audio_data
from convkit.exercises.audio_data import Recording

soundfile = pytest.importorskip(
    "soundfile", reason="the audio exercise reads and writes sound files with soundfile"
)


def layer_by_loops(x: np.ndarray, v: np.ndarray, u: np.ndarray) -> np.ndarray:
    """h[t, d] = u[d] + Σ_c Σ_a V[a, c, d] x[t − half + a, c], zero outside the signal."""
    span, channels, outs = v.shape
    half = span // 2
    h = np.zeros((outs, x.shape[1]))
    for d in range(outs):
        for t in range(x.shape[1]):
            acc = u[d]
            for c in range(channels):
                for a in range(span):
                    i = t - half + a
                    if 0 <= i < x.shape[1]:
                        acc += v[a, c, d] * x[c, i]
            h[d, t] = acc
    return h


@pytest.mark.parametrize("backend", ["numpy", "scipy"])
def test_the_filter_is_the_layer_formula(backend: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 50)).astype(np.float32)
    v = rng.standard_normal((7, 2, 3))
    u = rng.standard_normal(3)
    got = audio.apply_filter(x, v, u, backend)
    np.testing.assert_allclose(got, layer_by_loops(x.astype(np.float64), v, u), atol=1e-4)


def test_wiener_is_the_least_squares_filter() -> None:
    rng = np.random.default_rng(1)
    noisy = rng.standard_normal((2, 2, 120))
    clean = rng.standard_normal((2, 2, 120))
    span, half = 5, 2
    rows, targets = [], []
    for n in range(2):
        for t in range(half, 120 - half):
            rows.append([noisy[n, c, t - half + a] for c in range(2) for a in range(span)] + [1.0])
            targets.append(clean[n, :, t])
    phi, target = np.array(rows), np.array(targets)
    sol, *_ = np.linalg.lstsq(phi, target, rcond=None)
    v, u = audio.wiener(noisy, clean, span)
    np.testing.assert_allclose(v, sol[:-1].reshape(2, span, 2).transpose(1, 0, 2), atol=1e-10)
    np.testing.assert_allclose(u, sol[-1], atol=1e-10)
    # channels apart: output d regressed on input channel d alone
    v1, _ = audio.wiener(noisy, clean, span, mix=False)
    for d in range(2):
        cols = [*range(d * span, (d + 1) * span), 2 * span]
        own, *_ = np.linalg.lstsq(phi[:, cols], target[:, d], rcond=None)
        np.testing.assert_allclose(v1[:, d, d], own[:-1], atol=1e-10)
        assert np.all(v1[:, 1 - d, d] == 0)


def test_spectral_wiener() -> None:
    rng = np.random.default_rng(11)
    t = np.arange(16_000) / 16_000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t))[None]
    # no noise: every gain is 1 and the STFT round trip gives the input back
    np.testing.assert_allclose(audio.spectral_wiener(tone, 1e-9), tone, atol=1e-5)
    noise = 0.3 * rng.standard_normal(tone.shape)
    # power spectral subtraction on noise alone: a bin keeps the power (γ − 1)²/γ · λ when
    # γ = |X|²/λ > 1, γ exponential with mean 1, so E = ∫₁^∞ (γ − 1)²/γ e^(−γ) dγ = E₁(1)
    # of the noise is left (overlap-add mixes frames, so only roughly)
    rest = audio.spectral_wiener(noise, 0.3, decision_directed=False)
    assert np.mean(rest**2) / np.mean(noise**2) == pytest.approx(special.exp1(1.0), rel=0.2)
    # the decision-directed Wiener gain leaves far less (no "musical noise" floor)
    rest_dd = audio.spectral_wiener(noise, 0.3)
    assert np.mean(rest_dd**2) < 0.01 * np.mean(noise**2)
    for dd, gain in ((True, 12), (False, 5)):
        # a tone in white noise: a spectral gain keeps its bins, drops the rest
        out = audio.spectral_wiener(tone + noise, 0.3, decision_directed=dd)
        assert out.shape == tone.shape and out.dtype == np.float32
        assert audio.snr_db(tone, out) > audio.snr_db(tone, tone + noise) + gain
        # told half the true noise level, far less of the noise goes
        left = audio.spectral_wiener(noise, 0.15, decision_directed=dd)
        assert np.mean(left**2) > 2 * np.mean((rest_dd if dd else rest) ** 2)


def test_snr_db() -> None:
    clean = np.array([3.0, -4.0])
    assert audio.snr_db(clean, clean + np.array([0.3, 0.4])) == pytest.approx(20.0)


TINY = audio.Setup(
    slices=32,
    seeds=2,
    linear_epochs=(4, 4),
    net_epochs=(2, 1),
    width=4,
    synth_seconds=1,
    synth_clips=1,
    test_draws=2,
)


@pytest.mark.parametrize("backend", ["numpy", "scipy"])
def test_gaussian_signal_nothing_beats_the_wiener_gain(backend: str, tmp_path: Path) -> None:
    """White Gaussian signal in white Gaussian noise of the same power: the best estimator
    of any kind is the gain 1/2 (3.01 dB), so neither the trained layer nor the net may
    beat the Wiener filter beyond noise in the scores."""
    rng = np.random.default_rng(3)
    rec = Recording(
        "white",
        "white",
        16_000,
        rng.standard_normal((2, 1, 6000)).astype(np.float32) * 0.2,
        rng.standard_normal((1, 1, 20_000)).astype(np.float32) * 0.2,
    )
    ctx = Context(backend=backend, quick=True, out=tmp_path, progress=False)
    case = audio.denoise(rec, ctx, TINY, 7)
    wiener_key, layer_key, net_key = audio._names(case)
    assert case.sigma == pytest.approx(0.2, rel=0.03)
    assert case.snr["noisy input"][0] == pytest.approx(0.0, abs=0.2)
    assert case.snr[wiener_key][0] == pytest.approx(10 * np.log10(2), abs=0.15)
    assert case.v_wiener is not None
    centre = case.v_wiener[audio.SPAN // 2, 0, 0]
    assert centre == pytest.approx(0.5, abs=0.05)
    others = np.delete(case.v_wiener[:, 0, 0], audio.SPAN // 2)
    assert np.max(np.abs(others)) < 0.06
    for key in (layer_key, net_key, audio._stft_key(case)):
        assert max(case.snr[key]) < case.snr[wiener_key][0] + 0.1
    # the test draws are the recording's held-out part, each with new noise of the
    # stated power; no validation clip here
    assert case.test_clean is not None and case.test_noisy is not None
    np.testing.assert_array_equal(case.test_clean, rec.test[0])
    assert np.std(case.test_noisy - case.test_clean) == pytest.approx(case.sigma, rel=0.03)
    assert case.val_snr == {}
    draws = case.per_draw["noisy input"][0]
    assert len(draws) == 2 and draws[0] != draws[1]  # two different noise draws
    for key, runs in case.per_draw.items():
        assert case.snr[key] == pytest.approx([np.mean(r) for r in runs])
        assert case.snr_draws[key] == pytest.approx(np.mean(runs, axis=0))


def test_synthetic_music_is_held_out_and_stereo() -> None:
    rec = audio_data.synthetic(1.0, 2, np.random.default_rng(5), 2, np.random.default_rng(9))
    assert rec.train.shape == (2, 2, 16_000) and rec.test.shape == (2, 2, 16_000)
    assert rec.val is not None and rec.val.shape == (1, 2, 16_000)
    # the validation clip is what the old single-generator version drew after training
    old = np.random.default_rng(5)
    for _ in range(2):
        audio_data.melody(1.0, old)
    np.testing.assert_array_equal(rec.val[0], audio_data.melody(1.0, old))
    clips = [*rec.train, rec.val[0], *rec.test]
    for i in range(len(clips)):
        for j in range(i):
            r = np.corrcoef(clips[i][0], clips[j][0])[0, 1]
            assert abs(r) < 0.3  # all different melodies
    left, right = rec.test[0]
    assert 0.2 < np.corrcoef(left, right)[0, 1] < 0.99  # panned: correlated, not equal


def test_users_file_is_split_in_time(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    data = 0.5 * audio_data.melody(1.0, rng)
    path = tmp_path / "mine.wav"
    soundfile.write(path, data.T, 16_000, subtype="PCM_16")
    ctx = Context(quick=True, out=tmp_path, audio=path, progress=False)
    rec = audio.recordings(ctx, audio.QUICK)[-1]
    assert rec.kind == "file" and rec.rate == 16_000
    assert rec.train.shape == (1, 2, 11_200) and rec.test.shape == (1, 2, 4_800)
    back = np.concatenate([rec.train[0], rec.test[0]], axis=1)
    expected = data / np.max(np.abs(data)) * 0.9
    np.testing.assert_allclose(back, expected, atol=2e-4)


def test_cli_refuses_a_missing_audio_file(tmp_path: Path) -> None:
    args = ["exercises", "--only", "audio", "--out", str(tmp_path), "--audio", "nope.wav"]
    assert cli.main(args) == cli.EXIT_USAGE


def test_speech_recording_when_installed() -> None:
    pytest.importorskip("amfm_decompy")
    path = audio_data.speech_sample()
    assert path is not None
    rec = audio_data.from_file(path, "speech", 20.0)
    assert rec.rate == 16_000 and rec.train.shape[1] == 1
    assert 0.8 < (rec.train.shape[2] + rec.test.shape[2]) / rec.rate < 1.0


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    out = tmp_path_factory.mktemp("audio")
    return audio.run(Context(quick=True, out=out, progress=False)), out


def test_quick_run_measures_what_it_claims(quick: tuple[Result, Path]) -> None:
    result, out = quick
    music = result.numbers["recordings"][0]
    assert music["kind"] == "synthetic" and music["channels"] == 2
    draws = audio.QUICK.test_draws
    assert music["test_clips"] == draws
    snr = music["snr_db_test_per_seed"]
    per_draw = music["snr_db_test_per_draw"]
    val = music["snr_db_validation_per_seed"]
    wiener = snr["Wiener FIR (63 taps)"][0]
    assert all(len(v) == draws for v in per_draw.values())
    assert abs(np.mean(per_draw["noisy input"])) < 3  # σ = the training audio's RMS
    assert wiener > snr["noisy input"][0] + 3
    # the stereo filter uses the other channel: better than each channel alone (on the
    # validation clip; the quick test clips are short and noisy measures)
    assert val["Wiener FIR (63 taps)"][0] > val["Wiener, channels apart"][0]
    # the trained linear layer lands on the Wiener filter
    layer = snr["trained Conv1d(2→2, 63 taps)"]
    assert len(layer) == audio.QUICK.seeds
    assert np.mean(layer) == pytest.approx(wiener, abs=0.3)
    assert music["layer_vs_wiener_taps_rel_diff"] < 0.2
    mse = music["train_mse"]
    assert min(mse["trained Conv1d(2→2, 63 taps)"]) > 0.99 * mse["Wiener FIR (63 taps)"][0]
    net_key = next(k for k in snr if k.startswith("nonlinear"))
    stft_key = next(k for k in snr if k.startswith("spectral Wiener"))
    assert len(snr[net_key]) == len(val[net_key]) == audio.QUICK.seeds
    np.testing.assert_allclose(
        music["net_minus_wiener_db_per_draw"],
        np.array(per_draw[net_key]) - per_draw["Wiener FIR (63 taps)"],
    )
    np.testing.assert_allclose(
        music["net_minus_spectral_wiener_db_per_draw"],
        np.array(per_draw[net_key]) - per_draw[stft_key],
    )
    # the STFT method adapts to the signal: on plucked strings it beats the fixed filter
    assert np.mean(per_draw[stft_key]) > np.mean(per_draw["Wiener FIR (63 taps)"]) + 1
    # the test clips and the validation clip are different audio
    assert per_draw["noisy input"][0] not in val["noisy input"]
    errors = result.numbers["onsets"]["onset_errors_samples"]
    assert len(errors) == 3 and max(errors) <= 2
    for fig in result.figures:
        assert (out / fig).read_bytes()[:4] == b"\x89PNG"
    noisy, rate = soundfile.read(out / "audio-noisy.wav")
    denoised, _ = soundfile.read(out / "audio-wiener.wav")
    assert rate == 16_000 and noisy.shape == denoised.shape and noisy.shape[1] == 2
    assert np.std(denoised) < np.std(noisy)  # the noise is gone, not added
    assert result.question and result.answer and result.limits
    # one number for the taps everywhere
    taps = f"{100 * music['layer_vs_wiener_taps_rel_diff']:.1f}%"
    assert f"taps within {taps}" in result.verdict and f"taps within {taps}" in result.answer
