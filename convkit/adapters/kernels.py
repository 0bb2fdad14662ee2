"""Named kernels, and the ``name:param=value,...`` syntax the command line uses.

Image kernels are 2-d arrays; audio kernels are FIR filters designed with
``scipy.signal.firwin`` for a sample rate. ``kernel("gaussian:sigma=2")`` builds one;
unknown names or parameters are errors that list the valid ones.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, SupportsIndex

import numpy as np

from convkit.hookspecs import hookimpl
from convkit.registry import KernelRegistry
from convkit.spec import positive_int


@dataclass(frozen=True)
class KernelSpec:
    """A named kernel: what it applies to, and the function that builds it.

    >>> spec = KERNELS["gaussian"]
    >>> spec.domain, spec.build(sigma=0.5).shape
    ('image', (5, 5))
    """

    name: str
    domain: str  # "image" or "audio"
    build: Callable[..., np.ndarray]
    doc: str


def box(size: SupportsIndex = 3) -> np.ndarray:
    """Mean over a ``size`` x ``size`` square.

    >>> box(2).tolist()
    [[0.25, 0.25], [0.25, 0.25]]
    """
    size = positive_int("size", size)
    return np.full((size, size), 1.0 / size**2)


def gaussian(sigma: float = 1.0, size: SupportsIndex | None = None) -> np.ndarray:
    """Normalised Gaussian; ``size`` defaults to ``2 * ceil(3 sigma) + 1``.

    >>> k = gaussian(sigma=1.0)
    >>> k.shape, round(float(k.sum()), 6)
    ((7, 7), 1.0)
    """
    if not sigma > 0:
        raise ValueError(f"gaussian: sigma={sigma!r} must be > 0")
    size = positive_int("size", 2 * math.ceil(3 * sigma) + 1 if size is None else size)
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


def sobel_x() -> np.ndarray:
    """Horizontal derivative (responds to vertical edges).

    >>> sobel_x()[1].tolist()
    [-2.0, 0.0, 2.0]
    """
    return np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_y() -> np.ndarray:
    """Vertical derivative (responds to horizontal edges).

    >>> sobel_y()[:, 1].tolist()
    [-2.0, 0.0, 2.0]
    """
    return sobel_x().T.copy()


def laplacian() -> np.ndarray:
    """The 4-neighbour Laplacian.

    >>> laplacian()[1].tolist()
    [1.0, -4.0, 1.0]
    """
    return np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def sharpen() -> np.ndarray:
    """Identity plus the negative Laplacian.

    >>> sharpen()[1].tolist()
    [-1.0, 5.0, -1.0]
    """
    return np.array([[0.0, -1.0, 0.0], [-1.0, 5.0, -1.0], [0.0, -1.0, 0.0]])


def lowpass(cutoff: float, rate: int, numtaps: SupportsIndex = 101) -> np.ndarray:
    """FIR low-pass at ``cutoff`` Hz (``scipy.signal.firwin``).

    >>> h = lowpass(1000, rate=8000)
    >>> h.shape, round(float(h.sum()), 6)
    ((101,), 1.0)
    """
    import scipy.signal

    _cutoffs(rate, cutoff)
    return np.asarray(scipy.signal.firwin(_odd(numtaps), cutoff, fs=rate))


def highpass(cutoff: float, rate: int, numtaps: SupportsIndex = 101) -> np.ndarray:
    """FIR high-pass at ``cutoff`` Hz.

    >>> h = highpass(300, rate=8000)
    >>> h.shape, abs(float(h.sum())) < 0.01
    ((101,), True)
    """
    import scipy.signal

    _cutoffs(rate, cutoff)
    return np.asarray(scipy.signal.firwin(_odd(numtaps), cutoff, fs=rate, pass_zero=False))


def bandpass(low: float, high: float, rate: int, numtaps: SupportsIndex = 101) -> np.ndarray:
    """FIR band-pass between ``low`` and ``high`` Hz.

    >>> bandpass(300, 3000, rate=8000, numtaps=50).shape
    (51,)
    """
    import scipy.signal

    _cutoffs(rate, low, high)
    if not low < high:
        raise ValueError(f"bandpass: low={low!r} must be below high={high!r}")
    return np.asarray(scipy.signal.firwin(_odd(numtaps), [low, high], fs=rate, pass_zero=False))


def _odd(numtaps: SupportsIndex) -> int:
    n = positive_int("numtaps", numtaps)
    return n if n % 2 else n + 1  # odd: a type I filter, any response


def _cutoffs(rate: int, *cutoffs: float) -> None:
    for c in cutoffs:
        if not 0 < c < rate / 2:
            raise ValueError(
                f"cutoff {c!r} Hz must lie between 0 and the Nyquist frequency {rate / 2} Hz"
            )


KERNELS: dict[str, KernelSpec] = {
    spec.name: spec
    for spec in [
        KernelSpec("box", "image", box, "mean over a square: box:size=5"),
        KernelSpec("gaussian", "image", gaussian, "Gaussian blur: gaussian:sigma=2[,size=13]"),
        KernelSpec("sobel_x", "image", sobel_x, "horizontal derivative"),
        KernelSpec("sobel_y", "image", sobel_y, "vertical derivative"),
        KernelSpec("laplacian", "image", laplacian, "4-neighbour Laplacian"),
        KernelSpec("sharpen", "image", sharpen, "identity minus Laplacian"),
        KernelSpec("lowpass", "audio", lowpass, "FIR low-pass: lowpass:cutoff=1000[,numtaps=101]"),
        KernelSpec("highpass", "audio", highpass, "FIR high-pass: highpass:cutoff=300"),
        KernelSpec("bandpass", "audio", bandpass, "FIR band-pass: bandpass:low=300,high=3000"),
    ]
}


CONVKIT_PLUGIN_API = 1
"""This module is the built-in kernels' plugin: it registers :data:`KERNELS` through
the same hook, and the same entry-point group, as a third-party plugin would."""


@hookimpl
def convkit_add_kernels(registry: KernelRegistry) -> None:
    """Register the built-in kernels.

    pluggy calls this when convkit loads its plugins, as it calls a plugin's:

    >>> from convkit import plugins
    >>> sorted(KERNELS) == sorted(n for n in plugins.host().kernels.names() if n in KERNELS)
    True
    """
    for spec in KERNELS.values():
        registry.add(spec.name, spec.domain, spec.build, spec.doc)


def available() -> dict[str, KernelSpec]:
    """Every registered kernel: the built-ins and those plugins contributed
    (``convkit_add_kernels``).

    >>> specs = available()
    >>> specs["gaussian"].domain, specs["lowpass"].domain
    ('image', 'audio')
    """
    from convkit import plugins

    contributed = plugins.host().kernels
    found = {}
    for name in contributed.names():
        entry = contributed.get(name)
        if entry is not None:
            doc = entry.doc or f"from plugin {entry.plugin!r}"
            found[name] = KernelSpec(name, entry.domain, entry.build, doc)
    return found


def parse(text: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name:key=value,key=value"``; values become ints or floats.

    >>> parse("gaussian:sigma=2,size=9")
    ('gaussian', {'sigma': 2, 'size': 9})
    """
    name, _, rest = text.strip().partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"kernel {text!r}: parameter {item!r} is not key=value")
        try:
            number: Any = int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise ValueError(
                    f"kernel {text!r}: {key.strip()}={value!r} is not a number"
                ) from None
        params[key.strip()] = number
    return name, params


