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
    - ``winograd_overhead``: extra fixed seconds of the Winograd method: its transforms,
      products and tile copies are a dozen array operations, each a kernel launch on a
      GPU (on a CPU, next to nothing).
    - ``depthwise_rate``: multiply-adds per second of a depthwise layer's direct method
      (one input and one output channel per group: elementwise, memory-bound work), for
      kernels of up to ``depthwise_taps`` taps; a library whose depthwise kernels are
      for small kernels only (torch's: a single-channel image blurred by a 31 x 31
      kernel goes through its general path) sets it, and larger kernels are costed as
      the general direct method.
    - ``float64_factor`` and ``float64_fft_factor``: how many times longer the direct
      and the FFT methods take in double precision (float64, complex128) than in
      single precision.
    - ``fft_transform_seconds``: fixed seconds of each multi-dimensional transform (a
      batch of many small 2-d transforms costs more than their ``n log2 n``).
    - ``gather_run_seconds``: fixed seconds of each contiguous run the direct method
      gathers (a run is a row of the last output dimension at stride 1, else one
      element): what makes short rows, as in 4-d inputs, gather slower.
    - ``position_seconds``: fixed seconds of the direct method per output position (one
      sample, all channels): what a library's per-position bookkeeping costs where the
      arithmetic per position is small, as in a single-channel signal.
    - ``copy_rate``: elements per second an algorithm written on the array API moves
      through strided copies (Winograd's tiles gathered and scattered).
    - ``vjp_factor``: seconds of a native ``conv_vjp`` (input and weight gradients) per
      second of the forward direct method; a backend whose gradients go through its
      forward ``conv`` is estimated by the convolutions they run instead
      (:func:`convkit.estimates.conv_costs`).
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
    fft_transform_seconds: float = 0.0
    copy_rate: float = 1e9
    gather_run_seconds: float = 0.0
    position_seconds: float = 0.0
    depthwise_taps: float = 1e9
    winograd_overhead: float = 0.0

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
            copy_rate=self.copy_rate / d,
            depthwise_rate=self.depthwise_rate / d,
            fft_rate=self.fft_rate / f,
            spectral_mac_rate=spectral,
            float64_factor=1.0,
            float64_fft_factor=1.0,
        )

    def _fft(self, points: float, transforms: float, axes: int = 1) -> float:
        """Seconds of ``transforms`` FFTs of ``points`` points over ``axes`` axes."""
        if points <= 1:
            return 0.0
        per_transform = points * math.log2(points) / self.fft_rate
        if axes > 1:
            per_transform += self.fft_transform_seconds
        return transforms * per_transform

    def conv_direct(self, spec: ConvSpec) -> float:
        """Seconds of the direct method for a ``conv`` call."""
        positions = spec.batch * math.prod(spec.output_size)
        per_position = spec.in_channels // spec.groups * math.prod(spec.kernel_size)
        macs = positions * per_position * spec.out_channels
        fixed = self.call_overhead + positions * self.position_seconds
        if (
            spec.in_channels == spec.groups == spec.out_channels
            and per_position <= self.depthwise_taps
        ):
            return fixed + macs / self.depthwise_rate
        gathered = positions * per_position * spec.groups
        run = spec.output_size[-1] if spec.stride[-1] == 1 else 1
        per_element = 1 / self.tap_rate + self.gather_run_seconds / run
        return fixed + macs / self.mac_rate + gathered * per_element

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
            + self._fft(points, transforms, spec.ndim)
            + contraction / (self.spectral_mac_rate or self.mac_rate)
        )

    def conv_winograd(self, spec: ConvSpec, tile: int) -> float:
        """Seconds of the Winograd method F(``tile``, 3) for a ``conv`` call (3-tap
        kernels, stride 1): ``(tile + 2)^d`` products per tile of ``tile^d`` outputs in
        one batched matrix product per tile position, and the three transforms as
        matrix products of ``(tile + 2)^d`` (input), ``3^d`` (weights) and ``tile^d``
        (output) rows.

        >>> spec = ConvSpec.build((8, 64, 56, 56), (64, 64, 3, 3), padding=1)
        >>> m = CostModel()
        >>> m.conv_winograd(spec, 4) < m.conv_direct(spec)
        True
        """
        d = spec.ndim
        a = (tile + 2) ** d
        tiles = spec.batch * math.prod(-(-o // tile) for o in spec.output_size)
        cin, cout = spec.in_channels, spec.out_channels
        products = a * tiles * cout * (cin // spec.groups)
        transforms = a * a * tiles * cin + a * tile**d * tiles * cout + a * 3**d * cout * cin
        moved = a * tiles * (2 * cin + cout)  # tiles gathered, spectra written, read back
        fixed = self.call_overhead + self.winograd_overhead
        return fixed + (products + transforms) / self.mac_rate + moved / self.copy_rate

    def conv_vjp(self, spec: ConvSpec) -> float:
        """Seconds of a native ``conv_vjp`` (input and weight gradients computed as
        such, not through the forward ``conv``) for the forward call ``spec``:
        :attr:`vjp_factor` times its direct method."""
        return self.call_overhead + self.vjp_factor * self.conv_direct(spec)

    def convolve_direct(self, spec: SignalSpec) -> float:
        """Seconds of the direct method for a ``convolve``/``correlate`` call."""
        return self.call_overhead + spec.flops() * math.prod(spec.broadcast_shape) / self.tap_rate

    def convolve_fft(self, spec: SignalSpec, blocks: dict[int, int]) -> float:
        """Seconds of the FFT method (overlap-add along the axes in ``blocks``)."""
        points = 1.0
        count = 1.0
        sizes = []
        for ax in spec.conv_axes:
            n, k = spec.shape1[ax], spec.shape2[ax]
            if ax in blocks:
                length = blocks[ax] + min(n, k) - 1
                points *= length
                count *= math.ceil(max(n, k) / blocks[ax])
            else:
                length = n + k - 1
                points *= length
            sizes.append(length)
        batch = math.prod(spec.broadcast_shape)
        return (
            self.call_overhead
            + self.fft_overhead
            + self._fft(points, 3 * count * batch, sum(n > 1 for n in sizes))
            + (points * count * batch * 2 / self.mac_rate)
        )
