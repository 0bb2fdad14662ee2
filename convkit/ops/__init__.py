"""The public operations, thin: each checks its arguments into a spec and hands the
call to :mod:`convkit.dispatch`."""

from convkit.ops.conv import conv, conv_transpose, conv_vjp
from convkit.ops.explain import (
    choose_conv_method,
    choose_method,
    explain,
    get_backend,
    list_backends,
)
from convkit.ops.signal import convolve, correlate

__all__ = [
    "choose_conv_method",
    "choose_method",
    "conv",
    "conv_transpose",
    "conv_vjp",
    "convolve",
    "correlate",
    "explain",
    "get_backend",
    "list_backends",
]