def kernel(text: str, *, rate: int | None = None, domain: str | None = None) -> np.ndarray:
    """Build a named kernel from ``"name:param=value,..."``; audio kernels need ``rate``.

    >>> kernel("box:size=2").tolist()
    [[0.25, 0.25], [0.25, 0.25]]
    """
    name, params = parse(text)
    known = available()
    spec = known.get(name)
    if spec is None:
        raise ValueError(f"unknown kernel {name!r}; valid kernels: {', '.join(sorted(known))}")
    if domain is not None and spec.domain != domain:
        valid = ", ".join(sorted(n for n, s in known.items() if s.domain == domain))
        raise ValueError(f"kernel {name!r} is for {spec.domain}, not {domain}; use one of {valid}")
    accepted = [p for p in inspect.signature(spec.build).parameters if p != "rate"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"kernel {name!r} takes {', '.join(accepted) or 'no parameters'}; got "
            f"{', '.join(unknown)}"
        )
    if spec.domain == "audio":
        if rate is None:
            raise ValueError(f"kernel {name!r} is an audio filter and needs the sample rate")
        params["rate"] = rate
    try:
        return spec.build(**params)
    except TypeError as exc:  # a required parameter is missing
        raise ValueError(f"kernel {name!r}: {exc}; {spec.doc}") from None
