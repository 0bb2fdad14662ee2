"""The Dask backend's settings and the scheduler it computes on.

Each setting is read when it is needed, from (first found): an option given with the
selection (``use_backend("dask", scheduler=...)``), the environment variable
``CONVKIT_DASK_<NAME>``, the config file's ``[tool.convkit.dask]`` table, the default.
The environment beats the config file, as for convkit's other settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from convkit import selection

DEFAULTS: dict[str, Any] = {
    "chunks": "auto",
    "scheduler": "threads",
    "inner": "auto",
    "compute_limit": "256MiB",
    "timeout": 5.0,
}
"""Every option the backend takes, with its default."""

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous", "sync", "single-threaded")
"""Scheduler names that need no cluster; anything else is a scheduler address."""


def setting(name: str, options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """The value of setting ``name`` and where it came from.

    >>> setting("inner", {})
    ('auto', 'default')
    >>> setting("inner", {"inner": "scipy"})
    ('scipy', 'option')
    """
    options = options or {}
    table = _config_table()
    env = os.environ.get(f"CONVKIT_DASK_{name.upper()}", "").strip()
    given = options.get(name)
    # for_backend() merges the config table into the options; a value equal to the
    # table's came from the file, and the environment beats the file
    from_file = name in table and given == table[name]
    if given is not None and not (env and from_file):
        return given, ("config file [tool.convkit.dask]" if from_file else "option")
    if env:
        return env, f"env var CONVKIT_DASK_{name.upper()}"
    if name in table:
        return table[name], "config file [tool.convkit.dask]"
    return DEFAULTS[name], "default"


def _config_table() -> Mapping[str, Any]:
    config = selection.load_config()
    if config is None:
        return {}
    return config.backend_options.get("dask", {})


def compute_limit(options: Mapping[str, Any] | None = None) -> int:
    """The most bytes the backend computes into one NumPy array of a caller's Dask
    array (``compute_limit``, such as ``"256MiB"`` or a number of bytes).

    >>> compute_limit({"compute_limit": "1KiB"})
    1024
    """
    from dask.utils import parse_bytes

    value, source = setting("compute_limit", options)
    try:
        limit = parse_bytes(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"compute_limit={value!r} (from {source}) is not a size; expected bytes "
            f"such as 268435456 or '256MiB'"
        ) from exc
    return int(limit)


def timeout(options: Mapping[str, Any] | None = None) -> float:
    """Seconds to wait for a scheduler to answer (``timeout``).

    >>> timeout({"timeout": "2.5"})
    2.5
    """
    value, source = setting("timeout", options)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"timeout={value!r} (from {source}) must be a positive number of seconds")
    return seconds


class SchedulerUnreachableError(ConnectionError):
    """The Dask scheduler named by the settings did not answer within the timeout."""


_clients: dict[str, Any] = {}


def scheduler(options: Mapping[str, Any] | None = None) -> Any:
    """The ``scheduler=`` argument for ``dask.compute``: a local scheduler's name
    (``"threads"`` by default) or a ``distributed.Client`` connected to the configured
    address (one per address, kept for the process).

    >>> scheduler({})
    'threads'
    """
    value, source = setting("scheduler", options)
    if not isinstance(value, str):
        return value  # a Client (or anything dask.compute accepts) given as an option
    if value in LOCAL_SCHEDULERS:
        return value
    client = _clients.get(value)
    if client is not None and client.status == "running":
        return client
    seconds = timeout(options)
    try:
        from distributed import Client
    except ImportError as exc:
        raise SchedulerUnreachableError(
            f"scheduler={value!r} (from {source}) needs dask.distributed; install it with "
            f"pip install 'convkit[dask]'"
        ) from exc
    try:
        client = Client(value, timeout=seconds, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SchedulerUnreachableError(
            f"cannot reach the Dask scheduler at {value!r} (from {source}) within "
            f"{seconds:g} s: {type(exc).__name__}: {exc}; check the address, or set "
            f"scheduler='threads' to compute on this machine"
        ) from exc
    _clients[value] = client
    return client


def check_scheduler_value(value: Any) -> None:
    """Raise ``ValueError`` for a scheduler setting that is neither a local scheduler's
    name nor an address (``tcp://host:8786``, ``tls://...``, ``inproc://...``).

    >>> check_scheduler_value("tcp://127.0.0.1:8786")
    >>> check_scheduler_value("thread")
    Traceback (most recent call last):
    ...
    ValueError: scheduler='thread' is neither a local scheduler (threads, processes, synchronous, sync, single-threaded) nor a scheduler address such as 'tcp://host:8786'
    """
    if not isinstance(value, str):
        return
    if value in LOCAL_SCHEDULERS or "://" in value:
        return
    raise ValueError(
        f"scheduler={value!r} is neither a local scheduler "
        f"({', '.join(LOCAL_SCHEDULERS)}) nor a scheduler address such as "
        f"'tcp://host:8786'"
    )
