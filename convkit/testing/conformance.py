"""The backend conformance suite.

Every built-in backend runs it, and so can a third-party one: subclass
:class:`BackendConformance` in your tests and provide a ``backend`` fixture that returns
the backend selection string (``"mybackend"``, or ``"torch:cuda"`` with a device)::

    class TestMine(BackendConformance):
        @pytest.fixture
        def backend(self):
            return "mine"

A backend of its own array type (a library without NumPy arrays) also overrides the
``native`` fixture (a function turning a NumPy array into one of its arrays) and the
``host`` fixture (one turning a result back into NumPy): the suite then hands every
call native arrays and checks that the results are native too.

Each result is compared with :func:`convkit.testing.reference_conv`, the formula written
as plain loops. Cases that need a capability the backend does not declare (a dtype, a
number of spatial dims, groups, dilation, a padding mode) are skipped with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import convkit as ck
from convkit import plugins
from convkit.backend import Backend
from convkit.padding import PADDING_MODES, canonical_padding_mode
from convkit.selection import parse_backend
from convkit.testing import assert_close, reference_conv


@dataclass(frozen=True)
class Case:
    """One conv call: shapes and keyword arguments."""

    id: str
    x: tuple[int, ...]
    w: tuple[int, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    bias: bool = True


CASES = [
    Case("1d", (2, 3, 11), (4, 3, 3)),
    Case("1d-stride-dilation-pad", (2, 2, 13), (3, 2, 3), dict(stride=2, dilation=2, padding=3)),
    Case("1d-kernel-1", (2, 5, 7), (3, 5, 1), bias=False),
    Case("2d", (2, 3, 8, 7), (4, 3, 3, 2)),
    Case(
        "2d-same-stride-dilation",
        (1, 2, 9, 10),
        (3, 2, 3, 3),
        dict(padding="same", stride=2, dilation=2),
    ),
    Case("2d-same-even-kernel", (1, 2, 6, 7), (2, 2, 4, 2), dict(padding="same")),
    Case("2d-pairs", (2, 2, 5, 6), (2, 2, 2, 3), dict(padding=((1, 0), (2, 3)), stride=(1, 2))),
    Case("2d-valid-full-kernel", (2, 3, 4, 5), (2, 3, 4, 5), dict(padding="valid")),
    Case("2d-groups", (2, 4, 6, 6), (6, 2, 3, 3), dict(groups=2, padding=1)),
    Case("2d-depthwise", (2, 4, 7, 6), (8, 1, 3, 3), dict(groups=4, padding=(1, 2))),
    Case("3d", (1, 2, 5, 6, 4), (3, 2, 2, 3, 2), dict(stride=(2, 1, 1), padding=1)),
    Case(
        "4d",
        (1, 2, 5, 4, 4, 5),
        (3, 2, 2, 3, 1, 2),
        dict(stride=(1, 2, 1, 2), dilation=(2, 1, 1, 1), padding=1),
    ),
    Case("4d-groups", (2, 4, 3, 4, 3, 3), (2, 2, 2, 2, 2, 2), dict(groups=2)),
    Case("5d", (1, 1, 3, 3, 3, 3, 4), (2, 1, 2, 1, 2, 2, 3), dict(padding="same")),
]


def _backend(selection: str) -> Backend:
    name, _ = parse_backend(selection, "the conformance fixture")
    found = plugins.host().registry.get(name)
    if found is None:
        pytest.fail(
            f"backend {name!r} is not registered; registered: {plugins.host().registry.names()}"
        )
    return found


def _require(backend: Backend, ndim: int = 1, dtype: str = "float64", kwargs: Any = None) -> None:
    caps = backend.capabilities
    kwargs = kwargs or {}
    if not caps.supports_ndim(ndim):
        pytest.skip(f"backend {backend.name!r} declares {caps.describe_ndim()} spatial dims")
    if dtype not in caps.dtypes:
        pytest.skip(f"backend {backend.name!r} declares no {dtype} support")
    if kwargs.get("groups", 1) > 1 and not caps.groups:
        pytest.skip(f"backend {backend.name!r} declares no groups support")
    dil = kwargs.get("dilation", 1)
    if (dil > 1 if isinstance(dil, int) else max(dil) > 1) and not caps.dilation:
        pytest.skip(f"backend {backend.name!r} declares no dilation support")
    mode = canonical_padding_mode(kwargs.get("padding_mode", "zeros"))
    if mode not in caps.padding_modes:
        pytest.skip(f"backend {backend.name!r} declares no padding_mode={mode!r}")


def _random(shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> np.ndarray:
    a = rng.standard_normal(shape)
    if dtype.startswith("complex"):
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


def _arrays(
    case: Case, dtype: str, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    x = _random(case.x, dtype, rng)
    w = _random(case.w, dtype, rng)
    b = _random((case.w[0],), dtype, rng) if case.bias else None
    return x, w, b


def _numpy(a: Any) -> Any:
    return a


class _Arrays:
    """The arrays the suite hands to the backend: NumPy by default."""

    @pytest.fixture
    def native(self) -> Any:
        """A NumPy array (or ``None``) as the array the calls take."""
        return _numpy

    @pytest.fixture
    def host(self) -> Any:
        """A result as a NumPy array."""
        return np.asarray


class _ConvConformance(_Arrays):
    """``conv`` against the formula, on one backend."""

    @pytest.mark.parametrize("method", ["direct", "fft"])
    @pytest.mark.parametrize("dtype", ["float32", "float64", "complex128"])
    @pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
    def test_matches_reference(
        self, backend: str, case: Case, dtype: str, method: str, native: Any, host: Any
    ) -> None:
        _require(_backend(backend), len(case.x) - 2, dtype, case.kwargs)
        x, w, b = _arrays(case, dtype)
        xn = native(x)
        y = ck.conv(xn, native(w), native(b), method=method, backend=backend, **case.kwargs)
        assert type(y) is type(xn)
        y = host(y)
        assert y.dtype == np.dtype(dtype)
        assert_close(y, reference_conv(x, w, b, **case.kwargs), dtype, method=method)

    @pytest.mark.parametrize("dtype", ["float32", "float64", "complex128"])
    @pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
    def test_winograd_matches_reference(
        self, backend: str, case: Case, dtype: str, native: Any, host: Any
    ) -> None:
        """``method="winograd"``, where the backend declares it and the call is one it
        applies to (3-tap kernels, stride 1, dilation 1), within the same tolerance."""
        from convkit.algorithms import winograd
        from convkit.spec import ConvSpec

        be = _backend(backend)
        if "winograd" not in be.capabilities.conv_methods:
            pytest.skip(f"backend {backend!r} does not declare the winograd method")
        _require(be, len(case.x) - 2, dtype, case.kwargs)
        if not winograd.applies(ConvSpec.build(case.x, case.w, **case.kwargs)):
            pytest.skip("winograd needs 3-tap kernels, stride 1 and dilation 1 in 1-2 dims")
        x, w, b = _arrays(case, dtype)
        y = host(
            ck.conv(
                native(x), native(w), native(b), method="winograd", backend=backend, **case.kwargs
            )
        )
        assert y.dtype == np.dtype(dtype)
        assert_close(y, reference_conv(x, w, b, **case.kwargs), dtype)

    @pytest.mark.parametrize("method", ["direct", "fft"])
    @pytest.mark.parametrize("mode", PADDING_MODES)
    def test_every_method_pads_every_mode(
        self, backend: str, mode: str, method: str, native: Any, host: Any
    ) -> None:
        kwargs: dict[str, Any] = dict(padding=((4, 1), (0, 6)), padding_mode=mode, stride=(2, 1))
        _require(_backend(backend), 2, "float64", kwargs)
        x, w, b = _arrays(Case("m", (2, 2, 5, 4), (3, 2, 3, 2)), "float64")
        y = host(ck.conv(native(x), native(w), native(b), method=method, backend=backend, **kwargs))
        assert_close(y, reference_conv(x, w, b, **kwargs), method=method)

    @pytest.mark.parametrize("ndim", [1, 2, 3, 4])
    @pytest.mark.parametrize("mode", PADDING_MODES)
    def test_padding_modes_any_width(
        self, backend: str, mode: str, ndim: int, native: Any, host: Any
    ) -> None:
        # widths up to twice the input size: the pattern keeps repeating, as numpy.pad
        kwargs: dict[str, Any] = dict(
            padding_mode=mode, padding=[(3, 5), (1, 0), (0, 2), (4, 1)][:ndim]
        )
        _require(_backend(backend), ndim, "float64", kwargs)
        shape = (2, 3, 3, 2, 2)[:ndim]
        case = Case(f"{mode}-{ndim}d", (1, 2, *shape), (2, 2, *(2,) * ndim), kwargs)
        x, w, b = _arrays(case, "float64", seed=ndim)
        y = host(ck.conv(native(x), native(w), native(b), backend=backend, **kwargs))
        assert_close(y, reference_conv(x, w, b, **kwargs))

    @pytest.mark.parametrize("alias", ["constant", "edge", "nearest", "wrap", "mirror"])
    def test_padding_mode_aliases(self, backend: str, alias: str, native: Any, host: Any) -> None:
        _require(_backend(backend), kwargs={"padding_mode": alias})
        x, w, b = _arrays(Case("alias", (1, 2, 6), (2, 2, 3)), "float64")
        xn, wn, bn = native(x), native(w), native(b)
        y = host(ck.conv(xn, wn, bn, padding=2, padding_mode=alias, backend=backend))
        assert_close(y, reference_conv(x, w, b, padding=2, padding_mode=alias))

    def test_unbatched(self, backend: str, native: Any, host: Any) -> None:
        _require(_backend(backend), 2)
        x, w, b = _arrays(Case("u", (1, 3, 6, 5), (2, 3, 3, 3)), "float64")
        y = host(ck.conv(native(x[0]), native(w), native(b), padding=1, backend=backend))
        assert y.shape == (2, 6, 5)
        assert_close(y, reference_conv(x, w, b, padding=1)[0])

    def test_noncontiguous_inputs(self, backend: str, native: Any, host: Any) -> None:
        _require(_backend(backend), 2)
        rng = np.random.default_rng(1)
        x = rng.standard_normal((7, 4, 3, 2)).transpose(3, 2, 0, 1)  # (2, 3, 7, 4), F-order
        w = rng.standard_normal((3, 3, 6, 4))[:, :, ::2, ::-2]  # strided and reversed
        b = rng.standard_normal(6)[::2]
        assert not (x.flags.c_contiguous or w.flags.c_contiguous or b.flags.c_contiguous)
        y = host(ck.conv(native(x), native(w), native(b), padding=1, backend=backend))
        assert_close(y, reference_conv(x, w, b, padding=1))

    def test_zero_size_batch(self, backend: str, native: Any, host: Any) -> None:
        _require(_backend(backend), 2)
        x = np.zeros((0, 3, 5, 5))
        w = np.ones((2, 3, 3, 3))
        y = host(ck.conv(native(x), native(w), padding="same", backend=backend))
        assert y.shape == (0, 2, 5, 5)

    def test_mixed_precision_promotes(self, backend: str, native: Any, host: Any) -> None:
        _require(_backend(backend), 1, "float64")
        x, w, b = _arrays(Case("mix", (1, 2, 9), (3, 2, 4)), "float32")
        y = host(ck.conv(native(x), native(w.astype(np.float64)), native(b), backend=backend))
        assert y.dtype == np.float64
        assert_close(y, reference_conv(x, w, b), "float32")

    def test_unsupported_dtype_is_a_clear_error(self, backend: str, native: Any) -> None:
        be = _backend(backend)
        missing = [d for d in ("complex64", "complex128") if d not in be.capabilities.dtypes]
        if not missing:
            pytest.skip(f"backend {be.name!r} supports every dtype convkit knows")
        x = np.ones((1, 1, 4), dtype=missing[0])
        with pytest.raises(TypeError, match=f"{be.name}.*{missing[0]}"):
            ck.conv(native(x), native(x[:, :, :2]), backend=backend)

    def test_native_arrays_round_trip(self, backend: str, native: Any) -> None:
        be = _backend(backend)
        _require(be, 2, "float32")
        _, options = parse_backend(backend, "the conformance fixture")
        x, w, b = _arrays(Case("native", (2, 2, 6, 6), (3, 2, 3, 3)), "float32")
        if native is _numpy:
            xn = be.asarray(x, "float32", options)
            wn = be.asarray(w, "float32", options)
        else:  # a backend of many libraries: arrays of the one the suite runs on
            xn, wn = native(x), native(w)
        if not be.owns(xn):
            pytest.skip(f"backend {be.name!r} computes on another backend's arrays")
        y = ck.conv(xn, wn, b, stride=2, backend=backend)
        assert be.owns(y), f"expected the backend's own array type, got {type(y)}"
        assert_close(be.to_numpy(y), reference_conv(x, w, b, stride=2), "float32")


SIGNAL_CASES = [
    ((13,), (4,), None),
    ((6, 9), (4, 3), None),
    ((3, 40), (1, 7), 1),
    ((2, 5, 6, 5), (1, 3, 2, 3), (1, 2, 3)),
]


class SignalConformance(_Arrays):
    """``convolve``, ``correlate``, ``conv_vjp`` and ``conv_transpose`` on one backend,
    against SciPy and convkit's own reference; mixed into :class:`BackendConformance`."""

    @pytest.mark.parametrize("method", ["direct", "fft"])
    @pytest.mark.parametrize("mode", ["full", "same", "valid"])
    @pytest.mark.parametrize("case", SIGNAL_CASES, ids=lambda c: f"{c[0]}*{c[1]}")
    def test_convolve_and_correlate_match_scipy(
        self, backend: str, case: Any, mode: str, method: str, native: Any, host: Any
    ) -> None:
        import scipy.signal

        from convkit.signalspec import SignalSpec

        s1, s2, axes = case
        be = _backend(backend)
        conv_dims = len(SignalSpec.build(s1, s2, mode, axes).conv_axes)
        _require(be, conv_dims if method == "direct" else 1, "float32")
        dtype = "float64" if "float64" in be.capabilities.dtypes else "float32"
        rng = np.random.default_rng(5)
        a, b = rng.standard_normal(s1).astype(dtype), rng.standard_normal(s2).astype(dtype)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        flipped = np.flip(b64, axis=axes) if axes is not None else np.flip(b64)
        for op, reference in (
            (ck.convolve, scipy.signal.fftconvolve(a64, b64, mode, axes=axes)),
            (ck.correlate, scipy.signal.fftconvolve(a64, flipped, mode, axes=axes)),
        ):
            y = op(native(a), native(b), mode, axes=axes, method=method, backend=backend)
            assert_close(host(y), reference, dtype, method="fft")

    @pytest.mark.parametrize("method", ["direct", "fft", "auto"])
    def test_integers_stay_exact_or_are_refused(
        self, backend: str, method: str, native: Any, host: Any
    ) -> None:
        import scipy.signal

        _require(_backend(backend))
        a = np.arange(4001, 4101, dtype=np.int32)
        b = np.arange(4099, 4199, dtype=np.int32)
        expected = scipy.signal.convolve(a.astype(np.int64), b.astype(np.int64), method="direct")
        try:
            y = ck.convolve(native(a), native(b), method=method, backend=backend)
        except ValueError as exc:  # a clear refusal is allowed; a wrong answer is not
            assert "exact" in str(exc)
            return
        np.testing.assert_array_equal(host(y), expected)

    def test_gradients_match_finite_differences(self, backend: str, native: Any, host: Any) -> None:
        from convkit.testing import check_grads

        be = _backend(backend)
        _require(be, 2, "float64")
        check_grads(
            backend,
            (2, 2, 7, 6),
            (3, 2, 3, 2),
            stride=2,
            padding=1,
            padding_mode="reflect" if "reflect" in be.capabilities.padding_modes else "zeros",
            native=native,
            host=host,
        )

    def test_conv_transpose_is_the_adjoint_of_conv(
        self, backend: str, native: Any, host: Any
    ) -> None:
        be = _backend(backend)
        _require(be, 2, "float64")
        rng = np.random.default_rng(6)
        x, w = rng.standard_normal((2, 2, 9, 8)), rng.standard_normal((3, 2, 3, 2))
        y = host(ck.conv(native(x), native(w), stride=2, padding=1, backend=backend))
        v = rng.standard_normal(y.shape)
        xt = host(ck.conv_transpose(native(v), native(w), stride=2, padding=1, backend=backend))
        assert xt.shape == x.shape
        np.testing.assert_allclose(np.sum(y * v), np.sum(x * xt), rtol=1e-9)


class BackendConformance(_ConvConformance, SignalConformance):
    """The whole conformance suite for one backend; a ``backend`` fixture (yours) names
    it."""
