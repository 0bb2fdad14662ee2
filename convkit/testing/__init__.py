"""Tools for testing convkit backends, the built-in ones and third-party ones alike.

- :func:`reference_conv`: the layer operation written straight from its formula, as
  plain loops over output positions, in float64/complex128. Slow; for small tests.
- :func:`assert_close`: compare a result with a reference, with tolerances relative to
  the largest magnitude of the reference.
- :func:`rounding_bound`: how far two correct float computations of the same sums may
  differ from rounding alone, for comparing results of different code paths (another
  backend, another BLAS kernel) that are equal in exact arithmetic.
- :func:`check_grads`: check a backend's ``conv_vjp`` against finite differences of its
  own ``conv``, like autograd's ``check_grads``.
- :class:`convkit.testing.conformance.BackendConformance`: the conformance suite. A
  backend's own tests subclass it and provide a ``backend`` fixture::

      import pytest
      from convkit.testing.conformance import BackendConformance

      class TestMyBackend(BackendConformance):
          @pytest.fixture
          def backend(self):
              return "mybackend"
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from convkit import dtypes
from convkit.spec import ConvSpec

_NUMPY_PAD_MODE = {
    "zeros": "constant",
    "reflect": "reflect",
    "symmetric": "symmetric",
    "replicate": "edge",
    "circular": "wrap",
}

TOLERANCE = dtypes.TOLERANCE
"""Largest allowed ``max|actual - expected| / max|expected|`` per result dtype (an
all-zero expected output is compared absolutely)."""

FFT_TOLERANCE = {"float32": 1e-4, "complex64": 1e-4, "float64": 1e-10, "complex128": 1e-10}
"""The same for results of the FFT method (see ``docs/signal.md``)."""


def reference_conv(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Any = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """``h[n, o, i] = b[o] + sum_c sum_a w[o, c, a] * xpad[n, g*Cg + c, i*s + a*dil]``.

    Loops over every output position; padding is done by ``numpy.pad``. Computes in
    float64 (complex128 for complex input).

    >>> reference_conv(np.array([[1.0, 2.0, 3.0]]), np.array([[[1.0, -1.0]]]))
    array([[-1., -1.]])
    """
    x = np.asarray(x)
    weight = np.asarray(weight)
    batched = x.ndim == weight.ndim
    if not batched:
        x = x[None]
    spec = ConvSpec.build(
        x.shape,
        weight.shape,
        None if bias is None else np.shape(bias),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    wide = np.complex128 if np.iscomplexobj(x) or np.iscomplexobj(weight) else np.float64
    width = [(0, 0), (0, 0), *spec.padding]
    xpad = np.pad(x.astype(wide), width, mode=_NUMPY_PAD_MODE[spec.padding_mode])  # type: ignore[call-overload]
    w = weight.astype(wide)
    cg = spec.in_channels // spec.groups
    og = spec.out_channels // spec.groups
    out = np.zeros(spec.output_shape, dtype=wide)
    taps = list(itertools.product(*(range(k) for k in spec.kernel_size)))
    for n in range(spec.batch):
        for o in range(spec.out_channels):
            g = o // og
            for i in itertools.product(*(range(s) for s in spec.output_size)):
                total = wide(0) if bias is None else wide(bias[o])
                for c in range(cg):
                    for a in taps:
                        pos = tuple(
                            ii * st + aa * dl
                            for ii, aa, st, dl in zip(i, a, spec.stride, spec.dilation, strict=True)
                        )
                        total += w[(o, c, *a)] * xpad[(n, g * cg + c, *pos)]
                out[(n, o, *i)] = total
    return out if batched else out[0]


def assert_close(
    actual: Any, expected: np.ndarray, dtype: str | None = None, *, method: str = "direct"
) -> None:
    """Assert ``max|actual - expected| <= tol * max|expected|``, ``tol`` from
    :data:`TOLERANCE` (:data:`FFT_TOLERANCE` for ``method="fft"``) for ``dtype``
    (default: the dtype of ``actual``).

    >>> assert_close(np.float32([1.0, 2.0]), np.array([1.0, 2.0 + 1e-6]))
    """
    a = np.asarray(actual)
    e = np.asarray(expected)
    if a.shape != e.shape:
        raise AssertionError(f"shape {a.shape} != expected {e.shape}")
    name = dtype or str(a.dtype)
    tol = (FFT_TOLERANCE if method == "fft" else TOLERANCE)[name]
    # relative to max|expected|; an output of exact zeros (all padding, say) is held to
    # rounding noise of order 1 instead
    scale = float(np.max(np.abs(e))) if e.size else 0.0
    scale = scale if scale > 0 else 1.0
    err = float(np.max(np.abs(a - e))) if e.size else 0.0
    if err > tol * scale:
        raise AssertionError(
            f"max abs error {err:.3g} exceeds {tol:g} * max|expected| = {tol * scale:.3g} "
            f"(dtype {name})"
        )


def rounding_bound(dtype: Any, scale: float, terms: int) -> float:
    """The most two computations of the same sums of ``terms`` products each can differ
    by from rounding alone, in ``dtype``, when they add the products in different orders
    or with fused multiply-adds (another backend; a BLAS kernel that computes the edge of
    a matrix with other instructions than its middle): ``2 * terms * eps * scale``.

    ``scale`` bounds the sums of the products' magnitudes, ``sum |w| |x|``; for a direct
    convolution that is ``max(conv(|x|, |w|))``. Each computation is within
    ``terms * eps / 2 * scale`` of the exact sum (to first order), so two are within
    ``terms * eps * scale`` of each other; the factor 2 is margin. The FFT method's
    errors are of another kind (see :data:`FFT_TOLERANCE`).

    >>> rounding_bound("float64", 1.0, 8) == 16 * float(np.finfo(np.float64).eps)
    True
    """
    eps = float(np.finfo(np.dtype(dtype)).eps)
    return 2.0 * max(int(terms), 1) * eps * float(scale)


def check_grads(
    backend: str,
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    *,
    bias: bool = True,
    step: float = 1e-3,
    rtol: float = 1e-6,
    seed: int = 0,
    native: Callable[[Any], Any] | None = None,
    host: Callable[[Any], np.ndarray] = np.asarray,
    **kwargs: Any,
) -> None:
    """Check ``conv_vjp`` against central finite differences of ``conv`` on ``backend``.

    For random ``grad_out = v`` and random directions ``d``, the vector-Jacobian product
    must satisfy ``<grad_x, d> = <v, (conv(x + step d) - conv(x - step d)) / 2 step>``,
    and likewise for the weight and bias. Computes in float64; raises ``AssertionError``
    with the two numbers when they differ by more than ``rtol`` relative to their size.
    ``native`` turns each NumPy argument into the array type the calls take (default:
    NumPy as it is), ``host`` turns results back into NumPy.

    >>> check_grads("numpy", (2, 3, 7), (4, 3, 3), stride=2, padding=1, padding_mode="reflect")
    """
    import convkit as ck

    rng = np.random.default_rng(seed)
    x = rng.standard_normal(tuple(x_shape))
    w = rng.standard_normal(tuple(w_shape))
    b = rng.standard_normal(w_shape[0]) if bias else None

    def to(a: Any) -> Any:
        return a if native is None or a is None else native(a)

    def f(xx: np.ndarray, ww: np.ndarray, bb: np.ndarray | None) -> np.ndarray:
        return host(ck.conv(to(xx), to(ww), to(bb), backend=backend, method="direct", **kwargs))

    y = f(x, w, b)
    v = rng.standard_normal(y.shape)
    native_grads = ck.conv_vjp(to(x), to(w), to(v), bias=bias, backend=backend, **kwargs)
    grads = [None if g is None else host(g) for g in native_grads]
    args: list[Any] = [x, w, b]
    for k, name in enumerate(("x", "weight", "bias")):
        if args[k] is None:
            if grads[k] is not None:
                raise AssertionError(f"grad_{name} should be None without a bias")
            continue
        direction = rng.standard_normal(np.shape(args[k]))
        plus, minus = list(args), list(args)
        plus[k] = args[k] + step * direction
        minus[k] = args[k] - step * direction
        numeric = float(np.sum(v * (f(*plus) - f(*minus)))) / (2 * step)
        analytic = float(np.sum(np.asarray(grads[k]) * direction))
        scale = max(1.0, abs(numeric), abs(analytic))
        if abs(numeric - analytic) > rtol * scale:
            raise AssertionError(
                f"grad_{name} on backend {backend!r}: <grad, d> = {analytic!r} but finite "
                f"differences give {numeric!r}"
            )
