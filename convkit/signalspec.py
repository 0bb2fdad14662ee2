"""Shape arithmetic of ``convolve`` and ``correlate``, following SciPy.

:class:`SignalSpec` is to ``convolve`` what :class:`~convkit.spec.ConvSpec` is to
``conv``: every argument checked, every shape worked out, before a backend is called.
The semantics are those of ``scipy.signal.convolve`` (``axes=None``) and
``scipy.signal.fftconvolve`` (``axes`` given):

- ``full``: ``s1 + s2 - 1`` along the convolved axes; other axes broadcast.
- ``same``: the full result centred to ``in1``'s shape (start ``(full - s1) // 2``).
- ``valid``: only the positions where one input covers the other; if ``in2`` is the
  larger in every convolved axis the inputs are swapped (convolution commutes).

Axes where either input has size 1 are not convolved but broadcast, as in SciPy.

Two edge cases follow SciPy too: 0-d inputs (both must be 0-d) have no axis to convolve,
so the result is their product, 0-d; an empty input gives an empty result, of the
shape the mode gives with 0 along every axis where an input is empty (for 1-d inputs
SciPy's ``fftconvolve`` result, shape ``(0,)``, in every mode).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MODES = ("full", "same", "valid")
METHODS = ("auto", "direct", "fft")


@dataclass(frozen=True)
class SignalSpec:
    """A checked ``convolve``/``correlate`` call.

    >>> spec = SignalSpec.build((4, 100), (1, 9), "same", axes=1)
    >>> spec.conv_axes, spec.full_shape, spec.output_shape
    ((1,), (4, 108), (4, 100))
    """

    shape1: tuple[int, ...]
    shape2: tuple[int, ...]
    mode: str
    axes: tuple[int, ...]
    conv_axes: tuple[int, ...]
    swapped: bool
    correlate: bool = False

    @property
    def ndim(self) -> int:
        """Number of dimensions of each input."""
        return len(self.shape1)

    @property
    def empty(self) -> bool:
        """Whether an input has no elements (then so has the result).

        >>> SignalSpec.build((5, 0), (3, 2), "same").output_shape
        (5, 0)
        """
        return 0 in self.shape1 or 0 in self.shape2

    def _zeroed(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """``shape`` with 0 along every axis where an input is empty."""
        if not self.empty:
            return shape
        return tuple(
            0 if 0 in (a, b) else n for n, a, b in zip(shape, self.shape1, self.shape2, strict=True)
        )

    @property
    def full_shape(self) -> tuple[int, ...]:
        """Shape of the ``full`` result: ``s1 + s2 - 1`` on convolved axes, else the
        broadcast size (0 along axes where an input is empty)."""
        return self._zeroed(
            tuple(
                a + b - 1 if i in self.conv_axes else max(a, b)
                for i, (a, b) in enumerate(zip(self.shape1, self.shape2, strict=True))
            )
        )

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of the result in this spec's mode."""
        if self.mode == "full":
            return self.full_shape
        if self.mode == "same":
            return self._zeroed(self.shape1)
        big, small = (self.shape2, self.shape1) if self.swapped else (self.shape1, self.shape2)
        return self._zeroed(
            tuple(
                big[i] - small[i] + 1 if i in self.conv_axes else f
                for i, f in enumerate(self.full_shape)
            )
        )

    @property
    def crop(self) -> tuple[slice, ...]:
        """Where the result sits inside the ``full`` one (centred, as SciPy)."""
        return tuple(
            slice((f - o) // 2, (f - o) // 2 + o)
            for f, o in zip(self.full_shape, self.output_shape, strict=True)
        )

    @property
    def broadcast_shape(self) -> tuple[int, ...]:
        """Sizes of the axes that are not convolved, after broadcasting (convolved axes
        are reported as 1)."""
        return tuple(
            1 if i in self.conv_axes else max(a, b)
            for i, (a, b) in enumerate(zip(self.shape1, self.shape2, strict=True))
        )

    def flops(self) -> float:
        """Multiply-adds of the direct method for this call."""
        taps = math.prod(min(self.shape1[a], self.shape2[a]) for a in self.conv_axes)
        out = math.prod(self.output_shape)
        return float(out) * taps

    @classmethod
    def build(
        cls,
        shape1: Sequence[int],
        shape2: Sequence[int],
        mode: str = "full",
        axes: int | Sequence[int] | None = None,
        *,
        correlate: bool = False,
    ) -> SignalSpec:
        """Check the arguments of ``convolve``/``correlate`` and work out the shapes.

        >>> SignalSpec.build((3,), (5,), "valid").output_shape   # swapped, as SciPy
        (3,)
        >>> SignalSpec.build((), (), "same").output_shape  # 0-d: the product
        ()
        >>> SignalSpec.build((2,), (0,), "full").output_shape  # empty, as SciPy's fftconvolve
        (0,)
        """
        s1, s2 = tuple(int(s) for s in shape1), tuple(int(s) for s in shape2)
        if len(s1) != len(s2):
            raise ValueError(
                f"in1 and in2 should have the same dimensionality; got in1.shape={s1} "
                f"and in2.shape={s2}"
            )
        if mode not in MODES:
            raise ValueError(
                f"mode={mode!r} is not a mode; acceptable modes are 'full', 'same', 'valid'"
            )
        nd = len(s1)
        all_axes = axes is None
        if axes is None:
            axis_list = list(range(nd))
        else:
            given: list[Any] = [axes] if isinstance(axes, numbers.Integral) else list(axes)  # type: ignore[arg-type]
            if not given:
                raise ValueError("axes=() is empty; give at least one axis or None for all")
            axis_list = []
            for a in given:
                if not isinstance(a, numbers.Integral) or isinstance(a, bool):
                    raise TypeError(f"axes={axes!r} must be ints; got {a!r}")
                if not -nd <= int(a) < nd:
                    raise ValueError(f"axes={axes!r}: axis {a} is out of range for {nd}-d inputs")
                axis_list.append(int(a) % nd)
            if len(set(axis_list)) != len(axis_list):
                raise ValueError(f"axes={axes!r} repeats an axis")
        conv_axes = tuple(sorted(a for a in axis_list if s1[a] != 1 and s2[a] != 1))
        for a in range(nd):
            if a not in conv_axes and not (s1[a] == s2[a] or s1[a] == 1 or s2[a] == 1):
                raise ValueError(
                    f"incompatible shapes for in1 and in2: {s1} and {s2}; axis {a} is not "
                    f"convolved, so its sizes must match or one must be 1"
                )
        swapped = False
        if mode == "valid" and not (0 in s1 or 0 in s2):  # empty: the result is empty
            check = range(nd) if all_axes else conv_axes
            ok1 = all(s1[a] >= s2[a] for a in check)
            ok2 = all(s2[a] >= s1[a] for a in check)
            if not (ok1 or ok2):
                raise ValueError(
                    f"for mode='valid', one input must be at least as large as the other "
                    f"in every convolved dimension; got in1.shape={s1} and in2.shape={s2}"
                )
            swapped = not ok1
        return cls(s1, s2, mode, tuple(sorted(axis_list)), conv_axes, swapped, correlate)
