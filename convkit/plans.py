"""Prepared calls: a call that repeats an earlier call's signature skips the work whose
outcome the signature decides.

A call's *signature* is everything its validation, backend selection and planning read:
the operation and its arguments, the type, shape and dtype of each array (and whatever
else its owner says matters, such as a tensor's device; :meth:`Backend.array_key
<convkit.backend.Backend.array_key>`), and the selection state — the
:func:`~convkit.use_backend` context and :func:`~convkit.set_backend` choice, the thread
setting, the ``CONVKIT_*`` environment variables, the working directory, the loaded
plugins and modules, and the config file and ``costs.json`` in force. The first call
with a signature runs the full path and leaves a plan (:class:`convkit.dispatch.Plan`:
the backend, method, dtype and checks it settled on); the next runs the plan, which
converts, computes, checks the result's shape and dtype and converts back. Bad input
never reaches a plan: a call that raises leaves none.

Environment variables, contexts and the working directory are read on every call. Files
are the exception: reading them costs more than a small convolution, so a plan sees an
edited config file or ``costs.json`` within :data:`FILES_RECHECK_SECONDS` (calls with a
new signature and :func:`convkit.get_backend` see them at once, and so does every call
after this process stored new rates).

A signature describes what convkit reads, not the code it runs: a backend replaced or
patched in place (its class's methods or capabilities changed after a call) is not seen
by the plans made before; :func:`clear` forgets them.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from convkit import calibration, plugins, selection, threads

PLAN_LIMIT = 512
"""Plans kept; the oldest is dropped beyond this."""

FILES_RECHECK_SECONDS = 1.0
"""How often, at most, plans look at the config file and ``costs.json`` again."""

ENV_VARS = (
    "CONVKIT_BACKEND",
    "CONVKIT_DEVICE",
    "CONVKIT_CONFIG",
    "CONVKIT_NUM_THREADS",
    "CONVKIT_CACHE_DIR",
    "XDG_CACHE_HOME",
    "LOCALAPPDATA",
)
"""The environment variables selection, threads and calibration read."""

_plans: dict[Hashable, Callable[..., Any]] = {}
_lock = threading.Lock()
_files: tuple[float, Hashable] = (-float("inf"), None)


def _environment() -> Callable[[], tuple[Any, ...]]:
    """A reader of :data:`ENV_VARS`' values. ``os.environ`` decodes each lookup (about
    1 µs a variable, a miss costing most); its encoded table is read directly where the
    interpreter has one, falling back to ``os.environ`` if it was replaced."""
    environ = os.environ
    data = getattr(environ, "_data", None)
    encode = getattr(environ, "encodekey", None)
    if not isinstance(data, dict) or encode is None:
        return lambda: tuple(os.environ.get(v) for v in ENV_VARS)
    keys = tuple(encode(v) for v in ENV_VARS)
    get = data.get

    def read() -> tuple[Any, ...]:
        if os.environ is not environ:
            return tuple(os.environ.get(v) for v in ENV_VARS)
        return tuple(map(get, keys))

    return read


_read_environment = _environment()


def _file_state() -> Hashable:
    """The config file in force and ``costs.json``, each as ``(path, mtime, size)``;
    looked at again when :data:`FILES_RECHECK_SECONDS` have passed."""
    global _files
    now = time.monotonic()
    checked, state = _files
    if now - checked < FILES_RECHECK_SECONDS:
        return state
    found = selection.find_config_file()
    parts: list[Any] = []
    for path in (None if found is None else str(found[0]), str(calibration.costs_path())):
        try:
            info = os.stat(path) if path is not None else None
        except OSError:
            info = None
        parts.append(None if info is None else (path, info.st_mtime_ns, info.st_size))
    state = tuple(parts)
    _files = (now, state)
    return state


def refresh() -> None:
    """Look at the files again on the next call (rates stored by this process, as
    ``convkit calibrate`` stores them, are part of every signature already).

    >>> refresh()
    """
    global _files
    _files = (-float("inf"), None)


def key(
    host: plugins.PluginHost, op: str, arrays: tuple[Any, ...], arguments: tuple[Any, ...]
) -> Hashable | None:
    """The signature of a call of ``op`` on ``arrays`` (``None`` entries stay ``None``)
    with ``arguments``, or ``None`` when the call cannot have a plan: an array whose
    owner is not known yet or does not describe it (:meth:`Backend.array_key
    <convkit.backend.Backend.array_key>`), an argument that is not hashable (a list), a
    config file that cannot be read.

    >>> import numpy as np
    >>> host, x = plugins.host(), np.ones((1, 1, 8))
    >>> key(host, "conv", (x, x, None), ([1],)) is None  # a list argument
    True
    """
    kinds = tuple(map(type, arguments))  # 1, 1.0 and True are equal keys, not equal calls
    if tuple in kinds and not all(_integral(a) for a in arguments if type(a) is tuple):
        return None
    parts: list[Any] = [op, arguments, kinds]
    owners = host.owners
    for a in arrays:
        if a is None:
            parts.append(None)
            continue
        kind = type(a)
        owner = owners.get(kind)
        if owner is None:
            return None
        described = owner.array_key(a)
        if described is None:
            return None
        parts.append((kind, described))
    try:
        files = _file_state()
    except Exception:  # a bad CONVKIT_CONFIG: the full path reports it
        return None
    parts.append(
        (
            id(host),
            host.registry.generation,
            len(sys.modules),
            id(selection._context.get()),
            id(selection._global),
            threads._global,
            threads._current.get(),
            _read_environment(),
            os.getcwd(),
            files,
            calibration.saves,
        )
    )
    signature = tuple(parts)
    try:
        hash(signature)
    except TypeError:
        return None
    return signature


def lookup(
    op: str, arrays: tuple[Any, ...], arguments: tuple[Any, ...]
) -> tuple[plugins.PluginHost, Hashable | None, Callable[..., Any] | None]:
    """The plugin host, the call's signature (:func:`key`) and the plan stored for it
    (``None`` if there is none): what a public operation looks up first.

    >>> import numpy as np
    >>> host, signature, plan = lookup("conv", (np.ones((1, 1, 4)), [1.0], None), (1,))
    >>> signature is None and plan is None  # a list: no signature
    True
    """
    host = plugins.host()
    signature = key(host, op, arrays, arguments)
    return host, signature, get(signature)


def _integral(value: tuple[Any, ...]) -> bool:
    """Whether a tuple argument holds ints (or tuples of ints) only: anything else
    (a float, a bool) takes the full path, which checks it."""
    return all(type(v) is int or (type(v) is tuple and _integral(v)) for v in value)


def get(signature: Hashable | None) -> Callable[..., Any] | None:
    """The plan stored for ``signature``, if any.

    >>> get(None) is None
    True
    """
    return None if signature is None else _plans.get(signature)


def store(signature: Hashable, plan: Callable[..., Any], keep: tuple[Any, ...] = ()) -> None:
    """Keep ``plan`` for ``signature``. ``keep`` are the objects whose identities the
    signature holds (:func:`selection_objects`), kept alive with the plan so that no
    other object takes their identity while it exists; when they are no longer the
    ones the signature was made with (another thread selected a backend meanwhile), the
    plan is not kept."""
    state = signature[-1] if isinstance(signature, tuple) else None
    # the selection objects' identities sit at 3 and 4 of the state key() appends
    if not isinstance(state, tuple) or state[3:5] != tuple(id(k) for k in keep):
        return
    with _lock:
        if len(_plans) >= PLAN_LIMIT:
            del _plans[next(iter(_plans))]
        plan.keep = keep  # type: ignore[attr-defined]
        _plans[signature] = plan


def selection_objects() -> tuple[Any, ...]:
    """The selection objects a signature names by identity (see :func:`store`).

    >>> selection_objects()  # no use_backend() context, no set_backend()
    (None, None)
    """
    return (selection._context.get(), selection._global)


def clear() -> None:
    """Forget every plan.

    >>> clear(); len(_plans)
    0
    """
    with _lock:
        _plans.clear()
    refresh()
