"""Each exercise in quick mode, asserting on what it measured; and the command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("skimage", reason="the exercises use scikit-image's photographs")
pytest.importorskip("matplotlib", reason="the exercises draw figures")
pytest.importorskip("soundfile", reason="the audio exercise writes real WAV files")

from convkit.exercises import (
    Context,
    audio,
    boundary,
    commutativity,
    delta0,
    invariance,
    text,
    waldo,
)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context(quick=True, out=tmp_path, progress=False)


def test_delta0_1x1_conv_is_a_per_pixel_dense_layer(ctx: Context) -> None:
    r = delta0.run(ctx)
    assert set(r.numbers["max_abs_difference"]) >= {"numpy", "scipy"}
    assert max(r.numbers["max_abs_difference"].values()) < 1e-6
    assert r.numbers["parameters"]["dense 1 MP -> 1 MP (weights)"] == 10**12


def test_invariance(ctx: Context) -> None:
    r = invariance.run(ctx)
    n = r.numbers
    # equal in exact arithmetic, computed at other positions: equal up to rounding
    assert 0 < n["rounding_bound"] < 1e-11
    assert n["circular_max_diff"] <= n["rounding_bound"]
    assert n["zeros_interior_max_diff"] <= n["rounding_bound"]
    assert n["zeros_border_max_diff"] > 0.1
    assert n["zeros_error_reach_px"] == n["kernel_radius"]
    assert n["plain_net_accuracy"] <= 0.62  # chance: the label is where, not what
    assert n["coordinate_net_accuracy"] >= 0.9
    assert (ctx.out / r.figures[0]).is_file()


def test_boundary(ctx: Context) -> None:
    r = boundary.run(ctx)
    n = r.numbers
    size = n["input_size"][0]
    k = n["kernel_size"][0]
    assert n["output_sizes"] == {
        "valid": [size - k + 1] * 2,
        "same": [size] * 2,
        "full": [size + k - 1] * 2,
    }
    energy = n["border_error_energy"]
    assert energy["zeros"] > 10 * min(energy["reflect"], energy["symmetric"], energy["replicate"])
    assert set(n["error_reach_px"].values()) == {k // 2}


def test_audio(ctx: Context) -> None:
    r = audio.run(ctx)
    n = r.numbers
    assert n["snr_conv1d_db"] > n["snr_noisy_db"] + 5
    assert n["snr_firwin_db"] > n["snr_noisy_db"]
    assert max(n["onset_errors_samples"]) <= 2
    assert (ctx.out / "audio-denoised.wav").is_file()


def test_text(ctx: Context) -> None:
    r = text.run(ctx)
    n = r.numbers
    # the same windows at other positions: equal up to rounding (1.8e-15 with an
    # AVX-512 BLAS, whose edge kernel rounds otherwise)
    for k in ("k1", "k3"):
        assert 0 < n[f"{k}_rounding_bound"] < 1e-11
        assert n[f"{k}_max_pool_diff"] <= n[f"{k}_rounding_bound"], k
    assert n["k2_max_pool_diff"] > 0.1  # a wider kernel does tell the k=1 pair apart
    kernel = n["kernel"]
    for d, acc in n["conv_accuracy"].items():
        if d < kernel:
            assert acc >= 0.9, (d, acc)
        else:
            assert acc <= 0.65, (d, acc)  # chance, within sampling noise
    assert min(n["dense_accuracy"].values()) >= 0.9


@pytest.fixture
def rounds_by_position(monkeypatch: pytest.MonkeyPatch) -> None:
    """``convkit.conv`` as on a BLAS whose kernel for the last output column rounds
    differently from the one for the others: that column moves by two ulps."""
    import convkit as ck

    exact = ck.conv

    def conv(*args: Any, **kwargs: Any) -> Any:
        y = np.array(exact(*args, **kwargs))
        y[..., -1] = np.nextafter(np.nextafter(y[..., -1], np.inf), np.inf)
        return y

    monkeypatch.setattr(ck, "conv", conv)


def test_equal_features_are_compared_up_to_rounding(ctx: Context, rounds_by_position: None) -> None:
    """Where a backend's rounding depends on the position, features that are equal in
    exact arithmetic differ in the last bits: still identical, and still equivariant."""
    k1 = text.pooled_features(text.PAIR_K1, 1, seed=51, backend=None)
    k3 = text.pooled_features(text.PAIR_K3, 3, seed=52, backend=None)
    for max_diff, _, bound in (k1, k3):
        assert 0 < max_diff <= bound < 1e-11
    assert text.same_up_to_rounding(k1[0], k1[2]) == "identical up to rounding"
    eq = invariance.equivariance(ctx)
    assert 0 < eq["circular_max_diff"] <= eq["rounding_bound"]
    assert eq["zeros_interior_max_diff"] <= eq["rounding_bound"]
    assert eq["zeros_error_reach_px"] == eq["kernel_radius"]


def test_commutativity(ctx: Context) -> None:
    r = commutativity.run(ctx)
    n = r.numbers
    assert n["convolution_max_rel_diff"] < 1e-12
    assert n["correlation_swap_min_rel_diff"] > 0.01
    assert n["correlation_reversal_max_rel_diff"] < 1e-12
    assert "b = i − a" in r.details


def test_waldo(ctx: Context) -> None:
    r = waldo.run(ctx)
    assert r.numbers["error_px"] == 0.0


def test_the_command_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "convkit",
            "exercises",
            "--quick",
            "--only",
            "delta0",
            "waldo",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "delta0" in result.stdout and "waldo" in result.stdout
    report = (out / "report.md").read_text()
    assert "## Where's Waldo" in report and "![waldo](figures/waldo.png)" in report
    assert (out / "figures" / "waldo.png").is_file()
    numbers = json.loads((out / "report.json").read_text())
    assert [e["name"] for e in numbers] == ["delta0", "waldo"]


def test_unknown_exercise_is_named(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "convkit", "exercises", "--only", "delta1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "unknown exercise(s) delta1; valid: delta0, invariance" in result.stderr


def test_the_main_job_needs_no_torch(tmp_path: Path) -> None:
    """The README's first command installs only the `exercises` extra: no torch, no
    array-api-compat. Block both and run exercises that train and differentiate."""
    code = (
        "import sys\n"
        "class NotInstalled:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchaudio', 'array_api_compat'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NotInstalled())\n"
        "from convkit.cli import main\n"
        f"sys.exit(main(['exercises', '--quick', '--only', 'delta0', 'invariance', 'text', "
        f"'--out', r'{tmp_path}']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "invariance" in result.stdout and (tmp_path / "report.md").is_file()
