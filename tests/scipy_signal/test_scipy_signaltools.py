"""SciPy's ``convolve``/``correlate`` test classes, run against convkit (see conftest).

Only these classes are collected: the 2-d ``convolve2d``/``correlate2d`` ones and the
rest of SciPy's module test other functions.
"""

import pytest

_scipy_tests = pytest.importorskip(
    "scipy.signal.tests.test_signaltools",
    reason="this SciPy was installed without its test suite (scipy/signal/tests)",
)

TestConvolve = _scipy_tests.TestConvolve
TestFFTConvolve = _scipy_tests.TestFFTConvolve
TestOAConvolve = _scipy_tests.TestOAConvolve
TestCorrelateReal = _scipy_tests.TestCorrelateReal
TestCorrelate = _scipy_tests.TestCorrelate
TestCorrelateComplex = _scipy_tests.TestCorrelateComplex
