"""What is registered: the backends and named kernels plugins added, the distribution
each came from, and whether each backend can run here (checked once per process).

Plugins receive a :class:`BackendRegistry` in
:func:`~convkit.hookspecs.convkit_add_backends` and a :class:`KernelRegistry` in
:func:`~convkit.hookspecs.convkit_add_kernels`; :mod:`convkit.plugins` fills them.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from convkit.backend import Backend, BackendInfo

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


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
        self.generation = 0
        """Counts the changes to the registered backends (for :mod:`convkit.plans`)."""

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
        self.generation += 1

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
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"kernel name {name!r} is invalid; expected lowercase letters, "
                f"digits and '_', starting with a letter"
            )
        if domain not in ("image", "audio"):
            raise ValueError(f"kernel {name!r}: domain={domain!r}; expected 'image' or 'audio'")
        if not callable(build):
            raise TypeError(f"kernel {name!r}: build must be callable; got {build!r}")
        if name in self._entries or any(e.name == name for e in self._staged):
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
