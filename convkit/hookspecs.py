"""The hooks a convkit plugin can implement.

A plugin is a module registered under the ``convkit`` entry-point group that states
``CONVKIT_PLUGIN_API = 1`` and defines functions decorated with :data:`hookimpl` and
named after the specs below; it may implement any of them. The built-in backends
(``convkit_numpy``, ``convkit_scipy``, ``convkit_torch``) are plugins of exactly this
kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from convkit.registry import BackendRegistry, KernelRegistry

PROJECT_NAME = "convkit"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def convkit_add_backends(registry: BackendRegistry) -> None:
    """Register the backends this plugin provides.

    Call ``registry.add(backend)`` once per backend, with an instance of a
    :class:`convkit.Backend` subclass. Registering a name that is already taken is an
    error, reported against this plugin; the other plugins are unaffected.

    :param registry: the registry to add backends to.

    .. versionadded:: 0.1
    """


@hookspec
def convkit_add_kernels(registry: KernelRegistry) -> None:
    """Register named kernels, for ``convkit filter --kernel NAME`` and
    :func:`convkit.adapters.kernels.kernel`.

    Call ``registry.add(name, domain, build, doc)``: ``domain`` is ``"image"`` or
    ``"audio"``; ``build(**params)`` returns the kernel (a 2-d array for images, 1-d taps
    for audio, which also receive ``rate``). A name already defined is an error reported
    against this plugin.

    :param registry: the registry to add kernels to.

    .. versionadded:: 0.1
    """
