"""The PyTorch backend: ``torch.nn.functional.conv1d/2d/3d`` on CPU and CUDA, any d."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

import convkit
from convkit.backend import COMPLEX_DTYPES, FLOAT_DTYPES, Backend, Capabilities
from convkit.plugins import BackendRegistry
from convkit.spec import ConvSpec


class TorchBackend(Backend):
    """torch tensors on the CPU or a CUDA device. One to three spatial dimensions go to
    ``torch.nn.functional.conv1d/2d/3d``; more are decomposed into sums of those. The
    device comes from the ``device`` option, else from the input tensor. Autograd flows
    through when the inputs are tensors that require grad."""

    name = "torch"
    capabilities = Capabilities(
        dtypes=FLOAT_DTYPES + COMPLEX_DTYPES,
        devices=("cpu", "cuda"),
        array_types=("torch.Tensor",),
    )
    requires = ("torch",)
    install_hint = "pip install 'convkit[torch]'"

    def owns(self, obj: object) -> bool:
        torch = sys.modules.get("torch")  # a tensor exists only if torch was imported
        return torch is not None and isinstance(obj, torch.Tensor)

    def dtype_name(self, obj: Any) -> str:
        return str(obj.dtype).removeprefix("torch.")

    def asarray(self, obj: Any, dtype: str, options: Mapping[str, Any]) -> Any:
        from convkit_torch import ops

        return ops.asarray(obj, dtype, options.get("device"))

    def to_numpy(self, obj: Any) -> np.ndarray:
        return obj.detach().cpu().numpy()

    def restore(self, obj: Any, like: Any) -> Any:
        from convkit_torch import ops

        return ops.restore(obj, like)

    def check_options(self, options: Mapping[str, Any]) -> None:
        device = options.get("device")
        if device is not None:
            from convkit_torch import ops

            ops.check_device(device)

    def conv(
        self, x: Any, weight: Any, bias: Any | None, spec: ConvSpec, options: Mapping[str, Any]
    ) -> Any:
        from convkit_torch import ops

        return ops.conv(x, weight, bias, spec)


@convkit.hookimpl
def convkit_add_backends(registry: BackendRegistry) -> None:
    """Register the ``torch`` backend."""
    registry.add(TorchBackend())
