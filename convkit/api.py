"""The names convkit 0.1 kept in ``convkit.api``, where code written against it finds
them; new code imports them from :mod:`convkit` (the operations), or
:mod:`convkit.checks` and :mod:`convkit.dispatch` (their errors and checks)."""

from convkit.checks import (
    BackendUnavailableError,
    check_selection,
    registered_backend,
)
from convkit.dispatch import BackendError
from convkit.dtypes import COMPLEX_DTYPES, FLOAT_DTYPES, INTEGER_DTYPES, SIGNAL_DTYPES
from convkit.ops import (
    choose_conv_method,
    choose_method,
    conv,
    conv_transpose,
    conv_vjp,
    convolve,
    correlate,
    explain,
    get_backend,
    list_backends,
)
from convkit.planner import MethodChoice

__all__ = [
    "COMPLEX_DTYPES",
    "FLOAT_DTYPES",
    "INTEGER_DTYPES",
    "SIGNAL_DTYPES",
    "BackendError",
    "BackendUnavailableError",
    "MethodChoice",
    "check_selection",
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
    "registered_backend",
]
