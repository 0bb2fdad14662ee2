"""The NumPy backend: any number of spatial dimensions, vectorised through BLAS; FFTs
with ``numpy.fft``."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import numpy as np

import convkit
from convkit.backend import Backend, Capabilities, NumpyArrays
from convkit.costs import CostModel
from convkit.registry import BackendRegistry
from convkit.spec import ConvSpec

CONVKIT_PLUGIN_API = 1
"""The convkit plugin API this plugin was written for."""


class NumpyBackend(NumpyArrays, Backend):
    """Pure NumPy: the padded input gathered tap by tap into a bounded column buffer
    (im2col) and contracted with one matrix product per chunk; FFTs by ``numpy.fft``."""

    name = "numpy"
    capabilities = Capabilities(
        devices=("cpu",),
        array_types=("numpy.ndarray",),
        integer_conv=True,
        host_arrays=True,
        costs=CostModel(
            mac_rate=1.8e11,
            tap_rate=1.2e9,
            fft_rate=3.5e9,
            spectral_mac_rate=1e10,
            depthwise_rate=4e9,
            vjp_factor=4.0,
            float64_fft_factor=1.7,
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
        from convkit_numpy import ops

        return ops.conv(x, weight, bias, spec)


@convkit.hookimpl
def convkit_add_backends(registry: BackendRegistry) -> None:
    """Register the ``numpy`` backend."""
    registry.add(NumpyBackend())
