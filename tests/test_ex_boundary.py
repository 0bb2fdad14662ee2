"""Exercise 3 (the boundary), run quickly, checked against SciPy's filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import ndimage

from convkit.adapters import kernels
from convkit.exercises import Context, Result, boundary
from convkit.exercises.common import photo
from convkit.padding import PADDING_MODES

# convkit's padding modes as scipy.ndimage names them
NDIMAGE = {
    "zeros": "constant",
    "reflect": "mirror",
    "symmetric": "reflect",
    "replicate": "nearest",
    "circular": "wrap",
}


@pytest.fixture(scope="module", params=["numpy", "scipy"])
def ran(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Result, Path]:
    out = tmp_path_factory.mktemp(f"boundary-{request.param}")
    ctx = Context(backend=request.param, quick=True, out=out, progress=False)
    return boundary.run(ctx), out


@pytest.fixture
def result(ran: tuple[Result, Path]) -> Result:
    return ran[0]


def reference_energy(name: str, k: np.ndarray, mode: str, size: int) -> float:
    """The relative border-band error energy, computed with scipy.ndimage alone."""
    full = photo(name, size=size)[:size, :size]
    n = size // 2
    s = slice(n // 2, n // 2 + n)
    truth = ndimage.convolve(full, k, mode="constant")[s, s]
    out = ndimage.convolve(full[s, s], k, mode=NDIMAGE[mode])
    edge = np.minimum(np.arange(n), np.arange(n)[::-1])
    band = np.minimum.outer(edge, edge) < k.shape[0] // 2
    err = out - truth
    return float(np.sum(err[band] ** 2) / np.sum(truth[band] ** 2))


def test_error_energy_matches_scipy_ndimage(result: Result) -> None:
    energy = result.numbers["border_error_energy"]
    for kname, make in [
        ("Gaussian σ=2", lambda: kernels.gaussian(sigma=2.0)),
        ("Sobel x", kernels.sobel_x),
    ]:
        for i, name in enumerate(boundary.IMAGES[:2]):
            for mode in PADDING_MODES:
                want = reference_energy(name, make(), mode, 128)
                assert energy[kname][mode][i] == pytest.approx(want, rel=1e-6), (kname, name, mode)


def test_smoothing_kernels_prefer_mirror_like_padding(result: Result) -> None:
    geo = result.numbers["border_error_energy_geomean"]
    for kname in ("Gaussian σ=2", "box 7×7"):
        good = max(geo[kname][m] for m in ("symmetric", "replicate"))
        assert good * 10 < min(geo[kname]["zeros"], geo[kname]["circular"]), geo[kname]
    # the best-mode count covers only kernels wider than 3×3 (Gaussian σ=2, box 7×7)
    wins = result.numbers["best_mode_counts"]
    ties = result.numbers["best_mode_ties"]
    n_disc = result.numbers["best_mode_discriminating_cases"]
    assert n_disc == 2 * len(boundary.IMAGES)
    assert sum(wins.values()) + sum(ties.values()) == n_disc
    assert wins["zeros"] == wins["circular"] == 0
    energy = result.numbers["border_error_energy"]
    for mode, count in wins.items():  # recount the sole winners from the raw energies
        sole = 0
        for kname in ("Gaussian σ=2", "box 7×7"):
            for i in range(len(boundary.IMAGES)):
                e = {m: energy[kname][m][i] for m in PADDING_MODES}
                if all(e[mode] * 1.001 < v for m, v in e.items() if m != mode):
                    sole += 1
        assert count == sole, (mode, count, sole)
    # with 3×3 kernels symmetric and replicate tie in every case (15 = 3 kernels × 5 photos)
    w3 = result.numbers["best_or_tied_3x3_counts"]
    assert w3["symmetric"] == w3["replicate"] == 3 * len(boundary.IMAGES)
    # a 3×3 kernel reads one pixel beyond the edge: symmetric and replicate pad it alike
    for kname in ("Sobel x", "Laplacian", "sharpen"):
        assert energy[kname]["symmetric"] == pytest.approx(energy[kname]["replicate"], rel=1e-9)
        assert energy[kname]["reflect"] != pytest.approx(energy[kname]["symmetric"], rel=1e-3)


def test_output_sizes(result: Result) -> None:
    n = result.numbers["input_size"][0]
    k = result.numbers["kernel_size"][0]
    sizes = result.numbers["output_sizes"]
    assert sizes == {"valid": [n - k + 1] * 2, "same": [n, n], "full": [n + k - 1] * 2}
    assert set(result.numbers["error_reach_px"].values()) == {k // 2}


def test_band_grows_as_depth_times_radius(result: Result) -> None:
    depths = result.numbers["depths"]
    for mode in PADDING_MODES:
        assert result.numbers["random_net_reach"][mode] == depths, mode
        assert result.numbers["blur_stack_reach"][mode] == depths, mode
        profile = result.numbers["error_profile"][mode]
        # error inside the band, none beyond it
        assert profile[0] > 0 and all(v < 1e-9 for v in profile[depths[-1] :]), (mode, profile)


def test_band_of_a_blur_stack_with_ndimage() -> None:
    """Independent of convkit: three 3×3 blurs with zero padding, against the truth."""
    full = photo("camera", size=128)
    s = slice(32, 96)
    b = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16
    crop, whole = full[s, s], full
    for _ in range(3):
        crop = ndimage.convolve(crop, b, mode="constant")
        whole = ndimage.convolve(whole, b, mode="constant")
    err = np.abs(crop - whole[s, s])
    dist = boundary.border_distance(64)
    assert boundary.reach(err, dist) == 3


def test_edges_differ_only_near_the_border(result: Result) -> None:
    ew = result.numbers["edge_disagreement"]
    for mode in PADDING_MODES:
        assert max(ew[mode]["centre"]) == 0.0
    assert np.mean(ew["zeros"]["band"]) > 5 * np.mean(ew["symmetric"]["band"])


def test_collapse_detector() -> None:
    """A net whose last hidden ReLUs are all off is collapsed; a fresh one is not."""
    from convkit import nn

    kw: dict[str, Any] = dict(padding="same", padding_mode="zeros")
    x = np.random.default_rng(0).standard_normal((8, 1, 12, 12)).astype(np.float32)

    def net() -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(1, 4, 5, seed=1, **kw),
            nn.ReLU(),
            nn.Conv2d(4, 4, 5, seed=2, **kw),
            nn.ReLU(),
            nn.Conv2d(4, 1, 5, seed=3, **kw),
        )

    alive = net()
    assert not boundary.collapsed(alive, x)
    dead = net()
    second = dead.layers[2]
    assert isinstance(second, nn.Conv2d) and second.bias is not None
    second.bias.value[...] = -1e3  # every second-layer pre-activation < 0
    assert boundary.collapsed(dead, x)
    out = nn.predict(dead, x)
    assert float(np.ptp(out)) < 1e-6  # and then the output is one constant


def test_position_leaks_through_zero_padding_not_circular(result: Result) -> None:
    seeds = result.numbers["seeds"]
    for mode, values in result.numbers["position_leak_r2"].items():
        # every seed gave a converged (not collapsed) run: none averaged in dead
        assert len(values) == len(seeds), mode
        assert result.numbers["position_leak_still_collapsed"][mode] == 0
        assert result.numbers["position_leak_restarts"][mode] >= 0
    r2 = {m: float(np.mean(v)) for m, v in result.numbers["position_leak_r2"].items()}
    assert r2["zeros"] > 0.5
    # circular padding on white noise: every pixel sees the same distribution, so the best
    # any such net can do is a constant (R² ≤ 0 up to the test sample's noise)
    assert r2["circular"] < 0.1
    assert r2["zeros"] > r2["circular"] + 0.4


def test_report_parts_and_figures(ran: tuple[Result, Path]) -> None:
    result, out = ran
    assert result.question and result.answer and result.limits
    assert "| zeros |" in result.details
    assert len(result.figures) == 3
    for fig in result.figures:
        assert (out / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
