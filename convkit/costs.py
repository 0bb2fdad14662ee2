"""The cost model behind ``method="auto"``: estimated seconds of each method, per backend.

Every backend declares a :class:`CostModel` with a few rates measured on a 2-core x86-64
CPU; ``convkit calibrate`` measures them on the machine at hand (see
:mod:`convkit.calibration`). The estimates use the actual sizes of the call, so the
choice moves with kernel size, channel counts and input length rather than following
one fixed threshold.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec


@dataclass(frozen=True)
class CostModel:
    """Rates of one backend.

    - ``mac_rate``: multiply-adds per second of the direct method's matrix products
      (wide channel counts).
    - ``tap_rate``: input elements per second the direct method gathers per tap (what
      bounds it when channels are few, as in signal convolution).
    - ``fft_rate``: ``n log2 n`` units per second of a real FFT of ``n`` points.
    - ``spectral_mac_rate``: multiply-adds per second of the per-frequency channel sum of
      ``conv``'s FFT method (a batched matrix product; ``None``: ``mac_rate``).
    - ``call_overhead``: seconds of fixed cost per call of either method.
    - ``fft_overhead``: extra fixed seconds of the FFT method (several transforms, each
      with its setup); it keeps tiny inputs on the direct method, which is also exact
      to the last bit there.
    - ``depthwise_rate``: multiply-adds per second of a depthwise layer's direct method
      (one input and one output channel per group: elementwise, memory-bound work).
    - ``float64_factor`` and ``float64_fft_factor``: how many times longer the direct
      and the FFT methods take in double precision (float64, complex128) than in
      single precision.
    - ``vjp_factor``: seconds of ``conv_vjp`` (input and weight gradients) per second of
      the forward direct method.
    """

    mac_rate: float = 5e10
    tap_rate: float = 1e9
    fft_rate: float = 5e8
    call_overhead: float = 2e-5
    fft_overhead: float = 1e-4
    spectral_mac_rate: float | None = None
    depthwise_rate: float = 4e9
    vjp_factor: float = 3.0
    float64_factor: float = 2.0
    float64_fft_factor: float = 2.0

    def for_dtype(self, dtype: str) -> CostModel:
        """This model with its rates for ``dtype`` (the stored rates are float32's).

        >>> CostModel(fft_rate=4e9, float64_fft_factor=4.0).for_dtype("float64").fft_rate
        1000000000.0
        """
        if dtype not in ("float64", "complex128") and not dtype.startswith(("int", "uint")):
            return self
        d, f = self.float64_factor, self.float64_fft_factor
        spectral = None if self.spectral_mac_rate is None else self.spectral_mac_rate / f
        return dataclasses.replace(
            self,
            mac_rate=self.mac_rate / d,
            tap_rate=self.tap_rate / d,
            depthwise_rate=self.depthwise_rate / d,
            fft_rate=self.fft_rate / f,
            spectral_mac_rate=spectral,
            float64_factor=1.0,
            float64_fft_factor=1.0,
        )

    def _fft(self, points: float, transforms: float) -> float:
        if points <= 1:
            return 0.0
        return transforms * points * math.log2(points) / self.fft_rate

    def conv_direct(self, spec: ConvSpec) -> float:
        """Seconds of the direct method for a ``conv`` call."""
        positions = spec.batch * math.prod(spec.output_size)
        per_position = spec.in_channels // spec.groups * math.prod(spec.kernel_size)
        macs = positions * per_position * spec.out_channels
        if spec.in_channels == spec.groups == spec.out_channels:
            return self.call_overhead + macs / self.depthwise_rate
        gathered = positions * per_position * spec.groups
        return self.call_overhead + macs / self.mac_rate + gathered / self.tap_rate

    def conv_fft(self, spec: ConvSpec) -> float:
        """Seconds of the FFT method for a ``conv`` call (channel sum per frequency)."""
        points = math.prod(spec.padded_size)
        transforms = (
            spec.batch * spec.in_channels
            + spec.out_channels * (spec.in_channels // spec.groups)
            + spec.batch * spec.out_channels
        )
        contraction = (
            (points / 2) * spec.batch * spec.out_channels * (spec.in_channels // spec.groups) * 4
        )
        return (
            self.call_overhead
            + self.fft_overhead
            + self._fft(points, transforms)
            + contraction / (self.spectral_mac_rate or self.mac_rate)
        )

    def conv_vjp(self, spec: ConvSpec) -> float:
        """Seconds of ``conv_vjp`` for the forward call ``spec``."""
        forward = min(self.conv_direct(spec), self.conv_fft(spec))
        return self.call_overhead + self.vjp_factor * forward

    def convolve_direct(self, spec: SignalSpec) -> float:
        """Seconds of the direct method for a ``convolve``/``correlate`` call."""
        return self.call_overhead + spec.flops() * math.prod(spec.broadcast_shape) / self.tap_rate

    def convolve_fft(self, spec: SignalSpec, blocks: dict[int, int]) -> float:
        """Seconds of the FFT method (overlap-add along the axes in ``blocks``)."""
        points = 1.0
        count = 1.0
        for ax in spec.conv_axes:
            n, k = spec.shape1[ax], spec.shape2[ax]
            if ax in blocks:
                length = blocks[ax] + min(n, k) - 1
                points *= length
                count *= math.ceil(max(n, k) / blocks[ax])
            else:
                points *= n + k - 1
        batch = math.prod(spec.broadcast_shape)
        return (
            self.call_overhead
            + self.fft_overhead
            + self._fft(points, 3 * count * batch)
            + (points * count * batch * 2 / self.mac_rate)
        )
