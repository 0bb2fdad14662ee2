"""convolve / correlate against SciPy and torchaudio, their algebra, and their errors."""

from __future__ import annotations

import warnings

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


INTEGER_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


def _extremes(dtype: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """An array of ``dtype`` made mostly of its minimum and maximum (and -1, 0, 1)."""
    info = np.iinfo(dtype)
    values = np.array([info.min, info.max, info.max, info.min, 0, 1, max(info.min, -1)], dtype)
    return np.random.default_rng(seed).choice(values, size=shape)


def _exact_on(backend: str, a: np.ndarray, b: np.ndarray, taps: int) -> bool:
    """Whether ``backend`` computes ``convolve(a, b)`` (direct) without refusing it:
    exact in float64, or by integer arithmetic of its own."""
    name = backend.split(":")[0]
    caps = next(b.capabilities for b in ck.list_backends() if b.name == name)
    magnitude = [max(abs(int(x.min())), abs(int(x.max()))) for x in (a, b)]
    small = magnitude[0] * magnitude[1] * taps < 2**53
    return caps.integer_conv or (small and "float64" in caps.dtypes)


def test_int64_minimum_is_not_an_overflowed_magnitude() -> None:
    a, b = np.array([-(2**63), 3]), np.array([1, 1])
    expected = scipy.signal.convolve(a, b, method="direct")
    assert expected.tolist() == [-(2**63), -(2**63) + 3, 3]
    y = ck.convolve(a, b)
    assert y.dtype == np.int64 and np.array_equal(y, expected)
    assert ck.choose_method(a, b).method == "direct"


@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize(("s1", "s2"), [((9,), (3,)), ((2,), (2,)), ((4, 5), (2, 3))], ids=str)
def test_integer_extremes_match_scipy_bit_for_bit(
    backend: str, dtype: str, mode: str, s1, s2
) -> None:
    """Sums at a dtype's limits wrap around as in SciPy's direct method (two's
    complement), on every path convkit may take."""
    a, b = _extremes(dtype, s1, 1), _extremes(dtype, s2, 2)
    taps = int(np.prod([min(p, q) for p, q in zip(s1, s2, strict=True)]))
    for fn, ref in ((ck.convolve, scipy.signal.convolve), (ck.correlate, scipy.signal.correlate)):
        expected = ref(a, b, mode, method="direct")
        if not _exact_on(backend, a, b, taps):
            with pytest.raises(ValueError, match="cannot convolve these integers exactly"):
                fn(a, b, mode, backend=backend)
            continue
        for method in ("auto", "direct"):
            y = fn(a, b, mode, method=method, backend=backend)
            assert y.dtype == expected.dtype and np.array_equal(y, expected), (method, y)
        if np.iinfo(dtype).bits <= 16:  # |sums| < 2**52: the FFT is exact too
            y = fn(a, b, mode, method="fft", backend=backend)
            assert y.dtype == expected.dtype and np.array_equal(y, expected), ("fft", y)


@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
def test_integers_without_a_convolved_axis_are_a_plain_product(backend: str, method: str) -> None:
    """Size-1 inputs convolve no axis: the product, exact (wrapping) in the dtype on
    every method, as SciPy's direct method (SciPy's FFT functions return ``in1 * in2``)."""
    a, b = np.array([[2**62], [-(2**63)]]), np.array([[4]])
    expected = scipy.signal.convolve(a, b, method="direct")
    assert expected.tolist() == [[0], [0]]  # 2**64 and -2**65 wrap to 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no invalid float-to-int cast on the way
        y = ck.convolve(a, b, method=method, backend=backend)
    assert y.dtype == np.int64 and np.array_equal(y, expected)


def test_inexact_integer_fft_warns() -> None:
    a = np.array([2**30, 3, -(2**30)])  # sums near 2**61: inexact in float64
    with pytest.warns(RuntimeWarning, match=r"method='fft' cannot keep these int64 inputs exact"):
        ck.convolve(a, a, method="fft")


# -- byte order ----------------------------------------------------------------------


def _swapped(a: np.ndarray) -> np.ndarray:
    """``a`` with the same values in the other byte order (big-endian here)."""
    out = a.astype(a.dtype.newbyteorder("S"))
    assert not out.dtype.isnative and np.array_equal(out, a)
    return out


BYTE_ORDER_DTYPES = ["float32", "float64", "complex64", "complex128", "int16", "int64", "uint32"]


@pytest.mark.parametrize("dtype", BYTE_ORDER_DTYPES)
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_non_native_byte_order_gives_the_native_result(
    backend: str, dtype: str, method: str
) -> None:
    rng = np.random.default_rng(5)
    if dtype.startswith(("int", "uint")):
        a, b = rng.integers(0, 50, (6, 7)).astype(dtype), rng.integers(0, 50, (3, 2)).astype(dtype)
    else:
        a, b = _random((6, 7), dtype, rng), _random((3, 2), dtype, rng)
    for fn in (ck.convolve, ck.correlate):
        expected = fn(a, b, "same", method=method, backend=backend)
        for pair in ((_swapped(a), _swapped(b)), (_swapped(a), b), (a, _swapped(b))):
            y = fn(*pair, "same", method=method, backend=backend)
            assert y.dtype == expected.dtype and y.dtype.isnative
            assert np.array_equal(y, expected)
    reference = scipy.signal.convolve(_swapped(a), _swapped(b), "same", method="direct")
    assert ck.convolve(_swapped(a), _swapped(b), "same").dtype == reference.dtype


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_native_byte_order_in_the_layer_operations(backend: str, dtype: str) -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 9)).astype(dtype)
    w = rng.standard_normal((4, 3, 3)).astype(dtype)
    bias = rng.standard_normal(4).astype(dtype)
    sx, sw, sb = _swapped(x), _swapped(w), _swapped(bias)
    y = ck.conv(x, w, bias, padding=1, backend=backend)
    got = ck.conv(sx, sw, sb, padding=1, backend=backend)
    assert got.dtype == np.dtype(dtype) and np.array_equal(got, y)
    gy = np.ones_like(y)
    expected = ck.conv_vjp(x, w, gy, padding=1, backend=backend)
    got_vjp = ck.conv_vjp(sx, sw, _swapped(gy), padding=1, backend=backend)
    for g, e in zip(got_vjp, expected, strict=True):
        assert g.dtype == np.dtype(dtype) and np.array_equal(g, e)
    expected_t = ck.conv_transpose(y, w, backend=backend)  # w: (C_in, C_out, K) here
    got_t = ck.conv_transpose(_swapped(y), sw, backend=backend)
    assert got_t.dtype == np.dtype(dtype) and np.array_equal(got_t, expected_t)


