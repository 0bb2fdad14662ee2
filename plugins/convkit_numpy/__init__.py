"""The NumPy backend: any number of spatial dimensions, vectorised through BLAS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

import convkit
from convkit.backend import Backend, Capabilities
from convkit.plugins import BackendRegistry
from convkit.spec import ConvSpec


class NumpyBackend(Backend):
    """Pure NumPy: padded input in channels-last order, gathered tap by tap into a
    bounded column buffer, contracted with one matrix product per chunk and group."""

    name = "numpy"
    capabilities = Capabilities(devices=("cpu",), array_types=("numpy.ndarray",))

    def owns(self, obj: object) -> bool:
        return isinstance(obj, np.ndarray | np.generic)

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
        from convkit_numpy import ops

        return ops.conv(x, weight, bias, spec)


@convkit.hookimpl
def convkit_add_backends(registry: BackendRegistry) -> None:
    """Register the ``numpy`` backend."""
    registry.add(NumpyBackend())
