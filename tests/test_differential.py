"""Every backend against independent references.

- d <= 3: ``torch.nn.functional.conv1d/2d/3d`` on the input padded by ``numpy.pad``;
  float32 within 1e-5 of ``max|y|``, float64 within 1e-12.
- any d (4 included): :func:`convkit.testing.reference_conv`, the formula as plain loops.
- hypothesis draws shapes and options at random for both.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import convkit as ck
from convkit.padding import PADDING_MODES, pad_numpy
from convkit.spec import ConvSpec
from convkit.testing import assert_close, reference_conv

torch = pytest.importorskip("torch", reason="torch is the reference for d <= 3")
F = torch.nn.functional


def torch_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, **kw: object) -> np.ndarray:
    """PyTorch on the padded input, in float64."""
    spec = ConvSpec.build(x.shape, w.shape, None if b is None else b.shape, **kw)  # type: ignore[arg-type]
    xp = pad_numpy(x.astype(np.float64), spec.padding, spec.padding_mode)
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[spec.ndim]
    y = fn(
        torch.from_numpy(xp),
        torch.from_numpy(w.astype(np.float64)),
        None if b is None else torch.from_numpy(b.astype(np.float64)),
        stride=spec.stride,
        dilation=spec.dilation,
        groups=spec.groups,
    )
    return y.numpy()


@st.composite
def conv_calls(draw: st.DrawFn, ndims: tuple[int, ...]) -> tuple:
    d = draw(st.sampled_from(ndims))
    groups = draw(st.integers(1, 3))
    cg = draw(st.integers(1, 2))
    og = draw(st.integers(1, 2))
    n = draw(st.integers(0, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(d))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(d))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(d))
    mode = draw(st.sampled_from(PADDING_MODES))
    form = draw(st.sampled_from(["int", "pairs", "same", "valid"]))
    if form == "int":
        padding: object = draw(st.integers(0, 3))
    elif form == "pairs":
        padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(d))
    else:
        padding = form
    # big enough for the dilated kernel even without padding
    size = tuple(
        draw(st.integers((k - 1) * dl + 1, (k - 1) * dl + 5))
        for k, dl in zip(kernel, dilation, strict=True)
    )
    with_bias = draw(st.booleans())
    kwargs = dict(
        stride=stride, dilation=dilation, padding=padding, padding_mode=mode, groups=groups
    )
    return (n, groups * cg, *size), (groups * og, cg, *kernel), with_bias, kwargs


def _draw_arrays(call: tuple, dtype: str, seed: int = 0) -> tuple:
    x_shape, w_shape, with_bias, kwargs = call
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if with_bias else None
    return x, w, b, kwargs


PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@example(  # every output sample reads padding: exact zeros, held to rounding noise
    call=(
        (1, 1, 1, 1),
        (1, 1, 1, 1),
        False,
        dict(stride=(1, 2), dilation=(1, 1), padding=1, padding_mode="zeros", groups=1),
    ),
    dtype="float32",
    method="fft",
)
@given(
    call=conv_calls(ndims=(1, 2, 3)),
    dtype=st.sampled_from(["float32", "float64"]),
    method=st.sampled_from(["direct", "fft"]),
)
def test_random_calls_match_torch(backend: str, call: tuple, dtype: str, method: str) -> None:
    x, w, b, kwargs = _draw_arrays(call, dtype)
    y = ck.conv(x, w, b, method=method, backend=backend, **kwargs)
    assert y.dtype == np.dtype(dtype)
    assert_close(y, torch_reference(x, w, b, **kwargs), dtype, method=method)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(call=conv_calls(ndims=(4,)), method=st.sampled_from(["direct", "fft"]))
def test_random_4d_calls_match_the_formula(backend: str, call: tuple, method: str) -> None:
    x, w, b, kwargs = _draw_arrays(call, "float64")
    y = ck.conv(x, w, b, method=method, backend=backend, **kwargs)
    assert_close(y, reference_conv(x, w, b, **kwargs), method=method)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("x_shape", "w_shape", "kwargs"),
    [
        ((4, 16, 32), (8, 16, 5), dict(padding=2, stride=2)),
        ((2, 8, 20, 24), (16, 8, 3, 3), dict(padding="same", padding_mode="reflect")),
        ((2, 8, 20, 24), (8, 1, 5, 5), dict(padding=2, groups=8, padding_mode="circular")),
        ((1, 4, 9, 10, 11), (6, 2, 3, 3, 3), dict(padding=1, groups=2, dilation=(1, 2, 1))),
        ((1, 3, 12, 12), (4, 3, 3, 3), dict(padding=15, padding_mode="reflect")),  # wider than x
    ],
)
def test_layer_sized_calls_match_torch(backend: str, x_shape, w_shape, kwargs, dtype: str) -> None:
    x, w, b, _ = _draw_arrays((x_shape, w_shape, True, kwargs), dtype, seed=3)
    y = ck.conv(x, w, b, backend=backend, **kwargs)
    assert_close(y, torch_reference(x, w, b, **kwargs), dtype)


def test_reference_conv_is_itself_right() -> None:
    """The formula, checked by hand and against scipy on cases small enough to reason about."""
    scipy_signal = pytest.importorskip("scipy.signal", reason="scipy is the reference here")
    # one channel, valid: cross-correlation as scipy defines it
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 7))
    k = rng.standard_normal((3, 2))
    got = reference_conv(x[None, None], k[None, None])[0, 0]
    np.testing.assert_allclose(
        got, scipy_signal.correlate(x, k, mode="valid"), rtol=1e-13, atol=1e-13
    )
    # by hand: stride 2, dilation 2, bias, two groups
    x = np.arange(1.0, 9.0).reshape(2, 4)  # unbatched, 2 channels of 4 samples
    w = np.array([[[1.0, 10.0]], [[2.0, 0.0]]])  # groups=2, one input channel each
    y = reference_conv(x, w, np.array([0.5, -1.0]), groups=2, dilation=2)
    # channel 0: 1*x0[i] + 10*x0[i+2]; channel 1: 2*x1[i] - 1
    assert y.tolist() == [[0.5 + 1 + 30, 0.5 + 2 + 40], [2 * 5 - 1, 2 * 6 - 1]]
