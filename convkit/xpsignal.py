"""The shared array-API algorithms under the names convkit 0.1 gave them in one module,
for plugins written against it; they live in :mod:`convkit.algorithms` (and the
padding's adjoint in :mod:`convkit.padding`)."""

from convkit.algorithms.direct import ConvFn, dilate, direct_convolve, reverse_conj
from convkit.algorithms.fft import fft_conv, fft_convolve, next_fast_len, oa_blocks
from convkit.algorithms.integers import (
    FLOAT64_EXACT,
    integer_exact,
    max_magnitude,
    round_to_integers,
)
from convkit.algorithms.vjp import (
    conv_input_grad,
    conv_vjp,
    conv_weight_grad,
    unpad_adjoint,
)
from convkit.padding import pad, pad_adjoint

__all__ = [
    "FLOAT64_EXACT",
    "ConvFn",
    "conv_input_grad",
    "conv_vjp",
    "conv_weight_grad",
    "dilate",
    "direct_convolve",
    "fft_conv",
    "fft_convolve",
    "integer_exact",
    "max_magnitude",
    "next_fast_len",
    "oa_blocks",
    "pad",
    "pad_adjoint",
    "reverse_conj",
    "round_to_integers",
    "unpad_adjoint",
]
