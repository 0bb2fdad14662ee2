"""The Dask backend's settings and the scheduler it computes on.

Each setting is read when it is needed, from (first found):

1. an option given explicitly with the selection (``use_backend("dask", chunks=32)``,
   ``set_backend("dask", ...)``): it always wins, even where it equals the file's value;
2. the environment variable ``CONVKIT_DASK_<NAME>``, parsed as Dask parses its own
   ``DASK_*`` variables (:func:`dask.config.interpret_value`: ``32`` is an int, ``2.5``
   a float, ``(64, 64)`` a tuple, ``true``/``false``/``none`` a bool or ``None``;
   anything else, such as ``1MiB`` or ``tcp://host:8786``, stays a string);
3. the config file's ``[tool.convkit.dask]`` table (``[dask]`` in ``convkit.toml``);
4. the default (:data:`DEFAULTS`).

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

FROM_FILE = "config file [tool.convkit.dask]"
"""The provenance of a setting read from the config file."""


def env_var(name: str) -> str:
    """The environment variable of setting ``name``.

    >>> env_var("compute_limit")
    'CONVKIT_DASK_COMPUTE_LIMIT'
    """
    return f"CONVKIT_DASK_{name.upper()}"


def interpret_env_value(value: str) -> Any:
    """An environment variable's text as a setting's value, parsed as Dask parses its
    own ``DASK_*`` variables: a Python literal where it is one, ``true``, ``false``,
    ``none`` and ``null`` in any case, else the text itself.

    >>> interpret_env_value("32"), interpret_env_value("2.5"), interpret_env_value("1MiB")
    (32, 2.5, '1MiB')
    >>> interpret_env_value("(64, 32)"), interpret_env_value("True"), interpret_env_value("auto")
    ((64, 32), True, 'auto')
    """
    from dask.config import interpret_value

    return interpret_value(value)


def explicit_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options of ``options`` given explicitly with the selection, without those
    the core merged in from the config file's table (see
    :class:`convkit.selection.BackendOptions`).

    >>> explicit_options(selection.BackendOptions({"chunks": 8, "inner": "numpy"}, {"chunks"}))
    {'inner': 'numpy'}
    """
    options = options or {}
    table = _config_table() if _provenance(options) is None else {}
    return {
        name: value
        for name, value in options.items()
        if value is not None and not _from_file(name, options, table)
    }


def setting(name: str, options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """The value of setting ``name`` and where it came from: an explicit option, else
    the environment variable (parsed by :func:`interpret_env_value`), else the config
    file's table, else the default.

    ``options`` are the selection's options. Those merged in by the core from the config
    file are told apart by :class:`convkit.selection.BackendOptions`; a plain mapping
    (a copy without that record) counts a value equal to the file's as the file's.

    >>> setting("inner", {})
    ('auto', 'default')
    >>> setting("inner", {"inner": "scipy"})
    ('scipy', 'option')
    """
    options = options or {}
    table = _config_table()
    given = options.get(name)
    if given is not None and not _from_file(name, options, table):
        return given, "option"
    raw = os.environ.get(env_var(name), "").strip()
    if raw:
        return interpret_env_value(raw), f"env var {env_var(name)}"
    if given is not None:  # merged in from the config file by the core
        return given, FROM_FILE
    if name in table:
        return table[name], FROM_FILE
    return DEFAULTS[name], "default"


def _provenance(options: Mapping[str, Any]) -> frozenset[str] | None:
    """The keys the core took from the config file, or ``None`` where ``options`` do not
    say (a plain mapping)."""
    return options.from_config if isinstance(options, selection.BackendOptions) else None


def _from_file(name: str, options: Mapping[str, Any], table: Mapping[str, Any]) -> bool:
    """Whether option ``name`` of ``options`` came from the config file's table."""
    keys = _provenance(options)
    if keys is not None:
        return name in keys
    return name in table and options.get(name) == table[name]


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
        if isinstance(value, bool):  # CONVKIT_DASK_COMPUTE_LIMIT=true is no size
            raise TypeError(value)
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
        seconds = -1.0 if isinstance(value, bool) else float(value)
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
            f"pip install -e '.[dask]' in the convkit checkout"
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
