"""Run SciPy's own ``convolve``/``correlate`` tests against convkit.

The tests come from the installed SciPy (``scipy/signal/tests/test_signaltools.py``);
nothing is copied into this repository. For each test the names the SciPy module calls
(``convolve``, ``correlate``, ``fftconvolve``, ``oaconvolve`` and ``signal.*``) are
swapped for the thin wrappers below, which call :func:`convkit.convolve` and
:func:`convkit.correlate`. SciPy's tests take an array-API ``xp`` fixture from SciPy's
own conftest, which is not loaded here; this one provides it for NumPy only and honours
the ``skip_xp_backends``/``xfail_xp_backends`` markers for NumPy as SciPy's does.

The calls use convkit's default selection (``auto``); set ``CONVKIT_SCIPY_SUITE_BACKEND``
(``numpy``, ``scipy``, ``torch``, ...) to run the whole suite on one backend.
"""

from __future__ import annotations

import importlib
import os
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import scipy.signal

import convkit as ck
from convkit.signalspec import SignalSpec

SCIPY_TESTS = "scipy.signal.tests.test_signaltools"
BACKEND = os.environ.get("CONVKIT_SCIPY_SUITE_BACKEND") or None
"""The backend every call selects; ``None``: convkit's default (``auto``)."""


def convolve(in1: Any, in2: Any, mode: str = "full", method: str = "auto") -> Any:
    """``scipy.signal.convolve``, computed by convkit."""
    return ck.convolve(in1, in2, mode, method=method, backend=BACKEND)


def correlate(in1: Any, in2: Any, mode: str = "full", method: str = "auto") -> Any:
    """``scipy.signal.correlate``, computed by convkit."""
    return ck.correlate(in1, in2, mode, method=method, backend=BACKEND)


def _fft_function_dtype(y: Any, in1: Any, in2: Any, mode: str, axes: Any) -> Any:
    """``y`` in the dtype SciPy's FFT *functions* return, which differs from
    ``convolve``'s ``result_type`` (convkit's, for every method): the transform's
    floating dtype (integers and bool: float64, float16: float32) whenever an axis is
    transformed, the product's dtype when none is (0-d inputs, or size-1 axes only)."""
    transformed = SignalSpec.build(np.shape(in1), np.shape(in2), mode, axes).conv_axes
    if transformed and y.dtype.kind in "biu":
        return y.astype(np.float64)
    if transformed and y.dtype == np.float16:
        return y.astype(np.float32)
    return y


def fftconvolve(in1: Any, in2: Any, mode: str = "full", axes: Any = None) -> Any:
    """``scipy.signal.fftconvolve``: convkit's FFT method."""
    y = ck.convolve(in1, in2, mode, axes=axes, method="fft", backend=BACKEND)
    return _fft_function_dtype(y, in1, in2, mode, axes)


def oaconvolve(in1: Any, in2: Any, mode: str = "full", axes: Any = None) -> Any:
    """``scipy.signal.oaconvolve``: convkit's FFT method (it picks overlap-add itself)."""
    y = ck.convolve(in1, in2, mode, axes=axes, method="fft", backend=BACKEND)
    return _fft_function_dtype(y, in1, in2, mode, axes)


WRAPPERS = {
    "convolve": convolve,
    "correlate": correlate,
    "fftconvolve": fftconvolve,
    "oaconvolve": oaconvolve,
}


class _Signal(types.ModuleType):
    """``scipy.signal`` as the SciPy test module sees it: the wrappers, and SciPy's own
    module for every other name (so ``signal.firwin`` and ``signal._signaltools`` are
    SciPy's)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(scipy.signal, name)


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "skip_xp_backends(backends, reason=None, np_only=False, cpu_only=False, "
        "eager_only=False, exceptions=None): SciPy's array-API skip marker",
        "xfail_xp_backends(backends, reason=None, np_only=False, cpu_only=False, "
        "eager_only=False, exceptions=None): SciPy's array-API xfail marker",
        # used by other tests of the imported module; registered so it imports under
        # --strict-markers (they do not run here)
        "xfail_on_32bit: SciPy's marker for tests failing on 32-bit platforms",
        "fail_slow: SciPy's marker for a non-default slowness limit",
    ):
        config.addinivalue_line("markers", line)


REFERENCES = {"TestOAConvolve": ("fftconvolve",)}
"""Names a SciPy test class calls only to compute its expected values: they stay SciPy's
(``TestOAConvolve`` checks ``oaconvolve`` against ``fftconvolve``; with both swapped,
convkit would be compared with itself)."""


@pytest.fixture(autouse=True)
def convkit_in_scipy_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Swap the SciPy test module's ``convolve`` family for convkit's, for one test."""
    module = importlib.import_module(SCIPY_TESTS)
    keep = REFERENCES.get(request.cls.__name__ if request.cls else "", ())
    signal = _Signal("scipy.signal")
    for name, wrapper in WRAPPERS.items():
        if name in keep:
            continue
        monkeypatch.setattr(module, name, wrapper)
        setattr(signal, name, wrapper)
    monkeypatch.setattr(module, "signal", signal)
    yield


class _SessionDirs:
    """``tmp_path_factory`` whose ``mktemp(name)`` gives one directory per name for the
    whole session. ``tests/conftest.py``'s autouse ``clean_selection`` makes a cache and
    a working directory per test; for these ~11,600 tests that is ~23,000 directories,
    and pytest's later clean-up of them took longer than the tests. The tests here only
    read the (empty) cache and the (config-free) working directory, so sharing is safe."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self._made: dict[str, Any] = {}

    def mktemp(self, basename: str, numbered: bool = True) -> Any:
        if basename not in self._made:
            self._made[basename] = self._factory.mktemp(basename, numbered)
        return self._made[basename]

    def getbasetemp(self) -> Any:
        return self._factory.getbasetemp()


@pytest.fixture(scope="session")
def tmp_path_factory(tmp_path_factory: pytest.TempPathFactory) -> _SessionDirs:
    """The session's ``tmp_path_factory``, with one directory per name (see above)."""
    return _SessionDirs(tmp_path_factory)


def _skip_or_xfail(request: pytest.FixtureRequest, what: str) -> None:
    """Apply SciPy's ``{what}_xp_backends`` markers to NumPy: only markers naming
    ``numpy`` apply (``np_only``/``cpu_only`` never exclude NumPy)."""
    for marker in request.node.iter_markers(f"{what}_xp_backends"):
        backends = marker.args or marker.kwargs.get("backends", ())
        if isinstance(backends, str):
            backends = (backends,)
        if "numpy" in backends:
            reason = marker.kwargs.get("reason") or f"SciPy marks numpy {what}"
            getattr(pytest, what)(reason=reason)


@pytest.fixture
def xp(request: pytest.FixtureRequest) -> Any:
    """SciPy's ``xp`` fixture, for NumPy alone (SciPy's own namespace wrapper)."""
    from scipy._lib._array_api import array_namespace

    _skip_or_xfail(request, "skip")
    _skip_or_xfail(request, "xfail")
    return array_namespace(np.empty(0))
