"""How many threads the backends' libraries use: one setting for all of them.

Three levels, the first that is set wins: :func:`set_threads`, the environment
variable ``CONVKIT_NUM_THREADS``, and ``threads = N`` in the config file (see
:mod:`convkit.selection`). The default is every core this process may run on. Before a
call the core hands the number to the backend that runs it (:meth:`Backend.set_threads
<convkit.backend.Backend.set_threads>`: BLAS through threadpoolctl, ``torch.set_num_threads``,
SciPy's FFT workers), and again only when it changes.
"""

from __future__ import annotations

import functools
import os
import threading

from convkit.backend import Backend
from convkit.selection import Config, ConfigError, load_config

_global: int | None = None
_applied: dict[str, int] = {}
_lock = threading.Lock()


@functools.cache
def cores() -> int:
    """The number of cores this process may run on (read once)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def set_threads(threads: int | None) -> None:
    """Use ``threads`` threads in every backend from now on; ``None`` returns to the
    environment, the config file, or all cores.

    >>> import convkit as ck
    >>> ck.set_threads(1)
    >>> ck.get_threads()
    (1, 'set_threads()')
    >>> ck.set_threads(None)
    """
    global _global
    _global = None if threads is None else check(threads, "threads")


def get_threads(config: Config | str | None = None) -> tuple[int, str]:
    """The thread count calls use now, and where it came from (``config``: the config
    file already read for this call, see :func:`convkit.selection.config_of`).

    >>> import convkit as ck
    >>> ck.get_threads()[0] >= 1
    True
    """
    if _global is not None:
        return _global, "set_threads()"
    env = os.environ.get("CONVKIT_NUM_THREADS", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            value = -1
        if value < 1:
            raise ConfigError(
                f"env var CONVKIT_NUM_THREADS={env!r} is not a thread count; expected a "
                f"positive integer"
            )
        return value, "env var CONVKIT_NUM_THREADS"
    if config is None:
        config = load_config()
    if isinstance(config, Config) and config.threads is not None:
        return config.threads, config.source("threads")
    return cores(), "default (all cores)"


def check(value: object, argument: str) -> int:
    """``value`` if it is a positive integer, else a ``ValueError`` naming ``argument``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{argument} must be a positive integer; got {value!r}")
    return value


def limit_blas(threads: int) -> None:
    """Set the thread count of every BLAS and OpenMP runtime loaded in this process
    (through threadpoolctl); for backends built on NumPy and SciPy.

    >>> limit_blas(cores())
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


def apply(backend: Backend, config: Config | str | None = None) -> None:
    """Hand the current thread count to ``backend`` if it changed since the last call."""
    threads = get_threads(config)[0]
    if _applied.get(backend.name) == threads:
        return
    with _lock:
        backend.set_threads(threads)
        _applied[backend.name] = threads
