"""This machine's cost models: measured by ``convkit calibrate``, kept in the user's cache.

Every backend ships a built-in :class:`~convkit.costs.CostModel` measured on one kind of
machine. ``convkit calibrate`` times a few calls per backend (and device) here, solves
the model's formulas for its rates and stores them in ``costs.json`` in the cache
directory, much as FFTW keeps its wisdom. From then on ``auto`` and ``convkit explain``
use the stored rates; a backend without stored rates, or whose version changed since,
uses its built-in ones.

The cache directory is ``$CONVKIT_CACHE_DIR`` if set, else the platform's user cache
directory (``$XDG_CACHE_HOME/convkit`` or ``~/.cache/convkit`` on Linux,
``~/Library/Caches/convkit`` on macOS, ``%LOCALAPPDATA%\\convkit\\Cache`` on Windows).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from convkit.backend import Backend
from convkit.costs import CostModel
from convkit.fileio import atomic_output

FORMAT = 1
"""Version of the layout of ``costs.json``; files of another version are ignored."""


def cache_dir() -> Path:
    """The directory convkit keeps its measurements in.

    >>> import os
    >>> os.environ["CONVKIT_CACHE_DIR"] = "/tmp/convkit-cache"
    >>> str(cache_dir())
    '/tmp/convkit-cache'
    >>> del os.environ["CONVKIT_CACHE_DIR"]
    """
    return Path(_cache_dir())


def _cache_dir() -> str:
    env = os.environ
    key = (env.get("CONVKIT_CACHE_DIR"), env.get("XDG_CACHE_HOME"), env.get("HOME"))
    if key not in _dirs:  # this runs on every call under auto
        _dirs[key] = _find_cache_dir(env)
    return _dirs[key]


_dirs: dict[tuple[str | None, ...], str] = {}


def _find_cache_dir(env: Mapping[str, str]) -> str:
    named = env.get("CONVKIT_CACHE_DIR", "").strip()
    if named:
        return named
    home = os.path.expanduser("~")
    if sys.platform == "win32":
        base = env.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
        return os.path.join(base, "convkit", "Cache")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Caches", "convkit")
    base = env.get("XDG_CACHE_HOME", "").strip() or os.path.join(home, ".cache")
    return os.path.join(base, "convkit")


def costs_path() -> Path:
    """The file holding this machine's calibrated cost models."""
    return Path(_cache_dir(), "costs.json")


def model_key(backend: Backend, options: Mapping[str, Any]) -> str:
    """The key of a backend's cost model for a call: its name and the device's
    :meth:`~convkit.backend.Backend.device_key` (the kind, or for a GPU its index and
    model, so that two different GPUs never share rates).

    >>> from convkit import checks
    >>> model_key(checks.registered_backend("numpy"), {})
    'numpy:cpu'
    """
    device = str(options.get("device") or "cpu")
    return f"{backend.name}:{backend.device_key(device)}"


def machine() -> dict[str, Any]:
    """What the stored rates depend on besides the backend: the CPU and its core count."""
    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
    }


_cache: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}

saves = 0
"""How many times this process stored rates (:func:`save`); prepared calls
(:mod:`convkit.plans`) are made again after each."""


def stored() -> dict[str, Any]:
    """The entries of ``costs.json`` that apply to this machine (empty when none).

    A file that cannot be read or was written for another machine is ignored with a
    warning: a stale measurement must not break a call.
    """
    name = os.path.join(_cache_dir(), "costs.json")
    try:
        stat = os.stat(name)
    except OSError:
        return {}
    key = (stat.st_mtime_ns, stat.st_size)
    hit = _cache.get(name)
    if hit is not None and hit[0] == key:
        return hit[1]
    path = Path(name)
    entries: dict[str, Any] = {}
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        if data.get("machine") == machine():
            entries = dict(data["models"])
        else:
            warnings.warn(
                f"{path} was calibrated on another machine ({data.get('machine')}); using "
                f"built-in cost models; run 'convkit calibrate' again",
                RuntimeWarning,
                stacklevel=3,
            )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        warnings.warn(
            f"{path} cannot be used ({exc}); using built-in cost models; run 'convkit "
            f"calibrate' again",
            RuntimeWarning,
            stacklevel=3,
        )
    _cache[str(path)] = (key, entries)
    return entries


def cost_model(backend: Backend, options: Mapping[str, Any]) -> CostModel:
    """The cost model ``auto`` uses for ``backend`` with ``options``: the calibrated one
    when ``costs.json`` holds one for this backend version, else the built-in one."""
    return lookup(backend, options)[0]


def is_calibrated(backend: Backend, options: Mapping[str, Any]) -> bool:
    """Whether :func:`cost_model` comes from a measurement on this machine."""
    return lookup(backend, options)[1]


def lookup(backend: Backend, options: Mapping[str, Any]) -> tuple[CostModel, bool]:
    """:func:`cost_model` and :func:`is_calibrated` at once."""
    entries = stored()
    if not entries:
        return backend.cost_model(options), False
    entry = entries.get(model_key(backend, options))
    if entry is not None and entry.get("version") == _version(backend):
        fields = {f.name for f in dataclasses.fields(CostModel)}
        rates = {k: v for k, v in entry.get("rates", {}).items() if k in fields}
        try:
            return CostModel(**rates), True
        except TypeError:
            pass
    return backend.cost_model(options), False


def _version(backend: Backend) -> str:
    """The version of the distribution that registered ``backend``, as read when the
    plugins were loaded (a dictionary lookup: this runs on every call under auto)."""
    from convkit import plugins

    version = plugins.host().registry.version(backend.name)
    return "unknown" if version is None else str(version)


def save(models: Mapping[str, CostModel], versions: Mapping[str, str]) -> Path:
    """Store ``models`` (by :func:`model_key`) in ``costs.json``, keeping the entries of
    other backends; the file is replaced atomically."""
    path = costs_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = dict(stored())
    for key, model in models.items():
        entries[key] = {"version": versions[key], "rates": dataclasses.asdict(model)}
    data = {"format": FORMAT, "machine": machine(), "models": entries}
    with atomic_output(path) as f:
        f.write(json.dumps(data, indent=2, sort_keys=True).encode())
    _cache.pop(str(path), None)
    global saves
    saves += 1
    return path
