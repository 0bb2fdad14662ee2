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

import functools
import importlib.util
import os
import re
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from convkit import hookspecs
from convkit.backend import Backend, BackendInfo

ENTRY_POINT_GROUP = "convkit"
BUILTIN_DISTRIBUTION = "convkit"
PLUGIN_API_VERSION = 1
"""The plugin API this convkit provides; plugins state theirs as ``CONVKIT_PLUGIN_API``."""
UNDISABLEABLE = "numpy"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class PluginWarning(UserWarning):
    """A plugin could not be loaded; the others were."""


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that was skipped, and why."""

    plugin: str
    distribution: str | None
    error: str
    traceback: str


@dataclass(frozen=True)
class _Entry:
    backend: Backend
    plugin: str
    distribution: str | None
    version: str | None


class BackendRegistry:
    """The backends registered by plugins, by name.

    Plugins receive it in :func:`~convkit.hookspecs.convkit_add_backends` and call
    :meth:`add`.
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._plugin: tuple[str, str | None, str | None] = ("", None, None)
        self._staged: list[_Entry] = []

    def add(self, backend: Backend) -> None:
        """Register ``backend`` under ``backend.name``.

        Raises ``TypeError`` for an object that is not a :class:`convkit.Backend` and
        ``ValueError`` for a malformed or already registered name.
        """
        if not isinstance(backend, Backend):
            raise TypeError(f"registry.add() expects a convkit.Backend instance; got {backend!r}")
        name = backend.name
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"backend name {name!r} is invalid; expected lowercase letters, digits "
                f"and '_', starting with a letter"
            )
        if name == "auto":
            raise ValueError("backend name 'auto' is reserved")
        taken = self._entries.get(name) or next(
            (e for e in self._staged if e.backend.name == name), None
        )
        if taken is not None:
            raise ValueError(f"backend {name!r} is already registered by plugin {taken.plugin!r}")
        self._staged.append(_Entry(backend, *self._plugin))

    def _begin(self, plugin: str, distribution: str | None, version: str | None) -> None:
        self._plugin = (plugin, distribution, version)
        self._staged = []

    def _commit(self) -> None:
        for entry in self._staged:
            self._entries[entry.backend.name] = entry
        self._staged = []

    def names(self) -> list[str]:
        """Registered backend names, in registration order."""
        return list(self._entries)

    def get(self, name: str) -> Backend | None:
        """The backend registered as ``name``, or ``None``."""
        entry = self._entries.get(name)
        return entry.backend if entry else None

    def version(self, name: str) -> str | None:
        """The version of the distribution that registered backend ``name`` (``None``
        when unknown); read once, at loading."""
        entry = self._entries.get(name)
        return entry.version if entry else None

    def info(self) -> list[BackendInfo]:
        """One record per registered backend, with its availability (checked once per
        process, see :func:`unavailable_reason`)."""
        out = []
        for name, e in self._entries.items():
            reason = unavailable_reason(e.backend)
            out.append(
                BackendInfo(
                    name=name,
                    available=reason is None,
                    reason=reason,
                    plugin=e.plugin,
                    distribution=e.distribution,
                    version=e.version,
                    capabilities=e.backend.capabilities,
                )
            )
        return out


@dataclass(frozen=True)
class KernelEntry:
    """A named kernel contributed by a plugin."""

    name: str
    domain: str
    build: Callable[..., Any]
    doc: str
    plugin: str


class KernelRegistry:
    """Named kernels contributed by plugins; they receive it in
    :func:`~convkit.hookspecs.convkit_add_kernels` and call :meth:`add`."""

    def __init__(self) -> None:
        self._entries: dict[str, KernelEntry] = {}
        self._plugin = ""
        self._staged: list[KernelEntry] = []

    def add(self, name: str, domain: str, build: Callable[..., Any], doc: str = "") -> None:
        """Register kernel ``name`` for ``domain`` (``"image"`` or ``"audio"``); ``build``
        takes the kernel's parameters as keywords (audio kernels also ``rate``) and
        returns the kernel as an array."""
        from convkit.adapters.kernels import KERNELS

        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"kernel name {name!r} is invalid; expected lowercase letters, "
                f"digits and '_', starting with a letter"
            )
        if domain not in ("image", "audio"):
            raise ValueError(f"kernel {name!r}: domain={domain!r}; expected 'image' or 'audio'")
        if not callable(build):
            raise TypeError(f"kernel {name!r}: build must be callable; got {build!r}")
        if name in KERNELS or name in self._entries or any(e.name == name for e in self._staged):
            raise ValueError(f"kernel {name!r} is already defined")
        self._staged.append(KernelEntry(name, domain, build, doc, self._plugin))

    def _begin(self, plugin: str) -> None:
        self._plugin, self._staged = plugin, []

    def _commit(self) -> None:
        for entry in self._staged:
            self._entries[entry.name] = entry
        self._staged = []

    def get(self, name: str) -> KernelEntry | None:
        """The kernel registered as ``name``, or ``None``."""
        return self._entries.get(name)

    def names(self) -> list[str]:
        """Registered kernel names."""
        return list(self._entries)


_availability: dict[int, tuple[Backend, str | None]] = {}


def unavailable_reason(backend: Backend) -> str | None:
    """Why ``backend`` cannot run here (``None``: it can), from its full
    :meth:`~convkit.backend.Backend.unavailable_reason` check, which may import its
    libraries and run them once; checked once per backend object and process. A check
    that raises makes the backend unavailable, with the error as the reason."""
    hit = _availability.get(id(backend))
    if hit is None or hit[0] is not backend:
        try:
            reason = backend.unavailable_reason()
        except Exception as exc:  # a broken check must not break listing or calls
            reason = f"availability check failed: {type(exc).__name__}: {exc}"
        hit = (backend, reason)
        _availability[id(backend)] = hit
    return hit[1]


def installed(backend: Backend) -> bool:
    """A check that imports nothing: whether ``backend`` may be available. For a
    backend whose library is not imported yet this only looks for the modules it
    :attr:`~convkit.backend.Backend.requires`; otherwise it is the full check.
    ``auto`` uses it to weigh a backend without loading it (a NumPy-only program must
    not import torch to learn it would not use it); the full check runs before the
    backend is first used."""
    hit = _availability.get(id(backend))
    if hit is not None and hit[0] is backend:
        return hit[1] is None
    if backend.loaded():
        return unavailable_reason(backend) is None
    return all(_module_found(m) for m in backend.requires)


@functools.cache
def _module_found(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@dataclass
class PluginHost:
    """The loaded plugin manager, the registry it filled, and the plugins it skipped."""

    manager: pluggy.PluginManager
    registry: BackendRegistry
    failures: list[PluginFailure]
    kernels: KernelRegistry = field(default_factory=KernelRegistry)
    disabled: list[str] = field(default_factory=list)

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
            if ep.name == UNDISABLEABLE and dist == BUILTIN_DISTRIBUTION:
                _warn_once(
                    f"CONVKIT_DISABLED_PLUGINS names {ep.name!r}, the built-in NumPy backend, "
                    f"which cannot be disabled: every other backend relies on it for NumPy "
                    f"arrays. It stays loaded."
                )
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
