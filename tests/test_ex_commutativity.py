"""Exercise 6 (commutativity): the checks, and the definitions against NumPy and SciPy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import signal
from support import only_backends

pytest.importorskip("matplotlib", reason="the exercise draws a figure")

import convkit as ck
from convkit.exercises import Context, commutativity


def complex_array(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def test_the_loops_are_the_definitions_numpy_and_scipy_use() -> None:
    rng = np.random.default_rng(1)
    f, g = complex_array(rng, (11,)), complex_array(rng, (4,))
    np.testing.assert_allclose(commutativity.conv_loop(f, g), np.convolve(f, g), atol=1e-13)
    # numpy.correlate(f, g, 'full') is Σ_n f[n + k] conj(g[n]): the report's convention
    np.testing.assert_allclose(
        commutativity.corr_loop(f, g), np.correlate(f, g, "full"), atol=1e-13
    )
    # lag k by hand: index k + len(g) - 1
    k = 3
    by_hand = sum(f[n + k] * np.conj(g[n]) for n in range(len(g)) if 0 <= n + k < len(f))
    assert abs(commutativity.corr_loop(f, g)[k + len(g) - 1] - by_hand) < 1e-13
    for s1, s2 in [((5, 4), (2, 3)), ((3, 4, 2), (2, 2, 3))]:
        f, g = complex_array(rng, s1), complex_array(rng, s2)
        np.testing.assert_allclose(
            commutativity.conv_loop(f, g), signal.convolve(f, g, method="direct"), atol=1e-13
        )
        np.testing.assert_allclose(
            commutativity.corr_loop(f, g), signal.correlate(f, g, method="direct"), atol=1e-13
        )


def test_correlation_reverses_and_conjugates_in_scipy_too() -> None:
    """The identity the report states, checked on SciPy alone (not convkit)."""
    rng = np.random.default_rng(2)
    f, g = complex_array(rng, (7, 5)), complex_array(rng, (3, 6))
    fg = signal.correlate(f, g, method="direct")
    gf = signal.correlate(g, f, method="direct")
    np.testing.assert_allclose(fg, np.conj(gf[::-1, ::-1]), atol=1e-13)
    assert np.max(np.abs(fg - gf)) > 0.5


def test_continuous_closed_form_by_a_riemann_sum() -> None:
    h = 1e-4
    t = np.arange(0, 6, h)
    f = (t <= 1).astype(float)
    g = np.exp(-t)
    riemann = h * signal.fftconvolve(f, g)[: t.size]
    xs = np.array([0.25, 0.5, 1.0, 1.5, 3.0])
    idx = np.round(xs / h).astype(int)
    np.testing.assert_allclose(commutativity.box_exp_exact(xs), riemann[idx], atol=2e-4)
    assert commutativity.box_exp_exact(np.array([-0.3]))[0] == 0.0
    for x in (-0.2, 0.4, 1.0, 2.5):
        assert abs(commutativity.box_exp(x, "fg") - commutativity.box_exp(x, "gf")) < 1e-12


def test_quick_run(tmp_path: Path) -> None:
    result = commutativity.run(Context(quick=True, backend="numpy", out=tmp_path, progress=False))
    n = result.numbers
    assert list(n["per_backend"]) == ["numpy"] and n["skipped_backends"] == {}
    assert n["per_backend"]["numpy"]["dims"] == [1, 2, 3]
    assert n["checks"] == 2 * sum(len(c) for c in commutativity.CASES.values())
    w = n["worst"]
    assert w["conv_swap"] < 1e-13 and w["conv_vs_loop"] < 1e-13 and w["corr_vs_loop"] < 1e-13
    assert w["corr_swap_min"] > 0.05  # a swap changes the correlation in every case
    assert w["corr_reversed_conj"] < 1e-13
    assert n["same_mode_shapes"]["f (17,) with g (6,)"] == [17]
    assert n["same_mode_shapes"]["g (6,) with f (17,)"] == [6]
    assert n["same_mode_shapes"]["2-d g (3, 12) with f (9, 4)"] == [3, 12]
    assert max(n["same_mode_equal_length_rel_diff"].values()) < 1e-13
    assert n["corr_loop_vs_scipy_numpy"] < 1e-13
    c = n["continuous"]
    assert c["max_abs_fg_minus_gf"] < 1e-10 and c["max_abs_gf_minus_exact"] < 1e-10
    assert "z = x − y" in result.details and "L¹" in result.details
    assert "conj(g[n])" in result.details
    assert (tmp_path / result.figures[0]).stat().st_size > 10_000


def test_quick_run_on_scipy(tmp_path: Path) -> None:
    result = commutativity.run(Context(quick=True, backend="scipy", out=tmp_path, progress=False))
    rows = result.numbers["per_backend"]
    assert list(rows) == ["scipy"]
    assert rows["scipy"]["conv_swap"] < 1e-13 and rows["scipy"]["corr_vs_loop"] < 1e-13


def test_same_mode_directly() -> None:
    """The 'same' claim on convkit and SciPy, outside the exercise."""
    rng = np.random.default_rng(3)
    f, g = rng.standard_normal(17), rng.standard_normal(6)
    assert ck.convolve(f, g, "same").shape == signal.convolve(f, g, "same").shape == (17,)
    assert ck.convolve(g, f, "same").shape == signal.convolve(g, f, "same").shape == (6,)
    np.testing.assert_allclose(ck.convolve(g, f, "same"), signal.convolve(g, f, "same"), atol=1e-13)


def test_quick_run_in_complex64_where_complex128_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    only_backends(monkeypatch, numpy=("float32", "complex64"), scipy=("float16",))
    result = commutativity.run(Context(quick=True, out=tmp_path, progress=False))
    n = result.numbers
    assert list(n["per_backend"]) == ["numpy"] and n["dtype"] == "complex64"
    r = n["per_backend"]["numpy"]
    assert r["dtype"] == "complex64" and r["dims"] == [1, 2, 3]
    # complex64 round-off: above complex128's, below 1e-5; the swap still changes correlation
    for key in ("conv_swap", "conv_vs_loop", "corr_vs_loop", "corr_reversed_conj"):
        assert 1e-10 < r[key] < 1e-5, key
    assert r["corr_swap_min"] > 0.05
    assert "no complex128 or complex64" in n["skipped_backends"]["scipy"]["1"]
    assert "| numpy | complex64 |" in result.details
    assert "declares no complex128" in result.verdict


def test_no_backend_left_is_a_skip_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    only_backends(monkeypatch, numpy=("float32",))
    result = commutativity.run(Context(quick=True, backend="numpy", out=tmp_path, progress=False))
    assert result.verdict.startswith("not run") and result.numbers["per_backend"] == {}
    assert set(result.numbers["skipped_backends"]["numpy"]) == {"1", "2", "3"}
    assert "z = x − y" in result.details  # the proof is still reported