# -- SciPy's edge cases: 0-d, empty, float16, bool, NaN ---------------------------------


def test_zero_dimensional_inputs_give_their_product(backend: str) -> None:
    y = ck.convolve(np.array(1289), np.array(4567), backend=backend)
    assert np.ndim(y) == 0 and y == 1289 * 4567 and y.dtype == np.int64
    assert isinstance(y, np.generic)  # as `a * b` and SciPy: a NumPy scalar
    z = ck.correlate(np.array(2 + 1j), np.array(3j), backend=backend)
    assert z == scipy.signal.correlate(np.array(2 + 1j), np.array(3j)) == (2 + 1j) * -3j
    assert ck.convolve(1.5, 2, method="fft", backend=backend) == 3.0
    with pytest.raises(ValueError, match="same dimensionality"):
        ck.convolve(np.array(1.0), np.ones(2), backend=backend)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize(
    ("s1", "s2", "shape"),
    [((0,), (0,), (0,)), ((2,), (0,), (0,)), ((0,), (3,), (0,)), ((3, 0), (2, 2), None)],
)
def test_empty_inputs_give_an_empty_result(backend: str, mode: str, s1, s2, shape) -> None:
    a, b = np.ones(s1, dtype=np.int64), np.ones(s2)
    for method in ("auto", "direct", "fft"):
        y = ck.convolve(a, b, mode, method=method, backend=backend)
        assert y.size == 0 and y.dtype == np.float64
        if shape is not None:  # 1-d: SciPy's fftconvolve/oaconvolve result
            assert y.shape == shape == scipy.signal.fftconvolve(a, b, mode).shape
        else:  # N-d: the mode's shape, with 0 where an input is empty
            assert y.shape == {"full": (4, 0), "same": (3, 0), "valid": (2, 0)}[mode]
    with pytest.raises(ValueError, match="method='fast' is not a method"):
        ck.convolve(a, b, mode, method="fast")


