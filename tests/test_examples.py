"""The examples a user would copy run, and print what they measured: the digits CNN and
the audio denoiser (examples/torch_conv4d.py is run by tests/test_nn_torch.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal

soundfile = pytest.importorskip(
    "soundfile", reason="the examples read and write sound files with soundfile"
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _import(name: str):
    sys.path.insert(0, str(EXAMPLES))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def test_digits_cnn_runs_and_reports_both_accuracies() -> None:
    out = _run("digits_cnn.py", "--quick")
    assert "digits: 1077 training, 270 validation, 450 test images" in out  # 1797 in all
    assert "Total params: 10,122" in out  # 160 + 32 + 4,640 + 64 + 5,130 + 96 buffers
    cnn = re.search(r"CNN \(numpy\): 2 epochs in [\d.]+ s, .* test accuracy ([\d.]+)%", out)
    svm = re.search(r"SVM \(RBF kernel, scikit-learn defaults\): test accuracy ([\d.]+)%", out)
    assert cnn and svm, out
    assert float(cnn.group(1)) > 50  # far above chance (10%) after two epochs
    assert float(svm.group(1)) > 95


def test_digits_splits_are_disjoint_and_stratified() -> None:
    from sklearn.datasets import load_digits

    digits = _import("digits_cnn")
    sets = digits.data(0)
    images = load_digits().images / 16
    seen: set[int] = set()
    for x, y in sets.values():
        # every image comes from the bundled set with its own label, once
        flat = images.reshape(len(images), -1)
        rows = [int(np.flatnonzero((flat == xi.reshape(1, -1)).all(axis=1))[0]) for xi in x]
        assert np.array_equal(load_digits().target[rows], y)
        counts = np.bincount(y, minlength=10) / len(y)
        assert np.all(np.abs(counts - 0.1) < 0.02)
        seen.update(rows)
    assert sum(len(y) for _, y in sets.values()) == 1797


def test_the_wiener_baseline_is_the_least_squares_filter() -> None:
    denoise = _import("audio_denoise")
    rng = np.random.default_rng(0)
    noisy = rng.standard_normal((2, 4000))
    taps = rng.standard_normal(9)
    # a target that *is* a centred 9-tap correlation of the input: recovered exactly
    clean = np.stack([scipy.signal.correlate(x, taps, mode="same") for x in noisy])
    np.testing.assert_allclose(denoise.wiener_fir(noisy, clean, 9), taps, atol=1e-10)


def test_audio_denoise_writes_wavs_and_a_figure_and_reports_snrs(tmp_path: Path) -> None:
    out = _run("audio_denoise.py", "--quick", "--out", str(tmp_path))
    names = {p.name for p in tmp_path.iterdir()}
    assert {"denoise.png", "test-0-clean.wav", "test-0-noisy.wav"} <= names
    assert {"test-denoised-conv1d.wav", "test-denoised-wiener.wav"} <= names
    snr = dict(re.findall(r"^\s*(.+?): SNR\s+(-?[\d.]+) dB$", out, re.M))
    assert set(snr) == {"noisy input", "Wiener FIR (57 taps)", "Conv1d stack"}, out
    # the printed input SNR is that of the files on disk, read here with soundfile
    clean, rate = soundfile.read(tmp_path / "test-0-clean.wav")
    noisy, _ = soundfile.read(tmp_path / "test-0-noisy.wav")
    assert rate == 16_000
    expected = 10 * np.log10(np.sum(clean**2) / np.sum((noisy - clean) ** 2))
    assert float(snr["noisy input"]) == pytest.approx(expected, abs=0.01)
    assert float(snr["Wiener FIR (57 taps)"]) > float(snr["noisy input"])


def test_the_readme_training_snippet_runs(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "nn.fit" in b]
    exec(compile(block, "README.md", "exec"), {})
    assert float(capsys.readouterr().out.strip()) > 0.8  # printed as "about 0.9"
