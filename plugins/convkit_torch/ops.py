"""torch kernels of the ``torch`` backend."""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import array_api_compat.torch
import numpy as np
import torch
import torch.nn.functional as F

from convkit.algorithms.fft import oa_blocks
from convkit.padding import pad
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


ACCELERATORS = {"cuda"}
"""The device types this backend computes as CUDA devices: their cost model, their
precision flags, their memory. A test adds ``"meta"`` (torch's device of shapes
without data) to run this backend's device logic on a machine without a GPU."""


def check_device(device: Any) -> torch.device:
    """Parse a device option and check that it exists here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device; expected 'cpu', 'cuda' or 'cuda:N'"
        ) from exc
    if dev.type != "cpu" and dev.type not in ACCELERATORS:
        raise ValueError(f"backend 'torch' runs on 'cpu' or 'cuda'; got device={device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but torch {torch.__version__} sees no "
                f"CUDA device (torch.cuda.is_available() is False)"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device={device!r} does not exist; this machine has {count} GPU(s)")
    return dev


def device_key(device: str) -> str:
    """What calibrated rates on ``device`` are stored under: ``"cpu"``, or for a CUDA
    device its index and model (``"cuda:0 (NVIDIA H200)"``; ``"cuda"`` is the current
    device), so that a machine's different GPUs keep their own rates."""
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return dev.type
    return _gpu_key(torch.cuda.current_device() if dev.index is None else dev.index)


@functools.lru_cache(maxsize=64)
def _gpu_key(index: int) -> str:
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def synchronize(obj: Any) -> None:
    """Wait for the CUDA work producing ``obj`` (a tensor or a tuple of them) to finish."""
    items = obj if isinstance(obj, tuple | list) else (obj,)
    for item in items:
        if isinstance(item, torch.Tensor) and item.device.type == "cuda":
            torch.cuda.synchronize(item.device)
            return


_LOCK = threading.RLock()
"""Held while a call runs with torch's precision switches changed: they are
process-wide, so two calls in different threads take turns rather than restore each
other's values."""


def run_at(precision: str, device: torch.device, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with float32 arithmetic on ``device`` as ``precision`` asks
    (:func:`scope`). When an argument requires grad, the result's backward runs under
    the same precision too (autograd would otherwise run it later, under the process's
    switches)."""
    if not _changes(precision, device):
        return fn(*args)
    tracked = torch.is_grad_enabled() and any(
        isinstance(a, torch.Tensor) and a.requires_grad for a in args
    )
    if not tracked:
        with scope(precision, device):
            return fn(*args)
    return _AtPrecision.apply(precision, device, fn, *args)


class _AtPrecision(torch.autograd.Function):
    """A computation whose forward and backward both run under :func:`scope`: the
    forward records its own graph (as ``torch.utils.checkpoint`` does) and the backward
    differentiates it under the same switches. First derivatives only."""

    @staticmethod
    def forward(
        ctx: Any, precision: str, device: torch.device, fn: Callable[..., Any], *args: Any
    ) -> Any:
        inputs = [
            a.detach().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a
            for a in args
        ]
        with torch.enable_grad(), scope(precision, device):
            out = fn(*inputs)
        ctx.precision, ctx.device, ctx.inputs, ctx.out = precision, device, inputs, out
        return out.detach()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        wanted = [a for a in ctx.inputs if isinstance(a, torch.Tensor) and a.requires_grad]
        with scope(ctx.precision, ctx.device):
            grads = iter(torch.autograd.grad(ctx.out, wanted, grad, allow_unused=True))
        per_input = [
            next(grads) if isinstance(a, torch.Tensor) and a.requires_grad else None
            for a in ctx.inputs
        ]
        return (None, None, None, *per_input)


@contextlib.contextmanager
def scope(precision: str, device: torch.device) -> Iterator[None]:
    """Within the block, float32 arithmetic on ``device`` as ``precision`` asks; after
    it, torch's precision switches exactly as they were.

    On a CUDA device, ``"highest"`` turns TF32 off for cuDNN's convolutions and
    cuBLAS's matrix products (torch allows it for convolutions by default) and
    ``"fast"`` turns it on. On the CPU, ``"highest"`` undoes a process-wide opt-in to
    oneDNN's lower float32 precisions (``bf16``, ``tf32``); ``"fast"`` leaves the
    process's choice. torch has two sets of switches that must agree: the older
    (``torch.backends.cudnn.allow_tf32``, ``torch.set_float32_matmul_precision``) and
    the per-operator ``fp32_precision`` ones. While they agree, the older setters are
    used, which keep them agreeing, so the older getters work during the call too;
    once a program has set the per-operator ones apart (torch then refuses to read the
    older ones), those are set. Either way every per-operator value is put back. The
    switches are process-wide: calls that change them hold a lock (:data:`_LOCK`), and
    a thread computing meanwhile without convkit sees them.

    >>> import torch
    >>> before = torch.backends.cudnn.allow_tf32
    >>> with scope("highest", torch.device("cuda")):
    ...     torch.backends.cudnn.allow_tf32
    False
    >>> torch.backends.cudnn.allow_tf32 == before
    True
    """
    if not _changes(precision, device):
        yield
        return
    b: Any = torch.backends  # the per-operator switches are set up at run time
    with _LOCK, _restored():
        if device.type not in ACCELERATORS:
            for s in (b.mkldnn.conv, b.mkldnn.matmul):
                s.fp32_precision = "ieee"
        elif _agreeing():
            b.cudnn.allow_tf32 = precision == "fast"
            torch.set_float32_matmul_precision("high" if precision == "fast" else "highest")
        else:
            for s in (b.cudnn.conv, b.cuda.matmul):
                s.fp32_precision = "tf32" if precision == "fast" else "ieee"
        yield


def _changes(precision: str, device: torch.device) -> bool:
    """Whether a call at ``precision`` on ``device`` changes any switch: always on a
    CUDA device; on the CPU only for ``"highest"`` in a process that lowered oneDNN's
    float32."""
    if device.type in ACCELERATORS:
        return True
    if precision != "highest":
        return False
    b: Any = torch.backends
    return any(_lowered(s.fp32_precision, b.mkldnn) for s in (b.mkldnn.conv, b.mkldnn.matmul))


def _agreeing() -> bool:
    """Whether torch's older precision switches can be read (they agree with the
    per-operator ones)."""
    try:
        torch.backends.cudnn.allow_tf32  # noqa: B018 - raises when they disagree
        torch.get_float32_matmul_precision()
    except RuntimeError:
        return False
    return True


def _switches() -> list[Any]:
    """Every object of torch's per-operator ``fp32_precision`` switches, parents first."""
    b: Any = torch.backends
    found = [b, b.cuda.matmul, b.cudnn, b.cudnn.conv, b.cudnn.rnn, b.mkldnn]
    found += [b.mkldnn.matmul, b.mkldnn.conv, getattr(b.mkldnn, "rnn", None)]
    return [s for s in found if s is not None and hasattr(s, "fp32_precision")]


