"""The NumPy backend: any number of spatial dimensions, vectorised through BLAS; FFTs
with ``numpy.fft``."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import numpy as np

import convkit
from convkit.algorithms import direct, vjp
from convkit.backend import Backend, Capabilities, NumpyArrays
from convkit.costs import CostModel
from convkit.registry import BackendRegistry
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec
from convkit_numpy import small

CONVKIT_PLUGIN_API = 1
"""The convkit plugin API this plugin was written for."""


class NumpyBackend(NumpyArrays, Backend):
    """Pure NumPy: the padded input gathered tap by tap into a bounded column buffer
    (im2col) and contracted with one matrix product per chunk; FFTs by ``numpy.fft``."""

    name = "numpy"
    vjp_falls_back = True
    capabilities = Capabilities(
        devices=("cpu",),
        array_types=("numpy.ndarray",),
        integer_conv=True,
        host_arrays=True,
        conv_methods=("direct", "fft", "winograd"),
        costs=CostModel(
            mac_rate=1.2e11,
            tap_rate=2e9,
            fft_rate=3.5e9,
            spectral_mac_rate=1e10,
            depthwise_rate=4e9,
            vjp_factor=2.7,
            float64_fft_factor=1.7,
            fft_transform_seconds=1e-4,
            copy_rate=1e9,
            gather_run_seconds=4e-8,
        ),
    )

    def owns(self, obj: object) -> bool:
        return isinstance(obj, np.ndarray | np.generic)

    def in_host_memory(self, obj: Any) -> bool:
        return True

    def limit_threads(self, threads: int) -> contextlib.AbstractContextManager[None]:
        from convkit.threads import limit_blas

        return limit_blas(threads)

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
        if spec.method == "winograd":
            return self.conv_winograd(x, weight, bias, spec, options)
        if small.is_small(spec):
            return small.conv(x, weight, bias, spec)
        from convkit_numpy import ops

        return ops.conv(x, weight, bias, spec)

    def convolve(
        self,
        in1: np.ndarray,
        in2: np.ndarray,
        spec: SignalSpec,
        method: str,
        options: Mapping[str, Any],
    ) -> np.ndarray:
        """1-d inputs by :func:`numpy.convolve` (direct); the rest as any backend."""
        if method == "direct" and spec.conv_axes == (0,) and spec.ndim == 1:
            return small.convolve_1d(in1, in2, spec)
        return super().convolve(in1, in2, spec, method, options)

    def conv_vjp(
        self,
        x: np.ndarray,
        weight: np.ndarray,
        grad_out: np.ndarray,
        spec: ConvSpec,
        bias: bool,
        options: Mapping[str, Any],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The gradients as matrix products over the forward's im2col columns
        (:func:`convkit_numpy.grad.conv_vjp`), or through :meth:`conv` (whose FFT
        method serves large kernels) where the cost model estimates that cheaper."""
        model = direct.cost_model(self, options).for_dtype(self.dtype_name(x))
        methods = self.capabilities.conv_methods
        if vjp.generic_seconds(model, spec, self.dtype_name(x), methods) < model.conv_vjp(spec):
            return super().conv_vjp(x, weight, grad_out, spec, bias, options)
        from convkit_numpy import grad

        return grad.conv_vjp(x, weight, grad_out, spec, bias)

    def conv_transpose(
        self,
        x: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray | None,
        spec: ConvSpec,
        options: Mapping[str, Any],
    ) -> np.ndarray:
        """The input gradient's matrix products and col2im
        (:func:`convkit_numpy.grad.conv_transpose`), or through :meth:`conv` where the
        cost model picks another method than the direct one for that convolution."""
        model = direct.cost_model(self, options).for_dtype(self.dtype_name(x))
        dtype, methods = self.dtype_name(x), self.capabilities.conv_methods
        if direct.cheapest(model, vjp.input_grad_spec(spec), dtype, methods)[0] != "direct":
            return super().conv_transpose(x, weight, bias, spec, options)
        from convkit_numpy import grad

        return grad.conv_transpose(x, weight, bias, spec)


@convkit.hookimpl
def convkit_add_backends(registry: BackendRegistry) -> None:
    """Register the ``numpy`` backend."""
    registry.add(NumpyBackend())
