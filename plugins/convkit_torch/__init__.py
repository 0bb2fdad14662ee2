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
from convkit.backend import COMPLEX_DTYPES, FLOAT_DTYPES, Backend, Capabilities, precision_of
from convkit.costs import CostModel
from convkit.registry import BackendRegistry
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec

CONVKIT_PLUGIN_API = 1
"""The convkit plugin API this plugin was written for."""


class TorchBackend(Backend):
    """torch tensors on the CPU or a CUDA device. One to three spatial dimensions go to
    ``torch.nn.functional.conv1d/2d/3d``; more are decomposed into sums of those. The
    device comes from the ``device`` option, else from the input tensor (index kept);
    every argument is moved there. ``precision="highest"`` keeps float32 off TF32 within
    the call (and its autograd backward), ``"fast"`` allows it
    (:func:`convkit_torch.ops.scope`). Autograd flows
    through when the inputs are tensors that require grad."""

    name = "torch"
    capabilities = Capabilities(
        dtypes=FLOAT_DTYPES + COMPLEX_DTYPES,
        devices=("cpu", "cuda"),
        array_types=("torch.Tensor",),
        host_arrays=True,
        conv_methods=("direct", "fft", "winograd"),
        precisions=("highest", "fast"),
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
            # convkit's Winograd in torch's eager ops: a 16-sample conv takes 269 us by
            # it against 37 us direct (2-core VM)
            winograd_overhead=2.3e-4,
        ),
    )
    cuda_costs = CostModel(
        # Built-in rates for float32 at precision="highest" (no TF32) on an H100/H200-class
        # GPU, from the vendor's figures; `convkit calibrate` measures the GPU at hand
        # and replaces them. Datasheets: NVIDIA H100 Tensor Core GPU (SXM: 67 TFLOP/s
        # FP32, 34 TFLOP/s FP64, 3.35 TB/s HBM3) and NVIDIA H200 (same compute,
        # 4.8 TB/s HBM3e); 3.35 TB/s is used below.
        #
        # 67 TFLOP/s FP32 is 33.5e12 multiply-adds/s; cuDNN's float32 implicit-GEMM
        # kernels reach about 60 % of it on wide layers.
        mac_rate=2e13,
        # single-channel taps are memory-bound: 3.35 TB/s over 4-byte samples is
        # 8.4e11 samples/s from DRAM, each sample read from cache once per tap; a
        # quarter of that allows for the launch and the edges of short signals.
        tap_rate=2e11,
        # a 2-d real FFT of n points makes about 3 passes of 12 bytes per point (the
        # real input, the half spectrum) at 3.35 TB/s: 1e11 points/s; at 2048^2
        # (n log2 n = 22 n) that is 2e12 units/s, halved for cuFFT's efficiency on
        # mid-size transforms.
        fft_rate=1e12,
        # convkit's per-call path (about 10 us on this project's 2-core VM, see
        # docs/performance.md), torch's eager dispatch of the few ops a conv runs
        # (about 10 us each) and a kernel launch (a few us, CUDA C++ Best Practices
        # Guide).
        call_overhead=5e-5,
        # the FFT method launches about 20 kernels (padding, three transforms, the
        # product, the crop), each with torch's dispatch.
        fft_overhead=2e-4,
        # the per-frequency channel sum is a batched complex matrix product (cgemm) in
        # FP32; the contraction counts 4 real multiply-adds per complex one, at about
        # 30 % of the FP32 peak for its small, batched matrices.
        spectral_mac_rate=1e13,
        # depthwise layers are memory-bound: about 8 bytes of DRAM traffic per output
        # (its input read once through cache, the output written once) for 9
        # multiply-adds at 3x3: 3.8e12/s at 3.35 TB/s; torch's depthwise CUDA kernels
        # reach about a quarter of that. They take any kernel size (no depthwise_taps
        # limit, unlike torch's CPU kernels).
        depthwise_rate=1e12,
        # the input and the weight gradient each cost one forward's multiply-adds (the
        # backward as 2x the forward, Kaplan et al. 2020, "Scaling Laws for Neural
        # Language Models", sec. 2.1); cuDNN's weight-gradient kernels run slower than
        # its forward ones.
        vjp_factor=2.5,
        # FP64 runs at half FP32's rate on H100/H200/A100 (datasheets above); on a
        # GeForce card it is 1/64, which only calibration sees.
        float64_factor=2.0,
        # FFTs are memory-bound: twice the bytes per point in double precision.
        float64_fft_factor=2.0,
        # each multi-dimensional transform: a launch and torch's dispatch.
        fft_transform_seconds=1e-5,
        # strided copies (Winograd's tiles): 8 bytes per element moved (read and
        # written) at 3.35 TB/s is 4e11 elements/s; half of it for the strides.
        copy_rate=2e11,
        # convkit's Winograd runs about a dozen array operations (tile gathers,
        # three transforms, the batched product, the scatter), each with torch's
        # dispatch and a launch: 10 us each.
        winograd_overhead=1.2e-4,
        # one thread per output: no per-position or per-run bookkeeping
        position_seconds=0.0,
        gather_run_seconds=0.0,
    )
    """Built-in rates on a CUDA device, every one set and its source beside it;
    ``convkit calibrate`` measures the device at hand (stored per GPU model and
    index)."""
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
        return str(obj.device)  # with its index: "cuda:1" stays "cuda:1"

    def device_key(self, device: str) -> str:
        if device.partition(":")[0] == "cpu":  # asked on every call under auto: no import
            return "cpu"
        from convkit_torch import ops

        return ops.device_key(device)

    def synchronize(self, obj: Any) -> None:
        from convkit_torch import ops

        ops.synchronize(obj)

    def cost_model(self, options: Mapping[str, Any]) -> CostModel:
        device = str(options.get("device") or "cpu")
        return self.cuda_costs if _accelerator(device) else self.capabilities.costs

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
        """The CPU and each CUDA device by index (``convkit calibrate`` measures each)."""
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return ("cpu", *(f"cuda:{i}" for i in range(count)))

    def check_options(self, options: Mapping[str, Any]) -> None:
        device = options.get("device")
        if device is not None:
            from convkit_torch import ops

            ops.check_device(device)

    def conv(
        self, x: Any, weight: Any, bias: Any | None, spec: ConvSpec, options: Mapping[str, Any]
    ) -> Any:
        from convkit_torch import ops

        return ops.run_at(
            precision_of(options), x.device, self._conv, x, weight, bias, spec, options
        )

    def _conv(
        self, x: Any, weight: Any, bias: Any | None, spec: ConvSpec, options: Mapping[str, Any]
    ) -> Any:
        if spec.method == "fft":
            return self.conv_fft(x, weight, bias, spec, options)
        if spec.method == "winograd":
            return self.conv_winograd(x, weight, bias, spec, options)
        from convkit_torch import ops

        return ops.conv(x, weight, bias, spec)

    def conv_transpose(
        self, x: Any, weight: Any, bias: Any | None, spec: ConvSpec, options: Mapping[str, Any]
    ) -> Any:
        from convkit_torch import ops

        transpose = super().conv_transpose
        return ops.run_at(
            precision_of(options), x.device, transpose, x, weight, bias, spec, options
        )

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

        with ops.scope(precision_of(options), x.device):
            return ops.conv_vjp(x, weight, grad_out, spec, bias)

    def convolve(
        self, in1: Any, in2: Any, spec: SignalSpec, method: str, options: Mapping[str, Any]
    ) -> Any:
        from convkit_torch import ops

        batched_1d = spec.conv_axes == (spec.ndim - 1,) and not spec.correlate
        precision, device = precision_of(options), in1.device
        if (
            batched_1d
            and in1.dtype.is_floating_point
            and not (method == "fft" and ops.oa_helps(spec))
        ):
            return ops.run_at(precision, device, ops.convolve, in1, in2, spec, method)
        return ops.run_at(precision, device, super().convolve, in1, in2, spec, method, options)


def _accelerator(device: str) -> bool:
    """Whether ``device`` (a device string) is a CUDA device (or a test's stand-in for
    one, :data:`convkit_torch.ops.ACCELERATORS`), without importing torch."""
    kind = device.partition(":")[0]
    if kind == "cuda":
        return True
    ops = sys.modules.get("convkit_torch.ops")
    return ops is not None and kind in ops.ACCELERATORS


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