@contextlib.contextmanager
def _restored() -> Iterator[None]:
    """Put back every precision switch, the older ones (when readable) and each
    per-operator value, after the block."""
    older: tuple[bool, str] | None = None
    if _agreeing():
        older = (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
    switches = _switches()
    values = [s.fp32_precision for s in switches]
    try:
        yield
    finally:
        if older is not None:
            torch.backends.cudnn.allow_tf32 = older[0]
            torch.set_float32_matmul_precision(older[1])
        for s, value in zip(switches, values, strict=True):
            s.fp32_precision = value


def _lowered(value: str, parent: Any) -> bool:
    """Whether a oneDNN operator's ``fp32_precision`` (``"none"``: its parent's, then
    the process's) is below full float32."""
    if value == "none":
        value = parent.fp32_precision
    if value == "none":
        value = getattr(torch.backends, "fp32_precision", "none")
    return value not in ("none", "ieee")


def asarray(obj: Any, dtype: str, device: Any | None) -> torch.Tensor:
    """A NumPy array or a tensor, as a tensor of ``dtype`` on ``device`` (default: the
    tensor's own device, or the CPU for NumPy input)."""
    tdtype = getattr(torch, dtype)
    if isinstance(obj, torch.Tensor):
        return obj.to(device=device if device is not None else obj.device, dtype=tdtype)
    array = np.asarray(obj)
    if not (array.flags.c_contiguous and array.flags.writeable):
        array = np.array(array, order="C")
    return torch.as_tensor(array, dtype=tdtype, device=device if device is not None else "cpu")


def restore(obj: Any, like: torch.Tensor) -> torch.Tensor:
    """A result (tensor or NumPy array) as a tensor on the device of ``like``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(like.device)
    return torch.as_tensor(np.array(obj, order="C"), device=like.device)


def _conv_valid(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> torch.Tensor:
    """Unpadded cross-correlation for any number of spatial dims.

    Up to three dims call ``F.conv1d/2d/3d``. Beyond, the first spatial dim is split
    off: each of its kernel taps ``a`` contributes a (d-1)-dim convolution of the input
    slice ``x[:, :, a*dil : ... : stride]``, with that slice's positions folded into the
    batch, and the contributions are summed.
    """
    d = x.dim() - 2
    if d <= 3:
        return _CONV[d](x, weight, bias, stride, 0, dilation, groups)
    n, c = x.shape[:2]
    k0, s0, dl0 = weight.shape[2], stride[0], dilation[0]
    o0 = (x.shape[2] - (k0 - 1) * dl0 - 1) // s0 + 1
    total: torch.Tensor | None = None
    for a in range(k0):
        part = x[:, :, a * dl0 : a * dl0 + (o0 - 1) * s0 + 1 : s0]
        part = part.movedim(2, 1).reshape(n * o0, c, *x.shape[3:])
        y = _conv_valid(part, weight[:, :, a], None, stride[1:], dilation[1:], groups)
        total = y if total is None else total + y
    assert total is not None
    out = total.reshape(n, o0, *total.shape[1:]).movedim(1, 2)
    if bias is not None:
        out = out + bias.reshape(1, -1, *(1,) * d)
    return out


COLUMN_BYTES = 256 << 20
"""The largest im2col matrix (receptive fields over all output positions) one call of
``F.conv1d/2d/3d`` may need: torch's CPU convolutions outside oneDNN (float64 among
them) materialise it whole, so a larger call runs in blocks of output rows."""


def conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec
) -> torch.Tensor:
    """Cross-correlation of a batched input; see :meth:`convkit.Backend.conv`. A call
    whose im2col matrix would pass :data:`COLUMN_BYTES` runs in blocks of rows of the
    first output dimension."""
    columns = spec.batch * math.prod(spec.output_size) * (spec.in_channels // spec.groups)
    columns *= math.prod(spec.kernel_size) * spec.groups * x.element_size()
    if columns > COLUMN_BYTES and spec.output_size[0] > 1:
        return _by_rows(x, weight, bias, spec, columns)
    native_pad: int | tuple[int, ...] = 0
    padding = spec.padding
    if spec.padding_mode == "zeros" and spec.ndim <= 3 and all(lo == hi for lo, hi in padding):
        native_pad, padding = tuple(lo for lo, _ in padding), ((0, 0),) * spec.ndim
    x = pad(array_api_compat.torch, x, padding, spec.padding_mode)
    if native_pad:
        return _CONV[spec.ndim](
            x, weight, bias, spec.stride, native_pad, spec.dilation, spec.groups
        )
    return _conv_valid(x, weight, bias, spec.stride, spec.dilation, spec.groups)


def _by_rows(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, columns: int
) -> torch.Tensor:
    """:func:`conv` in blocks of output rows whose im2col matrices stay under
    :data:`COLUMN_BYTES`, each from the rows of the padded input it reads."""
    xpad = pad(array_api_compat.torch, x, spec.padding, spec.padding_mode)
    rows, step = spec.output_size[0], spec.stride[0]
    extent = spec.kernel_extent[0]
    block = max(1, rows * COLUMN_BYTES // columns)
    parts = []
    for r0 in range(0, rows, block):
        r1 = min(rows, r0 + block)
        part = xpad[:, :, r0 * step : (r1 - 1) * step + extent]
        parts.append(_conv_valid(part, weight, bias, spec.stride, spec.dilation, spec.groups))
    return torch.cat(parts, dim=2)


def oa_helps(spec: SignalSpec) -> bool:
    """Whether overlap-add beats one whole FFT for this call."""
    return bool(oa_blocks(spec))


def convolve(in1: torch.Tensor, in2: torch.Tensor, spec: SignalSpec, method: str) -> torch.Tensor:
    """Convolution along the last axis, other axes broadcast, by
    ``torchaudio.functional.fftconvolve`` or ``convolve``; cropped to the mode here, so
    the result follows SciPy's 'same' and 'valid' exactly."""
    import torchaudio.functional as AF

    fn = AF.fftconvolve if method == "fft" else AF.convolve
    return fn(in1, in2, mode="full")[spec.crop]


def conv_vjp(
    x: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor, spec: ConvSpec, bias: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The gradients of :func:`conv` by torch autograd (the backend's native backward)."""
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        wr = weight.detach().requires_grad_(True)
        inputs = [xr, wr]
        br = None
        if bias:
            br = torch.zeros(spec.out_channels, dtype=x.dtype, device=x.device, requires_grad=True)
            inputs.append(br)
        y = conv(xr, wr, br, spec)
        grads = torch.autograd.grad(y, inputs, grad_out, allow_unused=True)
    gx = grads[0] if grads[0] is not None else torch.zeros_like(x)
    gw = grads[1] if grads[1] is not None else torch.zeros_like(weight)
    return gx, gw, (grads[2] if bias else None)
