"""Whether a backend can take a call: registered, available here, and declaring what the
call needs. Every refusal is an error that names the backend, the value and what it
supports, raised before any array is converted."""

from __future__ import annotations

import difflib

from convkit import plugins, registry, selection
from convkit.backend import Backend
from convkit.spec import ConvSpec


class BackendUnavailableError(RuntimeError):
    """The selected backend is registered but cannot run here (a dependency is missing)."""


def registered_backend(name: str) -> Backend:
    """The registered backend called ``name`` (available or not), or a ``ValueError``."""
    return registered(plugins.host(), selection.Selection(name, {}, "argument"))


def registered(host: plugins.PluginHost, sel: selection.Selection) -> Backend:
    """The registered backend a (non-auto) selection names, or a ValueError."""
    registry = host.registry
    found = registry.get(sel.name)
    if found is None:
        names = registry.names()
        close = difflib.get_close_matches(sel.name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        broken = [f.plugin for f in host.failures]
        note = f" (plugins that failed to load: {', '.join(broken)})" if broken else ""
        raise ValueError(
            f"unknown backend {sel.name!r} (from {sel.source}); registered backends: "
            f"{', '.join(names) or '(none)'}{hint}{note}"
        )
    return found


def check_selection(sel: selection.Selection) -> None:
    """Raise the error a call would raise for this selection (unknown or unavailable
    backend, unusable options), or return ``None``."""
    if sel.name == selection.AUTO:
        return
    backend = check_available(registered(plugins.host(), sel), sel.source)
    check_options(backend, selection.for_backend(sel, backend.name))


def check_available(backend: Backend, source: str | None = None) -> Backend:
    reason = registry.unavailable_reason(backend)
    if reason is not None:
        origin = f" (selected by {source})" if source else ""
        raise BackendUnavailableError(
            f"backend {backend.name!r}{origin} is not available: {reason}"
        )
    return backend


def check_capabilities(
    backend: Backend, sel: selection.Selection, spec: ConvSpec, dtype: str
) -> None:
    caps = backend.capabilities
    name = backend.name
    if not caps.supports_ndim(spec.ndim):
        raise ValueError(
            f"backend {name!r} supports {caps.describe_ndim()} spatial dimensions; this "
            f"call has {spec.ndim}"
        )
    if dtype not in caps.dtypes:
        why = dict(caps.missing).get(dtype)
        raise TypeError(
            f"backend {name!r} does not support dtype {dtype}{f' ({why})' if why else ''}; it "
            f"supports {', '.join(caps.dtypes)}"
        )
    if spec.groups > 1 and not caps.groups:
        raise ValueError(f"backend {name!r} does not support groups > 1")
    if any(d > 1 for d in spec.dilation) and not caps.dilation:
        raise ValueError(f"backend {name!r} does not support dilation > 1")
    if spec.padding_mode not in caps.padding_modes and spec.has_padding:
        raise ValueError(
            f"backend {name!r} does not support padding_mode={spec.padding_mode!r}; it "
            f"supports {', '.join(caps.padding_modes)}"
        )
    check_options(backend, sel)


def check_options(backend: Backend, sel: selection.Selection) -> None:
    caps = backend.capabilities
    unknown = sorted(set(sel.options) - set(caps.options))
    if unknown:
        raise ValueError(
            f"backend {backend.name!r} does not take option(s) {', '.join(unknown)} (from "
            f"{sel.source}); it takes {', '.join(caps.options) or 'no options'}"
        )
    try:
        backend.check_options(sel.options)
    except ValueError as exc:
        raise ValueError(f"{exc} (from {sel.source})") from exc
