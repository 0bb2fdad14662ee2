"""torch kernels of the ``torch`` backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from convkit.padding import pad_indices
from convkit.spec import ConvSpec

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def check_device(device: Any) -> torch.device:
    """Parse a device option and check that it exists here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device; expected 'cpu', 'cuda' or 'cuda:N'"
        ) from exc
    if dev.type not in ("cpu", "cuda"):
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


def pad(x: torch.Tensor, padding: tuple[tuple[int, int], ...], mode: str) -> torch.Tensor:
    """Pad the spatial axes of ``(N, C, *S)`` in any convkit mode, for any width and d.

    Zeros use ``F.pad``; the other modes gather along each axis with the index maps of
    :func:`convkit.padding.pad_indices`, which have none of ``F.pad``'s limits.
    """
    if not any(lo or hi for lo, hi in padding):
        return x
    if mode == "zeros":
        flat = [w for lo, hi in reversed(padding) for w in (lo, hi)]
        return F.pad(x, flat)
    for axis, (lo, hi) in enumerate(padding, start=2):
        if lo or hi:
            index = torch.from_numpy(pad_indices(x.shape[axis], lo, hi, mode)).to(x.device)
            x = torch.index_select(x, axis, index)
    return x


def conv_valid(
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
        y = conv_valid(part, weight[:, :, a], None, stride[1:], dilation[1:], groups)
        total = y if total is None else total + y
    assert total is not None
    out = total.reshape(n, o0, *total.shape[1:]).movedim(1, 2)
    if bias is not None:
        out = out + bias.reshape(1, -1, *(1,) * d)
    return out


def conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec
) -> torch.Tensor:
    """Cross-correlation of a batched input; see :meth:`convkit.Backend.conv`."""
    native_pad: int | tuple[int, ...] = 0
    padding = spec.padding
    if spec.padding_mode == "zeros" and spec.ndim <= 3 and all(lo == hi for lo, hi in padding):
        native_pad, padding = tuple(lo for lo, _ in padding), ((0, 0),) * spec.ndim
    x = pad(x, padding, spec.padding_mode)
    if native_pad:
        return _CONV[spec.ndim](
            x, weight, bias, spec.stride, native_pad, spec.dilation, spec.groups
        )
    return conv_valid(x, weight, bias, spec.stride, spec.dilation, spec.groups)
