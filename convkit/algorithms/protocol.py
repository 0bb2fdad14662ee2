"""What the algorithms need of a backend, as a protocol: they take any object with
these methods (every :class:`convkit.Backend` has them) and import no backend code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from convkit.costs import CostModel
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec


class ArrayBackend(Protocol):
    """A backend's operations the shared algorithms build on."""

    @property
    def capabilities(self) -> Any: ...

    def namespace(self) -> Any: ...

    def dtype_name(self, obj: Any) -> str: ...

    def fft_module(self) -> Any: ...

    def cost_model(self, options: Mapping[str, Any]) -> CostModel: ...

    def pad(self, x: Any, padding: tuple[tuple[int, int], ...], mode: str) -> Any: ...

    def conv(
        self, x: Any, weight: Any, bias: Any | None, spec: ConvSpec, options: Mapping[str, Any]
    ) -> Any: ...

    def convolve(
        self, in1: Any, in2: Any, spec: SignalSpec, method: str, options: Mapping[str, Any]
    ) -> Any: ...
