"""Winograd F(2,3) and F(4,3) (convkit.algorithms.winograd) against the formula:
``convkit.testing.reference_conv`` in float64, on NumPy arrays and torch tensors."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from convkit.algorithms.winograd import (
    ERROR_BOUND,
    applies,
    error_bound,
    winograd_conv,
    winograd_matrices,
)
from convkit.padding import pad_numpy
from convkit.spec import ConvSpec
from convkit.testing import TOLERANCE, reference_conv

# (x shape, weight shape, conv keywords): sizes not multiples of the tile, every padding
# form and mode, groups, one to 256 channels
CASES = [
    ((2, 3, 11), (4, 3, 3), {"padding": 1}),
    ((1, 2, 10), (3, 2, 3), {"padding": 0}),
    ((3, 4, 9), (4, 2, 3), {"padding": ((2, 0),), "groups": 2, "padding_mode": "circular"}),
    ((2, 5, 7), (5, 1, 3), {"padding": "same", "groups": 5, "padding_mode": "reflect"}),
    ((1, 256, 6), (2, 256, 3), {"padding": 1}),
    ((2, 3, 9, 10), (4, 3, 3, 3), {"padding": 1}),
    ((1, 2, 8, 7), (2, 2, 3, 3), {"padding": 0}),
    ((2, 4, 7, 6), (6, 2, 3, 3), {"padding": ((1, 2), (0, 3)), "groups": 2}),
    ((1, 3, 5, 9), (3, 1, 3, 3), {"padding": "same", "groups": 3, "padding_mode": "reflect"}),
    ((2, 2, 6, 5), (3, 2, 3, 3), {"padding": (2, 1), "padding_mode": "circular"}),
    ((1, 64, 5, 4), (3, 64, 3, 3), {"padding": 1, "padding_mode": "reflect"}),
    ((1, 256, 4, 3), (2, 256, 3, 3), {"padding": 1}),
    ((2, 3, 8), (2, 3, 3), {"padding": 1}),
    ((2, 3, 8, 8), (4, 3, 3, 3), {"padding": 1}),
    ((1, 2, 7, 8), (3, 2, 3, 3), {"padding": 1, "padding_mode": "circular"}),
]
IDS = [f"{len(xs) - 2}d-{xs}-{kw}" for xs, _, kw in CASES]


def _draw(
    xs: tuple[int, ...], ws: tuple[int, ...], bias: bool, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    b = rng.standard_normal(ws[0]) if bias else None
    return rng.standard_normal(xs), rng.standard_normal(ws), b


def _rel_err(y: Any, ref: np.ndarray) -> float:
    y = np.asarray(y, dtype=np.float64)
    assert y.shape == ref.shape
    if ref.size == 0:
        return 0.0
    return float(np.max(np.abs(y - ref)) / max(np.max(np.abs(ref)), 1e-300))


def _tol(dtype: str, tile: int, ndim: int) -> float:
    return TOLERANCE["float64"] if dtype == "float64" else error_bound(tile, dtype, ndim)


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("xs", "ws", "kw"), CASES, ids=IDS)
def test_numpy_matches_reference(
    tile: int, dtype: str, bias: bool, xs: tuple, ws: tuple, kw: dict
) -> None:
    x, w, b = _draw(xs, ws, bias)
    x, w = x.astype(dtype), w.astype(dtype)
    b = None if b is None else b.astype(dtype)
    spec = ConvSpec.build(xs, ws, None if b is None else b.shape, **kw)
    y = winograd_conv(np, x, w, b, spec, tile=tile)
    assert y.dtype == np.dtype(dtype)
    ref = reference_conv(x, w, b, **kw)
    assert _rel_err(y, ref) <= _tol(dtype, tile, len(xs) - 2)


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize(
    ("xs", "ws", "kw"),
    [CASES[i] for i in (2, 7, 9, 12, 13, 14)],
    ids=[IDS[i] for i in (2, 7, 9, 12, 13, 14)],
)
def test_pad_callable_and_small_chunks(tile: int, xs: tuple, ws: tuple, kw: dict) -> None:
    """A caller's ``pad``; a workspace so small that chunks are single rows of tiles,
    and one that takes several images per chunk; chunks inside the output and chunks
    cropped at its edge."""
    x, w, b = _draw(xs, ws, True, seed=1)
    assert b is not None
    spec = ConvSpec.build(xs, ws, b.shape, **kw)
    ref = reference_conv(x, w, b, **kw)
    calls = []

    def pad(a: np.ndarray) -> np.ndarray:
        calls.append(a.shape)
        return pad_numpy(a, spec.padding, spec.padding_mode)

    for workspace in (1, 1 << 16):
        y = winograd_conv(np, x, w, b, spec, tile=tile, pad=pad, workspace_bytes=workspace)
        assert _rel_err(y, ref) <= 1e-12
    assert calls == [xs, xs]


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("ndim", [1, 2])
def test_batch_zero_and_one(tile: int, ndim: int) -> None:
    spatial = (7, 5)[:ndim]
    for n in (0, 1):
        x, w, b = _draw((n, 3, *spatial), (2, 3, *(3,) * ndim), True)
        assert b is not None
        spec = ConvSpec.build(x.shape, w.shape, b.shape, padding=1)
        y = winograd_conv(np, x, w, b, spec, tile=tile)
        assert y.shape == (n, 2, *spatial)
        assert _rel_err(y, reference_conv(x, w, b, padding=1)) <= 1e-12


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("xs", "ws", "kw"), CASES, ids=IDS)
def test_torch_matches_reference(tile: int, dtype: str, xs: tuple, ws: tuple, kw: dict) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    tx = pytest.importorskip("array_api_compat.torch", reason="array-api-compat is missing")
    x, w, b = _draw(xs, ws, True, seed=2)
    assert b is not None
    x, w, b = x.astype(dtype), w.astype(dtype), b.astype(dtype)
    spec = ConvSpec.build(xs, ws, b.shape, **kw)
    xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
    y = winograd_conv(tx, xt, wt, bt, spec, tile=tile)
    assert isinstance(y, torch.Tensor)
    assert y.dtype == getattr(torch, dtype)
    ref = reference_conv(x, w, b, **kw)
    assert _rel_err(y.numpy(), ref) <= _tol(dtype, tile, len(xs) - 2)


def test_torch_batch_zero() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    tx = pytest.importorskip("array_api_compat.torch", reason="array-api-compat is missing")
    x, w = torch.zeros((0, 2, 6, 6)), torch.ones((3, 2, 3, 3))
    spec = ConvSpec.build(tuple(x.shape), tuple(w.shape), padding=1)
    assert tuple(winograd_conv(tx, x, w, None, spec).shape) == (0, 3, 6, 6)


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize(
    "points", [None, (0, 1, -1, Fraction(1, 2), -Fraction(1, 2)), (0, 1, -1, 2, -2)]
)
def test_matrices_compute_one_tile(tile: int, points: tuple | None) -> None:
    """``A^T [(G w) * (B^T d)]`` is the correlation of one tile, from the loop."""
    if points is not None and len(points) != tile + 1:
        points = points[: tile + 1]
    bt, g, at = winograd_matrices(tile, None if points is None else tuple(points))
    rng = np.random.default_rng(3)
    d, w = rng.standard_normal(tile + 2), rng.standard_normal(3)
    expected = [sum(w[k] * d[i + k] for k in range(3)) for i in range(tile)]
    np.testing.assert_allclose(at @ ((g @ w) * (bt @ d)), expected, rtol=0, atol=1e-12)


def test_applies() -> None:
    def spec(xs: tuple, ws: tuple, **kw: Any) -> ConvSpec:
        return ConvSpec.build(xs, ws, **kw)

    assert applies(spec((1, 2, 9), (3, 2, 3), padding="same", padding_mode="reflect"))
    assert applies(spec((1, 4, 9, 9), (4, 1, 3, 3), groups=4, padding=(1, 0)))
    assert not applies(spec((1, 2, 9, 9), (3, 2, 3, 3), stride=2))
    assert not applies(spec((1, 2, 9, 9), (3, 2, 3, 3), stride=(1, 2)))
    assert not applies(spec((1, 2, 9, 9), (3, 2, 3, 3), dilation=2))
    assert not applies(spec((1, 2, 9, 9), (3, 2, 5, 5)))
    assert not applies(spec((1, 2, 9, 9), (3, 2, 3, 1)))
    assert not applies(spec((1, 2, 6, 6, 6), (3, 2, 3, 3, 3)))


def test_errors_name_the_argument() -> None:
    x, w = np.zeros((1, 2, 8)), np.zeros((2, 2, 3))
    spec = ConvSpec.build(x.shape, w.shape)
    with pytest.raises(ValueError, match="tile=3"):
        winograd_conv(np, x, w, None, spec, tile=3)
    strided = ConvSpec.build(x.shape, w.shape, stride=2)
    with pytest.raises(ValueError, match="stride"):
        winograd_conv(np, x, w, None, strided)
    with pytest.raises(TypeError, match=r"x\.dtype"):
        winograd_conv(np, x.astype(np.int64), w.astype(np.int64), None, spec)
    with pytest.raises(ValueError, match="points"):
        winograd_matrices(4, (0, 1, -1, 1))
    with pytest.raises(ValueError, match="tile=8"):
        error_bound(8, "float32")


def test_error_bounds_are_within_float32_tolerance_where_claimed() -> None:
    """The table the cost model reads: F(2,3) float32 stays within convkit's float32
    tolerance; every float64 bound within float64's."""
    assert error_bound(2, "float32", 2) <= TOLERANCE["float32"]
    assert all(
        v <= TOLERANCE["float64"] for (_, dt, _), v in ERROR_BOUND.items() if dt == "float64"
    )
    assert error_bound(4, "complex64", 1) == error_bound(4, "float32", 1)


@pytest.mark.parametrize("tile", [2, 4])
def test_three_dimensions(tile: int) -> None:
    """3-d is computed correctly too, though :func:`applies` leaves it to other methods."""
    x, w, b = _draw((1, 2, 5, 6, 4), (3, 2, 3, 3, 3), True, seed=4)
    spec = ConvSpec.build(x.shape, w.shape, None if b is None else b.shape, padding=1)
    y = winograd_conv(np, x, w, b, spec, tile=tile)
    assert _rel_err(y, reference_conv(x, w, b, padding=1)) <= 1e-12


def test_error_bound_grows_past_the_measured_channels() -> None:
    assert error_bound(4, "float32", 2, channels=64) == error_bound(4, "float32", 2)
    assert error_bound(4, "float32", 2, channels=2048) == pytest.approx(
        2 * ERROR_BOUND[(4, "float32", 2)]
    )
    with pytest.raises(ValueError, match="channels=0"):
        error_bound(2, "float32", 1, channels=0)
