"""convkit: N-dimensional convolution with pluggable backends.

>>> import numpy as np, convkit as ck
>>> x = np.ones((1, 1, 4, 4))
>>> w = np.ones((1, 1, 3, 3))
>>> ck.conv(x, w).shape
(1, 1, 2, 2)
"""

from convkit import api as api  # 0.1's modules, still reached as ck.api, ck.xpsignal
from convkit import xpsignal as xpsignal
from convkit.backend import Backend, BackendInfo, Capabilities
from convkit.checks import BackendUnavailableError
from convkit.dispatch import BackendError
from convkit.hookspecs import hookimpl
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
from convkit.padding import PADDING_MODES
from convkit.planner import MethodChoice
from convkit.plugins import PluginWarning
from convkit.selection import ConfigError, Selection, set_backend, use_backend
from convkit.spec import ConvSpec
from convkit.threads import get_threads, set_threads

__version__ = "0.1.0"

__all__ = [
    "PADDING_MODES",
    "Backend",
    "BackendError",
    "BackendInfo",
    "BackendUnavailableError",
    "Capabilities",
    "ConfigError",
    "ConvSpec",
    "MethodChoice",
    "PluginWarning",
    "Selection",
    "__version__",
    "choose_conv_method",
    "choose_method",
    "conv",
    "conv_transpose",
    "conv_vjp",
    "convolve",
    "correlate",
    "explain",
    "get_backend",
    "get_threads",
    "hookimpl",
    "list_backends",
    "set_backend",
    "set_threads",
    "use_backend",
]