@pytest.mark.parametrize("dtype", ["float16", "bool"])
@pytest.mark.parametrize("other", ["float16", "bool", "int8", "float32"])
@pytest.mark.parametrize("method", METHODS)
def test_float16_and_bool_as_scipy(backend: str, dtype: str, other: str, method: str) -> None:
    rng = np.random.default_rng(8)

    def make(d: str, shape: tuple[int, ...]) -> np.ndarray:
        if d == "bool":
            return rng.random(shape) < 0.3
        if d == "int8":
            return rng.integers(-3, 4, shape).astype(d)
        return rng.standard_normal(shape).astype(d)

    a, b = make(dtype, (7, 6)), make(other, (3, 4))
    for fn, ref in ((ck.convolve, scipy.signal.convolve), (ck.correlate, scipy.signal.correlate)):
        # SciPy's N-d direct method refuses bool and float16 ("Unsupported type"): the
        # reference is its float64 result, exact for these inputs
        exact = ref(a.astype(np.float64), b.astype(np.float64), method="direct")
        y = fn(a, b, method=method, backend=backend)
        assert y.dtype == np.result_type(a, b)
        if y.dtype == bool:  # a count of products, then nonzero is true
            assert np.array_equal(y, exact != 0)
        elif y.dtype.kind == "i":
            assert np.array_equal(y, exact.astype(y.dtype))
        else:  # computed in float32 (as SciPy's FFT does float16), rounded once
            np.testing.assert_allclose(y, exact, rtol=1e-3, atol=1e-3)
        # 1-d, SciPy's own direct result (np.convolve; float16 summed in float16)
        expected = ref(a[0], b[0], method="direct")
        y = fn(a[0], b[0], method=method, backend=backend)
        assert y.dtype == expected.dtype
        if y.dtype.kind in "bi":
            assert np.array_equal(y, expected)
        else:
            np.testing.assert_allclose(y, expected, rtol=1e-2, atol=1e-2)


def test_bool_fft_is_exact_where_scipy_is_not() -> None:
    """SciPy's FFT method casts its float result to bool without rounding, so round-off
    (~1e-16) becomes True; convkit rounds first and matches the direct method."""
    rng = np.random.default_rng(0)
    a, b = rng.random((5, 4)) < 0.4, rng.random((2, 3)) < 0.4
    exact = scipy.signal.convolve(a.astype(int), b.astype(int), method="direct") != 0
    assert np.array_equal(ck.convolve(a, b, method="fft"), exact)
    assert not np.array_equal(scipy.signal.convolve(a, b, method="fft"), exact)  # SciPy 1.17


def test_nan_with_the_fft_method_warns_as_scipy() -> None:
    a = np.ones(200)
    a[50] = np.nan
    b = np.ones(9)
    with pytest.warns(RuntimeWarning, match=r"Use of fft convolution on input with NaN or inf"):
        y = ck.convolve(a, b, method="fft")
    assert np.isnan(y).sum() > 9  # spread beyond the 9 samples the direct method touches
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = ck.convolve(a, b, method="direct")
    assert np.isnan(y).sum() == 9


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
        pytest.param(
            np.ones(3),
            np.ones(3, dtype=np.longdouble),
            {},
            TypeError,
            rf"in2 has dtype {np.dtype(np.longdouble).name}; convolve and correlate take",
            marks=pytest.mark.skipif(
                np.dtype(np.longdouble) == np.float64, reason="long double is double here"
            ),
            id="longdouble",
        ),
        (np.ones(3, dtype=object), np.ones(3), {}, TypeError, r"in1 has dtype object"),
        (np.array(1.0), np.ones(3), {}, ValueError, r"same dimensionality"),
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
    assert small.method in ("direct", "winograd") and large.method == "fft", (small, large)


def test_next_fast_len_matches_scipy_without_importing_it() -> None:
    """The FFT lengths are SciPy's (5-smooth for real transforms, 11-smooth for complex
    ones), computed without SciPy so the numpy backend never imports it."""
    import scipy.fft

    from convkit.algorithms.fft import next_fast_len

    for real in (True, False):
        for n in [*range(1, 3000), 2**20 + 1, 3**12 + 7]:
            assert next_fast_len(n, real=real) == scipy.fft.next_fast_len(n, real=real), (n, real)
