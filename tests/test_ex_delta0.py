"""Exercise 1 (Δ = 0): a 1×1 conv stack is a per-pixel MLP, checked against loops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import only_backends

pytest.importorskip("skimage", reason="the exercise uses scikit-image's photographs")
pytest.importorskip("matplotlib", reason="the exercise draws a figure")

import convkit as ck
from convkit.exercises import Context, delta0


def per_pixel_loop(x: np.ndarray, model: object) -> np.ndarray:
    """The MLP applied pixel by pixel with plain Python loops over the weights."""
    first, _, second = model.layers  # type: ignore[attr-defined]
    w1, b1 = first.weight.value[:, :, 0, 0], first.bias.value
    w2, b2 = second.weight.value[:, :, 0, 0], second.bias.value
    _, c, h, w = x.shape
    out = np.zeros((1, w2.shape[0], h, w))
    for i in range(h):
        for j in range(w):
            hidden = [
                max(0.0, b1[k] + sum(w1[k, ci] * x[0, ci, i, j] for ci in range(c)))
                for k in range(w1.shape[0])
            ]
            for d in range(w2.shape[0]):
                out[0, d, i, j] = b2[d] + sum(w2[d, k] * hidden[k] for k in range(len(hidden)))
    return out


@pytest.mark.parametrize("backend", ["numpy", "scipy"])
def test_the_stack_is_an_mlp_per_pixel(backend: str) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 3, 5, 4))
    model = delta0.make_stack(backend)
    np.testing.assert_allclose(model(x), per_pixel_loop(x, model), rtol=0, atol=1e-13)
    # one pixel changed: with the direct method no other output moves, not even by round-off
    params = delta0.mlp_params(model)
    bumped = x.copy()
    bumped[0, :, 2, 1] += [0.5, -1.0, 2.0]
    change = np.abs(
        delta0.stack_with(bumped, params, backend, "direct")
        - delta0.stack_with(x, params, backend, "direct")
    )[0]
    assert change[:, 2, 1].max() > 0.01  # the changed pixel does change (ReLUs not all off)
    change[:, 2, 1] = 0
    assert change.max() == 0.0


def test_jacobian_against_finite_differences() -> None:
    rng = np.random.default_rng(6)
    crop = rng.uniform(0, 1, (1, 3, 3, 3))
    model = delta0.make_stack("numpy")
    jac = delta0.stack_jacobian(model, crop)
    eps = 1e-6
    numeric = np.zeros_like(jac)
    for k in range(crop.size):
        step = np.zeros(crop.size)
        step[k] = eps
        up = model(crop + step.reshape(crop.shape)).ravel()
        down = model(crop - step.reshape(crop.shape)).ravel()
        numeric[:, k] = (up - down) / (2 * eps)
    np.testing.assert_allclose(jac, numeric, atol=1e-7)
    # pixel-major reordering puts pixel p's 3 channels at rows 3p..3p+2
    reordered = delta0.pixel_major(jac, 3)
    p, c = 4, 2  # pixel 4 is (1, 1); channel-major index c * 9 + 4
    assert reordered[3 * p + c, 3 * p + c] == jac[c * 9 + p, c * 9 + p]
    # the per-pixel block is the MLP's Jacobian (itself checked by finite differences)
    pixel = crop[0, :, 1, 1]
    params = delta0.mlp_params(model)
    block = delta0.mlp_jacobian(pixel, params)
    fd = np.stack(
        [
            (delta0.mlp((pixel + e)[None], params) - delta0.mlp((pixel - e)[None], params))[0]
            / (2 * eps)
            for e in np.eye(3) * eps
        ],
        axis=1,
    )
    np.testing.assert_allclose(block, fd, atol=1e-7)
    np.testing.assert_allclose(reordered[12:15, 12:15], block, atol=1e-14)


def test_quick_run(tmp_path: Path) -> None:
    result = delta0.run(Context(quick=True, backend="numpy", out=tmp_path, progress=False))
    rows = result.numbers["per_backend"]
    assert list(rows) == ["numpy"] and result.numbers["skipped_backends"] == {}
    r = rows["numpy"]
    assert r["stack_vs_mlp"] < 1e-13 and r["bumped_pixel_vs_mlp"] < 1e-13
    assert r["other_pixels_change_direct"] == 0.0
    assert r["other_pixels_change_layers"] == 0.0  # numpy's auto picks direct here
    assert r["jacobian_off_block_max"] == 0.0 and r["jacobian_block_vs_mlp"] < 1e-13
    assert 0 < r["other_pixels_change_fft"] < 1e-13  # the FFT leaks round-off, no more
    counts = result.numbers["parameters"]
    assert counts["dense layer, 1 MP RGB -> 1 MP RGB"] == 9_000_003_000_000
    assert counts["1x1 conv 3 -> 3 (Delta = 0, shared)"] == 12
    assert counts["1x1 conv stack 3 -> 16 -> 3"] == (3 * 16 + 16) + (16 * 3 + 3)
    assert counts["Delta = 0 without sharing: a 3x3 matrix + bias per pixel"] == 12 * 10**6
    assert "V[0, 0, c, d]" in result.details and "9,000,003,000,000" in result.details
    assert result.question and result.answer and result.limits
    assert (tmp_path / result.figures[0]).stat().st_size > 10_000


def test_quick_run_on_scipy_runs_only_scipy(tmp_path: Path) -> None:
    result = delta0.run(Context(quick=True, backend="scipy", out=tmp_path, progress=False))
    rows = result.numbers["per_backend"]
    assert list(rows) == ["scipy"]
    assert rows["scipy"]["stack_vs_mlp"] < 1e-13
    assert rows["scipy"]["other_pixels_change_direct"] == 0.0
    assert rows["scipy"]["jacobian_block_vs_mlp"] < 1e-13
    # whatever method scipy's auto picks, the leak across pixels is round-off at most
    assert rows["scipy"]["jacobian_off_block_max"] < 1e-13


def test_the_direct_conv_equals_a_matrix_product_per_pixel() -> None:
    """The layer's own operation, independent of the exercise's code."""
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((1, 3, 6, 5)), rng.standard_normal((4, 3)), rng.standard_normal(4)
    y = np.asarray(ck.conv(x, w[:, :, None, None], b, method="direct", backend="numpy"))
    expected = np.einsum("dc,chw->dhw", w, x[0]) + b[:, None, None]
    np.testing.assert_allclose(y[0], expected, atol=1e-14)


def test_backends_for_lowers_precision_or_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    from convkit.exercises.common import backends_for

    only_backends(monkeypatch, numpy=("float32", "complex64"), scipy=("float16",))
    for backend in (None, "auto"):
        run, skipped = backends_for(Context(backend=backend), "float64", 2, fallback="float32")
        assert run == {"numpy": "float32"}
        assert skipped == {"scipy": "no float64 or float32 (it declares float16)"}
    # a named backend is checked too: lowered, skipped or unknown, never an exception
    assert backends_for(Context(backend="numpy"), "complex128", 3, fallback="complex64") == (
        {"numpy": "complex64"},
        {},
    )
    assert backends_for(Context(backend="scipy"), "float64", 2, fallback="float32") == (
        {},
        {"scipy": "no float64 or float32 (it declares float16)"},
    )
    run, skipped = backends_for(Context(backend="numpy"), "float64", 2)
    assert run == {} and skipped == {"numpy": "no float64 (it declares float32, complex64)"}
    run, skipped = backends_for(Context(backend="nosuch"), "float64", 2, fallback="float32")
    assert run == {} and "not registered" in skipped["nosuch"]


def test_quick_run_in_float32_where_float64_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    only_backends(monkeypatch, numpy=("float32",))
    result = delta0.run(Context(quick=True, backend="numpy", out=tmp_path, progress=False))
    r = result.numbers["per_backend"]["numpy"]
    assert r["dtype"] == "float32" and result.numbers["lower_precision_backends"] == {
        "numpy": "float32"
    }
    # float32 round-off against the float64 MLP: well above float64's, well below 1e-5
    assert 1e-10 < r["stack_vs_mlp"] < 1e-5 and r["jacobian_block_vs_mlp"] < 1e-5
    assert r["other_pixels_change_direct"] == 0.0 and r["jacobian_off_block_max"] == 0.0
    assert 1e-10 < r["other_pixels_change_fft"] < 1e-5
    assert "| numpy | float32 |" in result.details
    assert "declares no float64" in result.verdict and "float32" in result.answer


def test_no_backend_left_is_a_skip_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    only_backends(monkeypatch, numpy=("float16",))
    result = delta0.run(Context(quick=True, out=tmp_path, progress=False))
    assert result.verdict.startswith("not run") and result.numbers["per_backend"] == {}
    assert "no float64 or float32" in result.numbers["skipped_backends"]["numpy"]
