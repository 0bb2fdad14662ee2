"""convolve / correlate against SciPy and torchaudio, their algebra, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convkit as ck
from convkit.signalspec import SignalSpec

METHODS = ["direct", "fft"]
ATOL = {"float32": 1e-4, "float64": 1e-10, "complex128": 1e-10}  # relative to max|y|


def _random(shape, dtype, rng):
    if dtype == "int64":
        return rng.integers(-50, 50, size=shape)
    a = rng.standard_normal(shape)
    if dtype.startswith("complex"):
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


def _check(y, expected, dtype):
    assert y.shape == expected.shape
    assert y.dtype == np.result_type(expected.dtype, dtype) or y.dtype == np.dtype(dtype)
    if dtype == "int64":
        np.testing.assert_array_equal(y, expected)
        return
    scale = max(float(np.max(np.abs(expected))), 1e-300)
    assert float(np.max(np.abs(y - expected))) <= ATOL[dtype] * scale


SHAPES = [
    ((13,), (4,)),  # odd and even
    ((8,), (11,)),  # in2 larger than in1
    ((9, 6), (3, 4)),
    ((4, 7), (6, 9)),  # in2 larger in every dimension: 'valid' swaps
    ((5, 4, 6), (2, 3, 3)),
    ((4, 3, 5, 4), (2, 2, 3, 2)),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "complex128", "int64"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize(("s1", "s2"), SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_scipy(backend: str, s1, s2, mode: str, dtype: str, method: str) -> None:
    rng = np.random.default_rng(len(s1) + len(s2))
    a, b = _random(s1, dtype, rng), _random(s2, dtype, rng)
    _check(
        ck.convolve(a, b, mode, method=method, backend=backend),
        scipy.signal.convolve(a, b, mode, method="direct"),
        dtype,
    )
    _check(
        ck.correlate(a, b, mode, method=method, backend=backend),
        scipy.signal.correlate(a, b, mode, method="direct"),
        dtype,
    )


AXES_CASES = [
    ((3, 2, 40), (1, 1, 7), 2),  # a batch of signals, one kernel
    ((3, 2, 40), (1, 2, 7), -1),  # one kernel per channel
    ((1, 2, 40), (4, 1, 9), [2]),  # one signal per channel, four kernels
    ((3, 2, 40), (3, 2, 7), 2),  # paired: a kernel per signal
    ((5, 30, 20), (5, 4, 3), (1, 2)),
    ((6, 30), (1, 5), (0, 1)),  # axis 0 has a size-1 side: broadcast, as SciPy
    ((1, 30), (6, 5), 1),  # 'same' keeps in1's size 1 on the broadcast axis, as SciPy
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize(("s1", "s2", "axes"), AXES_CASES, ids=str)
def test_axes_match_fftconvolve(backend: str, s1, s2, axes, mode: str, method: str) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(s1), rng.standard_normal(s2)
    _check(
        ck.convolve(a, b, mode, axes=axes, method=method, backend=backend),
        scipy.signal.fftconvolve(a, b, mode, axes=axes),
        "float64",
    )
    _check(
        ck.convolve(a, b, mode, axes=axes, method=method, backend=backend),
        scipy.signal.oaconvolve(a, b, mode, axes=axes),
        "float64",
    )


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_overlap_add_on_long_signals(backend: str, mode: str, dtype: str) -> None:
    rng = np.random.default_rng(1)
    a, b = _random((2, 30_000), dtype, rng), _random((1, 257), dtype, rng)
    spec = SignalSpec.build(a.shape, b.shape, mode, axes=1)
    from convkit.xpsignal import oa_blocks

    assert oa_blocks(spec), "this case should take the overlap-add path"
    expected = scipy.signal.oaconvolve(a.astype(np.float64), b.astype(np.float64), mode, axes=1)
    _check(ck.convolve(a, b, mode, axes=1, method="fft", backend=backend), expected, dtype)


def test_batched_1d_matches_torchaudio(backend: str) -> None:
    torch = pytest.importorskip("torch", reason="torchaudio is the reference here")
    AF = pytest.importorskip("torchaudio.functional", reason="torchaudio is the reference here")
    x = torch.randn(4, 3, 500, dtype=torch.float64)
    k = torch.randn(1, 3, 31, dtype=torch.float64)
    for mode in ("full", "valid"):
        expected = AF.convolve(x, k, mode=mode).numpy()
        _check(
            ck.convolve(x.numpy(), k.numpy(), mode, axes=-1, backend=backend), expected, "float64"
        )
        expected = AF.fftconvolve(x, k, mode=mode).numpy()
        _check(
            ck.convolve(x.numpy(), k.numpy(), mode, axes=-1, method="fft", backend=backend),
            expected,
            "float64",
        )


# -- algebra, on every backend -------------------------------------------------------

PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def pairs(draw: st.DrawFn):
    d = draw(st.integers(1, 3))
    s1 = tuple(draw(st.integers(1, 7)) for _ in range(d))
    s2 = tuple(draw(st.integers(1, 7)) for _ in range(d))
    dtype = draw(st.sampled_from(["float64", "complex128", "int64"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return _random(s1, dtype, rng), _random(s2, dtype, rng), dtype


def _close(x, y, dtype):
    if dtype == "int64":
        np.testing.assert_array_equal(x, y)
    else:
        np.testing.assert_allclose(
            x, y, rtol=1e-10, atol=1e-10 * max(1.0, float(np.max(np.abs(y))))
        )


@PROPERTY
@given(pair=pairs(), method=st.sampled_from(METHODS))
def test_convolution_commutes(backend: str, pair, method: str) -> None:
    f, g, dtype = pair
    _close(
        ck.convolve(f, g, method=method, backend=backend),
        ck.convolve(g, f, method=method, backend=backend),
        dtype,
    )


@PROPERTY
@given(pair=pairs(), method=st.sampled_from(METHODS))
def test_correlation_is_convolution_with_reversed_conjugate(
    backend: str, pair, method: str
) -> None:
    f, g, dtype = pair
    _close(
        ck.correlate(f, g, method=method, backend=backend),
        ck.convolve(f, np.conj(np.flip(g)), method=method, backend=backend),
        dtype,
    )


@PROPERTY
@given(pair=pairs(), method=st.sampled_from(METHODS))
def test_correlation_does_not_commute_but_reverses(backend: str, pair, method: str) -> None:
    f, g, dtype = pair
    _close(
        ck.correlate(g, f, method=method, backend=backend),
        np.conj(np.flip(ck.correlate(f, g, method=method, backend=backend))),
        dtype,
    )


def test_correlation_is_not_commutative_on_an_example(backend: str) -> None:
    f, g = np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.5])
    assert not np.allclose(ck.correlate(f, g, backend=backend), ck.correlate(g, f, backend=backend))


# -- accuracy of the FFT path ----------------------------------------------------------


@pytest.mark.parametrize(("dtype", "bound"), [("float64", 1e-10), ("float32", 1e-4)])
@pytest.mark.parametrize(
    ("s1", "s2"), [((2**16,), (1025,)), ((256, 256), (31, 31)), ((40, 40, 40), (5, 5, 5))]
)
def test_fft_accuracy_bounds(backend: str, s1, s2, dtype: str, bound: float) -> None:
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(s1), rng.standard_normal(s2)
    reference = scipy.signal.convolve(a, b, "valid", method="direct")  # float64, direct
    y = ck.convolve(a.astype(dtype), b.astype(dtype), "valid", method="fft", backend=backend)
    assert np.max(np.abs(y - reference)) <= bound * np.max(np.abs(reference))


# -- integers ------------------------------------------------------------------------


def test_large_integers_stay_exact_on_the_direct_path() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(-(2**26), 2**26, size=300)
    b = rng.integers(-(2**26), 2**26, size=200)  # partial sums beyond 2**53
    expected = scipy.signal.convolve(a, b, method="direct")
    choice = ck.choose_method(a, b)
    assert choice.method == "direct" and choice.costs["fft"] == float("inf")
    for name in ("numpy", "scipy"):
        y = ck.convolve(a, b, backend=name)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, expected)
    assert not np.array_equal(np.round(scipy.signal.fftconvolve(a, b)).astype(np.int64), expected)


def test_backend_without_exact_integers_says_so() -> None:
    pytest.importorskip("torch", reason="the torch backend needs torch")
    a = np.full(300, 2**26)
    with pytest.raises(ValueError, match=r"backend 'torch' cannot convolve these integers exactly"):
        ck.convolve(a, a, backend="torch")


def test_small_integers_stay_integers_everywhere(backend: str) -> None:
    a, b = np.arange(10), np.array([1, -2, 1])
    for method in METHODS:
        y = ck.convolve(a, b, method=method, backend=backend)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, np.convolve(a, b))


# -- choosing the method -------------------------------------------------------------


@pytest.mark.parametrize(
    ("s1", "s2", "expected"),
    [
        ((2**20,), (1025,), "fft"),
        ((2048, 2048), (31, 31), "fft"),
        ((4096,), (3,), "direct"),
        ((64, 64), (3, 3), "direct"),
    ],
)
def test_auto_follows_the_sizes(s1, s2, expected: str) -> None:
    choice = ck.choose_method(np.ones(s1), np.ones(s2), "valid", backend="numpy")
    assert choice.method == expected, choice
    assert set(choice.costs) == {"direct", "fft"} and choice.backend == "numpy"


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "error", "match"),
    [
        (
            np.ones((3, 3)),
            np.ones(3),
            {},
            ValueError,
            r"same dimensionality; got in1.shape=\(3, 3\) and in2.shape=\(3,\)",
        ),
        (np.ones(3), np.ones(3), dict(mode="wide"), ValueError, r"mode='wide' is not a mode"),
        (np.ones(3), np.ones(3), dict(method="fast"), ValueError, r"method='fast' is not a method"),
        (
            np.ones((3, 3)),
            np.ones((3, 3)),
            dict(axes=2),
            ValueError,
            r"axis 2 is out of range for 2-d",
        ),
        (
            np.ones((3, 3)),
            np.ones((3, 3)),
            dict(axes=(1, -1)),
            ValueError,
            r"axes=\(1, -1\) repeats an axis",
        ),
        (np.ones((3, 3)), np.ones((3, 3)), dict(axes=()), ValueError, r"axes=\(\) is empty"),
        (
            np.ones((3, 5)),
            np.ones((2, 3)),
            dict(axes=1),
            ValueError,
            r"incompatible shapes for in1 and in2: \(3, 5\) and \(2, 3\)",
        ),
        (
            np.ones((3, 5)),
            np.ones((5, 3)),
            dict(mode="valid"),
            ValueError,
            r"one input must be at least as large as the other",
        ),
        (np.ones(0), np.ones(3), {}, ValueError, r"in1 is empty"),
        (np.ones(3), np.ones(3, dtype=bool), {}, TypeError, r"in2 has dtype bool"),
    ],
)
def test_bad_input(a, b, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        ck.convolve(a, b, **kwargs)


@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_conv_auto_follows_the_sizes(name: str) -> None:
    if name not in [b.name for b in ck.list_backends() if b.available]:
        pytest.skip(f"backend {name!r} is not available here")
    small = ck.choose_conv_method(
        np.ones((8, 64, 56, 56)), np.ones((64, 64, 3, 3)), padding=1, backend=name
    )
    large = ck.choose_conv_method(
        np.ones((1, 1, 2048, 2048)), np.ones((1, 1, 31, 31)), backend=name
    )
    assert (small.method, large.method) == ("direct", "fft"), (small, large)
