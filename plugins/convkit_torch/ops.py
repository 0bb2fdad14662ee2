"""torch kernels of the ``torch`` backend."""

from __future__ import annotations

import contextlib
import contextvars
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


class _Switches:
    """torch's process-wide float32 switches of one kind of device, shared by the calls
    in flight: the values torch reported for them before the first call entered, the
    value the calls last set, and how many calls at each precision are under way."""

    def __init__(self, names: tuple[tuple[str, str], ...]) -> None:
        self.names = names
        self.saved: list[str] = []
        self.applied = ""
        self.active: dict[str, int] = {}

    def objects(self) -> list[Any]:
        return [getattr(getattr(torch.backends, lib), op) for lib, op in self.names]


_CUDA = _Switches((("cudnn", "conv"), ("cuda", "matmul")))
_CPU = _Switches((("mkldnn", "conv"), ("mkldnn", "matmul")))
_MUTEX = threading.Lock()
"""Held only while switches are read or set, never while a call computes (the autograd
engine may run a backward on another thread meanwhile)."""

_RECOMPUTING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "convkit_torch_recomputing", default=False
)
"""Set while :class:`_AtPrecision` recomputes a forward for its backward: the calls
inside it are part of that recomputation and need no backward of their own."""


def run_at(precision: str, device: torch.device, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with float32 arithmetic on ``device`` as ``precision`` asks
    (:func:`scope`). When an argument requires grad, the backward runs under the same
    precision too: it recomputes ``fn`` there, as activation checkpointing does
    (:class:`_AtPrecision`), since autograd would otherwise run the saved graph later
    under the process's switches."""
    if not _changes(precision, device):
        return fn(*args)
    tracked = torch.is_grad_enabled() and any(
        isinstance(a, torch.Tensor) and a.requires_grad for a in args
    )
    # torch.func's transforms differentiate the forward's own graph (they refuse the
    # autograd calls a recomputing backward makes): under them, only the forward is
    # scoped; so is a call inside a recomputation
    if not tracked or _RECOMPUTING.get() or torch._C._are_functorch_transforms_active():
        with scope(precision, device):
            return fn(*args)
    return _AtPrecision.apply(precision, device, fn, *args)


class _AtPrecision(torch.autograd.Function):
    """``fn(*args)`` whose backward runs under the same :func:`scope`: the forward keeps
    only the tensor arguments (as ``F.conv2d`` does), and the backward recomputes ``fn``
    on them under the scope and differentiates that. First derivatives only; a second
    backward over a retained graph recomputes again. (No autocast state is replayed: a
    call under autocast is refused, its result not having the dtype of its inputs.)"""

    @staticmethod
    def forward(precision: str, device: torch.device, fn: Callable[..., Any], *args: Any) -> Any:
        with scope(precision, device):
            return fn(*args)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        precision, device, fn, *args = inputs
        ctx.precision, ctx.device, ctx.fn = precision, device, fn
        ctx.tensor = [isinstance(a, torch.Tensor) for a in args]
        ctx.others = [None if t else a for a, t in zip(args, ctx.tensor, strict=True)]
        ctx.save_for_backward(*(a for a in args if isinstance(a, torch.Tensor)))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        saved = iter(ctx.saved_tensors)
        wants = ctx.needs_input_grad[3:]
        args = [
            next(saved).detach().requires_grad_(want) if is_tensor else other
            for is_tensor, other, want in zip(ctx.tensor, ctx.others, wants, strict=True)
        ]
        wanted = [a for a, want in zip(args, wants, strict=True) if want]
        token = _RECOMPUTING.set(True)
        try:
            with torch.enable_grad(), scope(ctx.precision, ctx.device):
                out = ctx.fn(*args)
                grads = iter(torch.autograd.grad(out, wanted, grad, allow_unused=True))
        finally:
            _RECOMPUTING.reset(token)
        return (None, None, None, *(next(grads) if want else None for want in wants))


@contextlib.contextmanager
def scope(precision: str, device: torch.device) -> Iterator[None]:
    """Within the block, float32 arithmetic on ``device`` as ``precision`` asks.

    On a CUDA device, ``"highest"`` turns TF32 off for cuDNN's convolutions and
    cuBLAS's matrix products (torch allows it for convolutions by default) and
    ``"fast"`` turns it on. On the CPU, ``"highest"`` undoes a process-wide opt-in to
    oneDNN's lower float32 precisions (``bf16``, ``tf32``); ``"fast"`` leaves the
    process's choice. The switches are torch's per-operator ``fp32_precision`` ones
    (``torch.backends.cudnn.conv``, ``torch.backends.cuda.matmul``, oneDNN's), which
    torch reads whichever API a program used. They are process-wide, so the calls in
    flight share them: while any asks for ``"highest"`` they stay there (``"fast"``
    calls then run at it, within their tolerance too), and the last call out sets each
    back to the value torch reported for it before the first came in (as torch's own
    ``flags()`` context managers do) unless the program changed it meanwhile.

    >>> import torch
    >>> before = torch.backends.cudnn.conv.fp32_precision
    >>> with scope("highest", torch.device("cuda")):
    ...     torch.backends.cudnn.conv.fp32_precision
    'ieee'
    >>> torch.backends.cudnn.conv.fp32_precision == before
    True
    """
    switches = _CUDA if device.type in ACCELERATORS else _CPU
    if not _enter(switches, precision, device):
        yield
        return
    try:
        yield
    finally:
        _leave(switches, precision)


def _changes(precision: str, device: torch.device) -> bool:
    """Whether a call at ``precision`` on ``device`` takes part in the switches: always
    on a CUDA device; on the CPU only for ``"highest"``, in a process that lowered
    oneDNN's float32 or while another such call is under way (read under
    :data:`_MUTEX`, so that the two cannot pass each other)."""
    if device.type in ACCELERATORS:
        return True
    if precision != "highest":
        return False
    with _MUTEX:
        return _cpu_takes_part()


def _cpu_takes_part() -> bool:
    if _CPU.active:
        return True
    b: Any = torch.backends
    return any(_lowered(s.fp32_precision, b.mkldnn) for s in (b.mkldnn.conv, b.mkldnn.matmul))


def _enter(switches: _Switches, precision: str, device: torch.device) -> bool:
    """Count one more call at ``precision`` and set the switches for it; ``False`` (and
    nothing done) when the call leaves them alone (a CPU call with nothing to undo)."""
    with _MUTEX:
        if switches is _CPU and (precision != "highest" or not _cpu_takes_part()):
            return False
        if not switches.active:
            switches.saved = [s.fp32_precision for s in switches.objects()]
            switches.applied = ""
        switches.active[precision] = switches.active.get(precision, 0) + 1
        try:
            _apply(switches)
        except BaseException:
            _release(switches, precision)
            raise
    return True


def _leave(switches: _Switches, precision: str) -> None:
    with _MUTEX:
        _release(switches, precision)


def _release(switches: _Switches, precision: str) -> None:
    """One call at ``precision`` is done: the switches for those left, or as they were
    before the first, each that still holds what the calls set (the caller holds
    :data:`_MUTEX`)."""
    switches.active[precision] -= 1
    if not switches.active[precision]:
        del switches.active[precision]
    if switches.active:
        _apply(switches)
        return
    for s, value in zip(switches.objects(), switches.saved, strict=True):
        if s.fp32_precision == switches.applied:  # else the program set it meanwhile
            s.fp32_precision = value


def _apply(switches: _Switches) -> None:
    """Set the switches for the calls under way: TF32 only while none of them asked for
    ``"highest"``."""
    value = "ieee" if "highest" in switches.active else "tf32"
    for s in switches.objects():
        if s.fp32_precision != value:
            s.fp32_precision = value
    switches.applied = value


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
