"""How many threads the backends' libraries use during a call: one setting for all.

Three levels, the first that is set wins: :func:`set_threads`, the environment
variable ``CONVKIT_NUM_THREADS``, and ``threads = N`` in the config file (see
:mod:`convkit.selection`). When none is set, convkit leaves every library's thread
count as the process has it (``OPENBLAS_NUM_THREADS``, ``torch.set_num_threads``, …).
When one is set, it applies for the duration of each call only
(:meth:`Backend.limit_threads <convkit.backend.Backend.limit_threads>`: BLAS through
threadpoolctl's context manager, torch's count saved and restored, SciPy's FFT
``workers``), so the caller's own settings are back once the call returns.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Iterator

from convkit.backend import Backend
from convkit.selection import Config, ConfigError, load_config

_global: int | None = None
_current: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "convkit_threads", default=None
)
NOT_SET = "not set (each library keeps its own count)"


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


def get_threads(config: Config | str | None = None) -> tuple[int | None, str]:
    """The thread count calls use now, and where it came from (``config``: the config
    file already read for this call, see :func:`convkit.selection.config_of`). ``None``
    when no level sets one: then each library keeps the count the process gave it.

    >>> import convkit as ck
    >>> ck.set_threads(2)
    >>> ck.get_threads()
    (2, 'set_threads()')
    >>> ck.set_threads(None)
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
    return None, NOT_SET


def check(value: object, argument: str) -> int:
    """``value`` if it is a positive integer, else a ``ValueError`` naming ``argument``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{argument} must be a positive integer; got {value!r}")
    return value


@contextlib.contextmanager
def limit_blas(threads: int) -> Iterator[None]:
    """Within the block, every BLAS and OpenMP runtime loaded in this process uses
    ``threads`` threads (threadpoolctl); their previous counts are restored after it.
    For backends built on NumPy and SciPy.

    >>> with limit_blas(1):
    ...     pass
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield


def current() -> int | None:
    """The thread count of the call running in this thread or task (``None``: not
    set); for a backend's own worker pools.

    >>> current() is None
    True
    """
    return _current.get()


@contextlib.contextmanager
def limited(backend: Backend, threads: int | None = None) -> Iterator[None]:
    """Run a call of ``backend`` with ``threads`` threads (by default the ``threads``
    setting, if one is set); the libraries' own counts are restored afterwards. Without
    a count nothing is touched."""
    if threads is None:
        threads = get_threads()[0]
    if threads is None:
        yield
        return
    token = _current.set(threads)
    try:
        with backend.limit_threads(threads):
            yield
    finally:
        _current.reset(token)
