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
import math
import os
import platform
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

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


def model_key(backend: str, options: Mapping[str, Any]) -> str:
    """The key of a backend's cost model for a call: its name and device kind.

    >>> model_key("torch", {"device": "cuda:1"})
    'torch:cuda'
    >>> model_key("numpy", {})
    'numpy:cpu'
    """
    device = str(options.get("device") or "cpu")
    return f"{backend}:{device.partition(':')[0]}"


def machine() -> dict[str, Any]:
    """What the stored rates depend on besides the backend: the CPU and its core count."""
    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
    }


_cache: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}


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
    entry = entries.get(model_key(backend.name, options))
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
    return path


# -- measuring ----------------------------------------------------------------------


def calibrate(
    backends: list[str] | None = None,
    *,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, CostModel], dict[str, str], dict[str, str]]:
    """Measure the cost model of each available backend (and device) on this machine.

    Returns ``(models, versions, failures)`` keyed by :func:`model_key`; a backend that
    fails a measurement is reported in ``failures`` and left out, never stopping the
    others. ``quick`` uses smaller problems (less accurate; for tests).
    """
    from convkit import api

    models: dict[str, CostModel] = {}
    versions: dict[str, str] = {}
    failures: dict[str, str] = {}
    for info in api.list_backends():
        if not info.available or (backends is not None and info.name not in backends):
            continue
        backend = api.registered_backend(info.name)
        for device in backend.devices_here():
            options = {} if device == "cpu" else {"device": device}
            key = model_key(info.name, options)
            if progress:
                progress(key)
            try:
                models[key] = _measure(info.name, options, backend.cost_model(options), quick)
                versions[key] = _version(backend)
            except Exception as exc:  # one backend's failure is reported, not fatal
                failures[key] = f"{type(exc).__name__}: {exc}"
    if backends is not None:
        for name in backends:
            if not any(k.startswith(f"{name}:") for k in (*models, *failures)):
                failures[name] = "not an available backend"
    return models, versions, failures


def _measure(name: str, options: Mapping[str, Any], prior: CostModel, quick: bool) -> CostModel:
    """Solve the cost model's formulas for the rates, one measurement per rate."""
    from convkit import api
    from convkit.bench import measure
    from convkit.signalspec import SignalSpec
    from convkit.spec import ConvSpec

    device = options.get("device")
    target = f"{name}:{device}" if device else name
    rng = np.random.default_rng(0)

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    s = 2 if quick else 1
    tiny_x, tiny_w = arr(1, 1, 8, 8), arr(1, 1, 3, 3)
    img, k9 = arr(512 // s, 512 // s), arr(9, 9)
    big, k31 = arr(1024 // s, 1024 // s), arr(31, 31)
    cx, cw = arr(4 // s, 64, 28, 28), arr(64, 64, 3, 3)
    sx, sw = arr(16 // s, 64, 256), arr(64, 64, 5)
    small_a, small_b = arr(64), arr(8)
    rounds = 2 if quick else 5

    def timed(fn: Callable[[], object]) -> float:
        return measure({"fn": fn}, rounds=rounds)["fn"]

    overhead = timed(lambda: api.conv(tiny_x, tiny_w, method="direct", backend=target))
    fft_overhead = max(
        timed(lambda: api.convolve(small_a, small_b, method="fft", backend=target)) - overhead,
        0.0,
    )
    sig = SignalSpec.build(img.shape, k9.shape, "valid")
    t = timed(lambda: api.convolve(img, k9, "valid", method="direct", backend=target))
    tap_rate = sig.flops() / max(t - overhead, t / 10)
    points = float(math.prod(n + k - 1 for n, k in zip(big.shape, k31.shape, strict=True)))
    t = timed(lambda: api.convolve(big, k31, "full", method="fft", backend=target))
    fft_rate = 3 * points * math.log2(points) / max(t - overhead - fft_overhead, t / 10)

    spec = ConvSpec.build(cx.shape, cw.shape, padding=1)
    positions = spec.batch * math.prod(spec.output_size)
    gathered = positions * spec.in_channels * 9
    t_fwd = timed(lambda: api.conv(cx, cw, padding=1, method="direct", backend=target))
    mac_rate = (
        gathered * spec.out_channels / max(t_fwd - overhead - gathered / tap_rate, t_fwd / 10)
    )
    gout = arr(*spec.output_shape)
    t_vjp = timed(lambda: api.conv_vjp(cx, cw, gout, padding=1, backend=target))

    model = dataclasses.replace(
        prior,
        mac_rate=mac_rate,
        tap_rate=tap_rate,
        fft_rate=fft_rate,
        call_overhead=overhead,
        fft_overhead=fft_overhead,
    )
    forward = min(model.conv_direct(spec), model.conv_fft(spec))  # what conv_vjp scales
    model = dataclasses.replace(model, vjp_factor=max(t_vjp - overhead, 0.0) / forward)
    # double precision: the same direct conv and FFT convolve in float64
    cx64, cw64, big64, k64 = (a.astype(np.float64) for a in (cx, cw, big, k31))
    t64 = timed(lambda: api.conv(cx64, cw64, padding=1, method="direct", backend=target))
    t_fft = timed(lambda: api.convolve(big, k31, "full", method="fft", backend=target))
    t_fft64 = timed(lambda: api.convolve(big64, k64, "full", method="fft", backend=target))
    model = dataclasses.replace(
        model,
        float64_factor=max(t64 - overhead, 0.0) / max(t_fwd - overhead, t_fwd / 10),
        float64_fft_factor=max(t_fft64 - overhead, 0.0) / max(t_fft - overhead, t_fft / 10),
    )
    dx, dw = arr(4 // s, 64, 56, 56), arr(64, 1, 3, 3)
    t = timed(lambda: api.conv(dx, dw, padding=1, groups=64, method="direct", backend=target))
    macs = dx.size * 9
    model = dataclasses.replace(model, depthwise_rate=macs / max(t - overhead, t / 10))
    # the spectral contraction is what remains of conv's FFT method after its transforms
    spec = ConvSpec.build(sx.shape, sw.shape, padding=2)
    t = timed(lambda: api.conv(sx, sw, padding=2, method="fft", backend=target))
    free = dataclasses.replace(model, spectral_mac_rate=math.inf)
    rest = t - free.conv_fft(spec)
    contraction = (spec.padded_size[0] / 2) * spec.batch * spec.out_channels * spec.in_channels * 4
    spectral = contraction / max(rest, t / 10)
    return dataclasses.replace(model, spectral_mac_rate=spectral)
