"""``convkit calibrate``: measure this machine's cost models through the public
operations and store them (:mod:`convkit.calibration`). Only the command line imports
this module; the core reads the stored rates and never measures."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from convkit import checks, ops
from convkit.algorithms import direct, winograd
from convkit.bench import measure
from convkit.calibration import _version, model_key
from convkit.costs import CostModel
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec


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

    models: dict[str, CostModel] = {}
    versions: dict[str, str] = {}
    failures: dict[str, str] = {}
    for info in ops.list_backends():
        if not info.available or (backends is not None and info.name not in backends):
            continue
        backend = checks.registered_backend(info.name)
        for device in backend.devices_here():
            options = {} if device == "cpu" else {"device": device}
            key = model_key(backend, options)
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
    """Solve the cost model's formulas for the rates, one measurement per rate, each
    method called as itself (``method="direct"`` never hides a transform).

    On a device other than the CPU the operands are made there once, in the backend's
    own array type, and every timed call ends with :meth:`~convkit.backend.Backend.synchronize`:
    the rates are those of arrays already on the device, without transfers, and of the
    work finished rather than queued."""

    device = options.get("device")
    target = f"{name}:{device}" if device else name
    backend = checks.registered_backend(name)
    rng = np.random.default_rng(0)

    host: dict[int, np.ndarray] = {}  # each operand's values, for its float64 twin

    def native(a: np.ndarray) -> Any:
        made = backend.asarray(a, a.dtype.name, options) if device else a
        host[id(made)] = a
        return made

    def arr(*shape: int) -> Any:
        return native(rng.standard_normal(shape).astype(np.float32))

    def f64(a: Any) -> Any:
        return native(host[id(a)].astype(np.float64))

    s = 2 if quick else 1
    tiny_x, tiny_w = arr(1, 1, 8, 8), arr(1, 1, 3, 3)
    img, k9 = arr(512 // s, 512 // s), arr(9, 9)
    big, k31 = arr(1024 // s, 1024 // s), arr(31, 31)
    cx, cw = arr(4 // s, 64, 28, 28), arr(64, 64, 3, 3)
    sx, sw = arr(16 // s, 64, 256), arr(64, 64, 5)
    small_a, small_b = arr(64), arr(8)
    rounds = 2 if quick else 5

    def timed(fn: Callable[[], object]) -> float:
        return measure({"fn": lambda: backend.synchronize(fn())}, rounds=rounds)["fn"]

    overhead = timed(lambda: ops.conv(tiny_x, tiny_w, method="direct", backend=target))
    fft_overhead = max(
        timed(lambda: ops.convolve(small_a, small_b, method="fft", backend=target)) - overhead,
        0.0,
    )
    sig = SignalSpec.build(img.shape, k9.shape, "valid")
    t = timed(lambda: ops.convolve(img, k9, "valid", method="direct", backend=target))
    tap_rate = sig.flops() / max(t - overhead, t / 10)
    points = float(math.prod(n + k - 1 for n, k in zip(big.shape, k31.shape, strict=True)))
    t = timed(lambda: ops.convolve(big, k31, "full", method="fft", backend=target))
    fft_rate = 3 * points * math.log2(points) / max(t - overhead - fft_overhead, t / 10)

    spec = ConvSpec.build(cx.shape, cw.shape, padding=1)
    positions = spec.batch * math.prod(spec.output_size)
    gathered = positions * spec.in_channels * 9
    t_fwd = timed(lambda: ops.conv(cx, cw, padding=1, method="direct", backend=target))
    mac_rate = (
        gathered * spec.out_channels / max(t_fwd - overhead - gathered / tap_rate, t_fwd / 10)
    )
    gout = arr(*spec.output_shape)
    t_vjp = timed(lambda: ops.conv_vjp(cx, cw, gout, padding=1, backend=target))

    model = dataclasses.replace(
        prior,
        mac_rate=mac_rate,
        tap_rate=tap_rate,
        fft_rate=fft_rate,
        call_overhead=overhead,
        fft_overhead=fft_overhead,
    )
    forward = model.conv_direct(spec)  # what a native conv_vjp scales
    model = dataclasses.replace(model, vjp_factor=max(t_vjp - overhead, 0.0) / forward)
    # double precision: the same direct conv and FFT convolve in float64
    cx64, cw64, big64, k64 = (f64(a) for a in (cx, cw, big, k31))
    t64 = timed(lambda: ops.conv(cx64, cw64, padding=1, method="direct", backend=target))
    t_fft = timed(lambda: ops.convolve(big, k31, "full", method="fft", backend=target))
    t_fft64 = timed(lambda: ops.convolve(big64, k64, "full", method="fft", backend=target))
    model = dataclasses.replace(
        model,
        float64_factor=max(t64 - overhead, 0.0) / max(t_fwd - overhead, t_fwd / 10),
        float64_fft_factor=max(t_fft64 - overhead, 0.0) / max(t_fft - overhead, t_fft / 10),
    )
    dx, dw = arr(4 // s, 64, 56, 56), arr(64, 1, 3, 3)
    t = timed(lambda: ops.conv(dx, dw, padding=1, groups=64, method="direct", backend=target))
    macs = math.prod(dx.shape) * 9
    model = dataclasses.replace(model, depthwise_rate=macs / max(t - overhead, t / 10))
    # the spectral contraction is what remains of conv's FFT method after its transforms
    spec = ConvSpec.build(sx.shape, sw.shape, padding=2)
    t = timed(lambda: ops.conv(sx, sw, padding=2, method="fft", backend=target))
    free = dataclasses.replace(model, spectral_mac_rate=math.inf)
    rest = t - free.conv_fft(spec)
    contraction = (spec.padded_size[0] / 2) * spec.batch * spec.out_channels * spec.in_channels * 4
    spectral = contraction / max(rest, t / 10)
    model = dataclasses.replace(model, spectral_mac_rate=spectral)
    if "winograd" not in backend.capabilities.conv_methods:
        return model
    # Winograd's tile copies: what remains of its time after its products and overheads
    spec = ConvSpec.build(cx.shape, cw.shape, padding=1)
    tile = direct.winograd_tile("float32", spec) or min(winograd.TILES)
    t = timed(lambda: ops.conv(cx, cw, padding=1, method="winograd", backend=target))
    free = dataclasses.replace(model, copy_rate=math.inf)
    moved = model.conv_winograd(spec, tile) - free.conv_winograd(spec, tile)
    rest = t - free.conv_winograd(spec, tile)
    return dataclasses.replace(model, copy_rate=moved * model.copy_rate / max(rest, t / 10))
