"""The PyTorch backend: ``torch.nn.functional.conv1d/2d/3d`` and ``torch.fft`` on CPU and
CUDA, any d; ``torchaudio.functional`` for batched 1-D signals."""

from __future__ import annotations

import contextlib
import importlib.metadata
import sys
from collections.abc import Hashable, Iterator, Mapping
from typing import Any

import numpy as np

import convkit
from convkit.backend import COMPLEX_DTYPES, FLOAT_DTYPES, Backend, Capabilities
from convkit.costs import CostModel
from convkit.registry import BackendRegistry
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec

CONVKIT_PLUGIN_API = 1
"""The convkit plugin API this plugin was written for."""


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
        host_arrays=True,
        conv_methods=("direct", "fft", "winograd"),
        costs=CostModel(
            mac_rate=1.5e11,
            tap_rate=3e9,
            fft_rate=8e9,
            call_overhead=1.5e-4,
            spectral_mac_rate=7e9,
            depthwise_rate=1.5e10,
            vjp_factor=2.8,
            float64_factor=5.0,
            float64_fft_factor=8.0,
            fft_transform_seconds=5e-5,
            copy_rate=1e9,
            position_seconds=1.7e-8,
            depthwise_taps=27,
        ),
    )
    cuda_costs = CostModel(
        mac_rate=2e13, tap_rate=2e11, fft_rate=5e11, call_overhead=5e-5, fft_overhead=2e-4
    )
    """Built-in rates on a CUDA device (an H100-class GPU, transfers included roughly);
    ``convkit calibrate`` measures the device at hand."""
    requires = ("torch", "torchaudio", "array_api_compat")
    install_hint = "pip install -e '.[torch]' in the convkit checkout"

    def unavailable_reason(self) -> str | None:
        """Beyond finding the modules: torch and torchaudio load together and one of
        torchaudio's compiled operations runs. torchaudio ships a library built against
        one torch ABI; with another torch it imports no further than that library
        (``undefined symbol``), which ``pip check`` does not notice."""
        missing = super().unavailable_reason()
        if missing is not None:
            return missing
        return _load_problem()

    def owns(self, obj: object) -> bool:
        torch = sys.modules.get("torch")  # a tensor exists only if torch was imported
        return torch is not None and isinstance(obj, torch.Tensor)

    def in_host_memory(self, obj: Any) -> bool:
        import torch

        return obj.device.type == "cpu" and not (obj.requires_grad and torch.is_grad_enabled())

    def array_key(self, obj: Any) -> Hashable | None:
        import torch

        grad = obj.requires_grad and torch.is_grad_enabled()
        return (tuple(obj.shape), obj.dtype, obj.device, grad)

    import_seconds = 1.5  # measured: `import torch` takes 1-2 s and ~300 MiB here

    def loaded(self) -> bool:
        return "torch" in sys.modules

    def device_of(self, obj: Any) -> str:
        return str(obj.device.type)

    def cost_model(self, options: Mapping[str, Any]) -> CostModel:
        device = str(options.get("device") or "cpu")
        return self.cuda_costs if device.startswith("cuda") else self.capabilities.costs

    @contextlib.contextmanager
    def limit_threads(self, threads: int) -> Iterator[None]:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

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

    def namespace(self) -> Any:
        import array_api_compat.torch

        return array_api_compat.torch

    def devices_here(self) -> tuple[str, ...]:
        import torch

        return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)

    def check_options(self, options: Mapping[str, Any]) -> None:
        device = options.get("device")
        if device is not None:
            from convkit_torch import ops

            ops.check_device(device)

    def conv(
        self, x: Any, weight: Any, bias: Any | None, spec: ConvSpec, options: Mapping[str, Any]
    ) -> Any:
        if spec.method == "fft":
            return self.conv_fft(x, weight, bias, spec, options)
        if spec.method == "winograd":
            return self.conv_winograd(x, weight, bias, spec, options)
        from convkit_torch import ops

        return ops.conv(x, weight, bias, spec)

    def conv_vjp(
        self,
        x: Any,
        weight: Any,
        grad_out: Any,
        spec: ConvSpec,
        bias: bool,
        options: Mapping[str, Any],
    ) -> tuple[Any, Any, Any | None]:
        from convkit_torch import ops

        return ops.conv_vjp(x, weight, grad_out, spec, bias)

    def convolve(
        self, in1: Any, in2: Any, spec: SignalSpec, method: str, options: Mapping[str, Any]
    ) -> Any:
        from convkit_torch import ops

        batched_1d = spec.conv_axes == (spec.ndim - 1,) and not spec.correlate
        if (
            batched_1d
            and in1.dtype.is_floating_point
            and not (method == "fft" and ops.oa_helps(spec))
        ):
            return ops.convolve(in1, in2, spec, method)
        return super().convolve(in1, in2, spec, method, options)


def _load_problem() -> str | None:
    """Why torch and torchaudio cannot run here together (``None``: they can): import
    both and run one compiled torchaudio operation (an IIR filter, ``lfilter``) on a
    few samples, comparing it with the answer worked by hand."""
    try:
        import torch
        import torchaudio
        import torchaudio.functional as AF

        # y[t] = x[t] + 0.5 y[t-1] on an impulse: 1, 0.5, 0.25, 0.125
        y = AF.lfilter(
            torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64),
            a_coeffs=torch.tensor([1.0, -0.5], dtype=torch.float64),
            b_coeffs=torch.tensor([1.0, 0.0], dtype=torch.float64),
            clamp=False,
        )
        if y.tolist() != [1.0, 0.5, 0.25, 0.125]:
            return f"torchaudio {torchaudio.__version__}'s lfilter returned {y.tolist()}"
    except Exception as exc:
        versions = []
        for dist in ("torch", "torchaudio"):
            with contextlib.suppress(Exception):
                versions.append(f"{dist} {importlib.metadata.version(dist)}")
        return (
            f"torchaudio does not load with this torch ({', '.join(versions)}): "
            f"{type(exc).__name__}: {exc}; install a matching pair with "
            f"pip install -e '.[torch]' in the convkit checkout"
        )
    return None


@convkit.hookimpl
def convkit_add_backends(registry: BackendRegistry) -> None:
    """Register the ``torch`` backend."""
    registry.add(TorchBackend())
