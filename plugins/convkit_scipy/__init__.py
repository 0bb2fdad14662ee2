"""The SciPy backend: ``scipy.signal`` for convolution, ``scipy.fft`` for the FFT paths."""

from __future__ import annotations

import contextlib
import functools
import sys
import types
from collections.abc import Mapping
from typing import Any

import numpy as np

import convkit
from convkit.backend import Backend, Capabilities, NumpyArrays
from convkit.costs import CostModel
from convkit.registry import BackendRegistry
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec

CONVKIT_PLUGIN_API = 1
"""The convkit plugin API this plugin was written for."""


class ScipyBackend(NumpyArrays, Backend):
    """NumPy arrays, computed by SciPy. ``convolve``/``correlate`` call
    ``scipy.signal``'s own functions (``convolve``, ``correlate``, ``fftconvolve``,
    ``oaconvolve``); ``conv``'s direct method runs ``scipy.signal.correlate`` once per
    sample and output channel, its FFT method transforms with ``scipy.fft`` on every
    core."""

    name = "scipy"
    capabilities = Capabilities(
        devices=("cpu",),
        array_types=("numpy.ndarray",),
        host_arrays=True,
        integer_conv=True,
        costs=CostModel(
            mac_rate=1.1e8,
            tap_rate=1e8,
            fft_rate=5e9,
            spectral_mac_rate=1.5e10,
            depthwise_rate=9e7,
            float64_fft_factor=2.4,
            fft_transform_seconds=3.5e-5,
        ),
    )
    requires = ("scipy",)
    install_hint = "pip install scipy"

    def owns(self, obj: object) -> bool:
        return False  # NumPy arrays belong to the numpy backend

    import_seconds = 0.2

    def loaded(self) -> bool:
        return "scipy.signal" in sys.modules

    def limit_threads(self, threads: int) -> contextlib.AbstractContextManager[None]:
        from convkit.threads import limit_blas

        return limit_blas(threads)  # SciPy's FFT workers read convkit.threads.current()

    def fft_module(self) -> Any:
        import scipy.fft

        names = ("rfftn", "irfftn", "fftn", "ifftn")
        return types.SimpleNamespace(
            **{n: functools.partial(getattr(scipy.fft, n), workers=_workers()) for n in names}
        )

    def conv(
        self,
        x: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray | None,
        spec: ConvSpec,
        options: Mapping[str, Any],
    ) -> np.ndarray:
        if spec.method == "fft":
            return self.conv_fft(x, weight, bias, spec, options)
        from convkit_scipy import ops

        return ops.conv(x, weight, bias, spec)

    def convolve(
        self,
        in1: np.ndarray,
        in2: np.ndarray,
        spec: SignalSpec,
        method: str,
        options: Mapping[str, Any],
    ) -> np.ndarray:
        from convkit_scipy import ops

        return ops.convolve(in1, in2, spec, method)


def _workers() -> int:
    """SciPy FFT worker threads: the call's ``threads`` setting, else every core (the
    count is an argument of each call, so no process setting changes)."""
    from convkit.threads import cores, current

    return current() or cores()


@convkit.hookimpl
def convkit_add_backends(registry: BackendRegistry) -> None:
    """Register the ``scipy`` backend."""
    registry.add(ScipyBackend())
