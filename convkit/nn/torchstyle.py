"""PyTorch's conventions for convolution layers, shared by :mod:`convkit.nn` and
:mod:`convkit.nn.torch` (which needs torch; this module does not): how padding is
stored and how a layer shows itself."""

from __future__ import annotations

from typing import Any

from convkit.spec import explicit_padding

TORCH_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
"""The padding modes ``torch.nn.ConvNd`` has (convkit adds ``symmetric``)."""


def canonical_padding(padding: Any, d: int) -> str | tuple[Any, ...]:
    """``"same"``/``"valid"`` as they are; sizes as one entry per dimension: an int
    where both sides are equal (as PyTorch stores them), else a ``(low, high)`` pair.

    >>> canonical_padding(1, 2), canonical_padding(((1, 1), (0, 2)), 2)
    ((1, 1), (1, (0, 2)))
    """
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(
                f"padding={padding!r} is not a padding; expected 'same', 'valid', an int, "
                f"a tuple of {d} ints or a tuple of {d} (low, high) pairs"
            )
        return padding
    pairs = explicit_padding(padding, d)
    return tuple(lo if lo == hi else (lo, hi) for lo, hi in pairs)


def conv_repr(conv: Any) -> str:
    """PyTorch's ``_ConvNd.extra_repr`` for a convolution (convkit's or a torch
    module of :mod:`convkit.nn.torch`): the options that differ from the defaults."""
    d = len(conv.kernel_size)
    s = f"{conv.in_channels}, {conv.out_channels}, kernel_size={conv.kernel_size}, "
    s += f"stride={conv.stride}"
    padding = canonical_padding(conv.padding, d)
    if padding != (0,) * d:
        s += f", padding={padding}"
    if tuple(conv.dilation) != (1,) * d:
        s += f", dilation={conv.dilation}"
    output_padding = tuple(getattr(conv, "output_padding", (0,) * d))
    if output_padding != (0,) * d:
        s += f", output_padding={output_padding}"
    if conv.groups != 1:
        s += f", groups={conv.groups}"
    if conv.bias is None:
        s += ", bias=False"
    if conv.padding_mode != "zeros":
        s += f", padding_mode={conv.padding_mode}"
    return s
