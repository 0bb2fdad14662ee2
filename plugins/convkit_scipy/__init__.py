"""The SciPy backend: convolution through ``scipy.fft``, channels contracted per frequency."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

import convkit
from convkit.backend import Backend, Capabilities
from convkit.plugins import BackendRegistry
from convkit.spec import ConvSpec


class ScipyBackend(Backend):
    """NumPy arrays, computed with ``scipy.fft``: the input and the (dilated, flipped)
    kernels are transformed over the spatial axes, the channel sum is a matrix product
    at every frequency, and the inverse transform is cropped to the valid, strided
    positions. Its cost hardly depends on the kernel size."""

    name = "scipy"
    capabilities = Capabilities(devices=("cpu",), array_types=("numpy.ndarray",))
    requires = ("scipy",)
    install_hint = "pip install scipy"

    def owns(self, obj: object) -> bool:
        return False  # NumPy arrays belong to the numpy backend

    def asarray(self, obj: Any, dtype: str, options: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(obj, dtype=dtype)

    def to_numpy(self, obj: Any) -> np.ndarray:
        return np.asarray(obj)

    def restore(self, obj: Any, like: Any) -> np.ndarray:
        return np.asarray(obj)

    def conv(
        self,
        x: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray | None,
        spec: ConvSpec,
        options: Mapping[str, Any],
    ) -> np.ndarray:
        from convkit_scipy import ops

        return ops.conv(x, weight, bias, spec)


@convkit.hookimpl
def convkit_add_backends(registry: BackendRegistry) -> None:
    """Register the ``scipy`` backend."""
    registry.add(ScipyBackend())
