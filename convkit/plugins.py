"""The plugin manager: loads every ``convkit`` entry point, one at a time, in isolation.

A plugin that fails to import, declares an invalid or misspelled hook, or raises while
registering its backends is recorded as a :class:`PluginFailure`, announced with a
:class:`PluginWarning`, and skipped; the other plugins load as usual.
``CONVKIT_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the entry points of the ``convkit``
distribution itself (the built-in backends); ``CONVKIT_DISABLED_PLUGINS=a,b`` skips the
named plugins (entry-point or distribution names; the built-in ``numpy`` backend stays);
``CONVKIT_TRACE_PLUGINS=1`` prints every hook call to stderr (pluggy's tracing).

A plugin module states the plugin API it was written for as ``CONVKIT_PLUGIN_API = 1``;
a plugin stating another version (or none) is refused and listed with both versions.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from convkit import hookspecs
from convkit.backend import Backend
from convkit.registry import BackendRegistry, KernelRegistry

__all__ = [  # the registries stay importable from here, where plugins found them in 0.1
    "BackendRegistry",
    "KernelRegistry",
    "PluginFailure",
    "PluginHost",
    "PluginWarning",
    "failures",
    "host",
    "reload",
]

ENTRY_POINT_GROUP = "convkit"
BUILTIN_DISTRIBUTION = "convkit"
PLUGIN_API_VERSION = 1
"""The plugin API this convkit provides; plugins state theirs as ``CONVKIT_PLUGIN_API``."""
UNDISABLEABLE = ("numpy", "kernels")
"""Built-ins that stay loaded: every backend relies on NumPy's for NumPy arrays, and the
kernels plugin holds the named kernels the command line documents."""


class PluginWarning(UserWarning):
    """A plugin could not be loaded; the others were."""


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that was skipped, and why."""

    plugin: str
    distribution: str | None
    error: str
    traceback: str


@dataclass
class PluginHost:
    """The loaded plugin manager, the registry it filled, and the plugins it skipped."""

    manager: pluggy.PluginManager
    registry: BackendRegistry
    failures: list[PluginFailure]
    kernels: KernelRegistry = field(default_factory=KernelRegistry)
    disabled: list[str] = field(default_factory=list)
    owners: dict[type, Backend] = field(default_factory=dict)
    """The backend that owns each array type seen so far (``Backend.owns`` decides by
    type), so a call does not ask every backend again."""

    def origin(self, backend: str) -> str:
        """``plugin 'p' (distribution d v)`` for a registered backend, for messages."""
        entry = self.registry._entries.get(backend)
        if entry is None:
            return "an unknown plugin"
        dist = f"{entry.distribution} {entry.version}" if entry.distribution else "no distribution"
        return f"plugin {entry.plugin!r} ({dist})"


_lock = threading.Lock()
_host: PluginHost | None = None


def host() -> PluginHost:
    """Load the plugins on first use and return the result (cached)."""
    global _host
    if _host is None:
        with _lock:
            if _host is None:
                _host = _load()
    return _host


def reload() -> PluginHost:
    """Forget the loaded plugins and load them again (after installing one, say)."""
    global _host
    with _lock:
        _host = _load()
    return _host


def failures() -> list[PluginFailure]:
    """The plugins that could not be loaded, with their errors."""
    return list(host().failures)


def _autoload_disabled() -> bool:
    return os.environ.get("CONVKIT_DISABLE_PLUGIN_AUTOLOAD", "").strip() not in ("", "0")


def _disabled_plugins() -> set[str]:
    value = os.environ.get("CONVKIT_DISABLED_PLUGINS", "")
    return {n.strip() for n in value.split(",") if n.strip()}


def _load() -> PluginHost:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if os.environ.get("CONVKIT_TRACE_PLUGINS", "").strip() not in ("", "0"):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    registry = BackendRegistry()
    kernels = KernelRegistry()
    fails: list[PluginFailure] = []
    skipped: list[str] = []
    builtins_only = _autoload_disabled()
    disabled = _disabled_plugins()
    for ep in _ordered(entry_points(group=ENTRY_POINT_GROUP)):
        dist = ep.dist.name if ep.dist is not None else None
        version = ep.dist.version if ep.dist is not None else None
        if builtins_only and dist != BUILTIN_DISTRIBUTION:
            continue
        if ep.name in disabled or (dist is not None and dist in disabled):
            if ep.name in UNDISABLEABLE and dist == BUILTIN_DISTRIBUTION:
                what = (
                    "the built-in NumPy backend, which cannot be disabled: every other "
                    "backend relies on it for NumPy arrays"
                    if ep.name == "numpy"
                    else "the built-in named kernels, which cannot be disabled"
                )
                _warn_once(f"CONVKIT_DISABLED_PLUGINS names {ep.name!r}, {what}. It stays loaded.")
            else:
                skipped.append(ep.name)
                continue
        try:
            _register(pm, ep)
            registry._begin(ep.name, dist, version)
            kernels._begin(ep.name)
            others = [p for n, p in pm.list_name_plugin() if n != ep.name]
            pm.subset_hook_caller("convkit_add_backends", remove_plugins=others)(registry=registry)
            pm.subset_hook_caller("convkit_add_kernels", remove_plugins=others)(registry=kernels)
            registry._commit()
            kernels._commit()
        except Exception as exc:
            if pm.has_plugin(ep.name):
                pm.unregister(name=ep.name)
            failure = PluginFailure(
                plugin=ep.name,
                distribution=dist,
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
            )
            fails.append(failure)
            _warn_once(
                f'Error loading convkit plugin "{ep.name}" (distribution {dist}): {failure.error}'
            )
    return PluginHost(
        manager=pm, registry=registry, failures=fails, kernels=kernels, disabled=skipped
    )


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Announce a plugin problem as a :class:`PluginWarning`, once per process: loading
    again (:func:`reload`) or from another call site repeats nothing already said."""
    if message in _warned:
        return
    _warned.add(message)
    warnings.warn(message, PluginWarning, stacklevel=4)


def _ordered(eps: Iterable[EntryPoint]) -> list[EntryPoint]:
    """Built-ins first, so a third-party plugin cannot take a built-in backend's name;
    then by distribution and entry-point name, so the order does not depend on
    ``sys.path``."""

    def key(ep: EntryPoint) -> tuple[bool, str, str]:
        dist = ep.dist.name if ep.dist is not None else ""
        return (dist != BUILTIN_DISTRIBUTION, dist, ep.name)

    return sorted(eps, key=key)


class PluginAPIError(RuntimeError):
    """A plugin written for another plugin API than this convkit provides."""


def _register(pm: pluggy.PluginManager, ep: EntryPoint) -> None:
    plugin: Any = ep.load()
    stated = getattr(plugin, "CONVKIT_PLUGIN_API", None)
    if stated is None:
        raise PluginAPIError(
            f"plugin {ep.name!r} states no CONVKIT_PLUGIN_API; this convkit provides plugin "
            f"API {PLUGIN_API_VERSION}"
        )
    if stated != PLUGIN_API_VERSION:
        raise PluginAPIError(
            f"plugin {ep.name!r} was written for convkit plugin API {stated}; this convkit "
            f"provides plugin API {PLUGIN_API_VERSION}"
        )
    pm.register(plugin, name=ep.name)
    try:
        pm.check_pending()
    except Exception:
        pm.unregister(name=ep.name)
        raise
