"""The ``array_api`` backend: any array of a library that follows the Python Array API
standard (CuPy, array-api-strict, ndonnx, torch or JAX through ``array_api_compat``) and
that no dedicated backend claims, computed in the array's own namespace and on its own
device by convkit's shared algorithms.

- direct method: gathers and ``matmul`` in a bounded workspace
  (:func:`convkit.algorithms.gather.direct_conv`);
- FFT method: :func:`convkit.algorithms.fft.conv_fft`, where the namespace has the
  ``fft`` extension; Winograd (:mod:`convkit.algorithms.winograd`) for 3-tap kernels;
- padding: zeros through ``array_api_extra.pad``, the other modes by ``take`` with
  convkit's index maps; gradients and transposed convolutions through the forward
  operation (:mod:`convkit.algorithms.vjp`).

What a call may use is read from the namespace of its arrays (:func:`capabilities_of`):
its dtypes on the array's device, and whether it has ``fft``. Ownership: this backend
declares itself ``generic``, so the core offers it an array only after every dedicated
backend has declined it (NumPy arrays stay the numpy backend's, tensors torch's).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import importlib
import importlib.util
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

import convkit
from convkit.algorithms import gather
from convkit.backend import Backend, Capabilities
from convkit.costs import CostModel
from convkit.dtypes import COMPLEX_DTYPES, FLOAT_DTYPES
from convkit.padding import pad as xp_pad
from convkit.registry import BackendRegistry
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec

CONVKIT_PLUGIN_API = 1
"""The convkit plugin API this plugin was written for."""

COSTS = CostModel(
    mac_rate=5e10,
    tap_rate=1e9,
    fft_rate=3e9,
    spectral_mac_rate=1e10,
    depthwise_rate=1e9,
    call_overhead=1e-4,
)
"""Built-in rates: those of a NumPy-like library on one CPU core, somewhat below the
numpy backend's (the gathers copy more); ``convkit calibrate --backend array_api``
measures the namespace at hand."""

_current: contextvars.ContextVar[tuple[Any, Any] | None] = contextvars.ContextVar(
    "convkit_array_api_namespace", default=None
)
"""The namespace and device of the array being computed on, while a call runs."""

_seen: dict[str, Capabilities] = {}
"""Capabilities by namespace (and device), for every namespace this process has used."""

_known: dict[str, Capabilities] = {}
"""Capabilities of namespaces only looked at (by ``convkit backends``), not used."""

KNOWN = {
    "array_api_strict": "array_api_strict",
    "cupy": "array_api_compat.cupy",
    "ndonnx": "ndonnx",
}
"""Libraries without a dedicated convkit backend that this backend is known to serve,
with the namespace it computes in (``convkit backends`` describes those importable
here)."""


def _is_numpy(obj: Any) -> bool:
    return isinstance(obj, np.ndarray | np.generic)


def namespace_of(arrays: Sequence[Any]) -> tuple[Any, Any]:
    """The namespace and device of the first array of ``arrays`` that is a standard
    array and not a NumPy one; NumPy's (through ``array_api_compat``) when there is none.

    >>> xp, device = namespace_of([np.ones(2)])
    >>> xp.__name__, device
    ('array_api_compat.numpy', 'cpu')
    """
    import array_api_compat

    for a in arrays:
        if a is not None and not _is_numpy(a) and array_api_compat.is_array_api_obj(a):
            return array_api_compat.array_namespace(a), array_api_compat.device(a)
    import array_api_compat.numpy as xp

    return xp, "cpu"


def _key(xp: Any, device: Any) -> str:
    # the extension is part of the key: array-api-strict can switch it off at run time
    return f"{xp.__name__} on {device}" + ("" if hasattr(xp, "fft") else " (no fft)")


def capabilities_of(xp: Any, device: Any, record: bool = True) -> Capabilities:
    """What this backend can do on arrays of namespace ``xp`` on ``device``: the
    floating and complex dtypes the namespace has there, the FFT method only with the
    ``fft`` extension, Winograd only for libraries known to write through views; what
    it lacks, with the reason, in ``missing``. Remembered per namespace and device, as
    seen (``record``) or only looked at.

    >>> import array_api_compat.numpy as xp
    >>> caps = capabilities_of(xp, "cpu")
    >>> caps.dtypes, caps.conv_methods
    (('float32', 'float64', 'complex64', 'complex128'), ('direct', 'fft', 'winograd'))
    """
    key = _key(xp, device)
    found = _seen.get(key) or _known.get(key)
    if found is not None:
        return found
    import array_api_compat

    names: tuple[str, ...] = FLOAT_DTYPES + COMPLEX_DTYPES
    info = getattr(xp, "__array_namespace_info__", None)
    if info is not None:
        try:
            have = set(info().dtypes(device=device))
        except (TypeError, ValueError):
            have = set(info().dtypes())
        names = tuple(n for n in names if n in have)
    missing = [
        (n, f"namespace {xp.__name__} has no {n} on device {device}")
        for n in FLOAT_DTYPES + COMPLEX_DTYPES
        if n not in names
    ]
    fft = hasattr(xp, "fft")
    if not fft:
        missing.append(("fft", f"namespace {xp.__name__} has no fft extension"))
    # Winograd writes its output tile by tile through views: only for libraries whose
    # arrays are known to take that (not JAX's immutable arrays, not unknown ones)
    winograd = any(
        test(xp)
        for test in (
            array_api_compat.is_numpy_namespace,
            array_api_compat.is_cupy_namespace,
            array_api_compat.is_torch_namespace,
            array_api_compat.is_array_api_strict_namespace,
        )
    )
    if not winograd:
        missing.append(("winograd", f"namespace {xp.__name__} may not write through views"))
    caps = dataclasses.replace(
        ArrayAPIBackend.base,
        dtypes=names,
        conv_methods=("direct", *(("fft",) if fft else ()), *(("winograd",) if winograd else ())),
        missing=tuple(missing),
    )
    (_seen if record else _known)[key] = caps
    return caps


def dtype_name(xp: Any, dtype: Any) -> str:
    """The NumPy name of a namespace's dtype object.

    >>> import array_api_compat.numpy as xp
    >>> dtype_name(xp, xp.float32)
    'float32'
    """
    info = getattr(xp, "__array_namespace_info__", None)
    if info is not None:
        for name, value in info().dtypes().items():
            if value == dtype:
                return str(name)
    return np.dtype(dtype).name


class ArrayAPIBackend(Backend):
    """Arrays of any Array API library no dedicated backend claims, computed in their own
    namespace and on their own device."""

    name = "array_api"
    requires = ("array_api_compat", "array_api_extra")
    install_hint = "pip install -e '.[array-api]' in the convkit checkout"
    base = Capabilities(
        dtypes=FLOAT_DTYPES + COMPLEX_DTYPES,
        devices=("any",),  # the call's input's own: other arguments join it there
        options=(),
        array_types=("any Array API array",),
        generic=True,
        conv_methods=("direct", "fft", "winograd"),
        costs=COSTS,
    )

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        """For the namespace and device of the call under way; outside a call, what it
        declares for any namespace (:attr:`base`)."""
        if self.unavailable_reason() is not None:
            return self.base
        from convkit import dispatch

        if _current.get() is None and all(_is_numpy(a) for a in dispatch.call_arrays()):
            # no array of another library in this call (NumPy's namespace has all of
            # base): nothing to import or look up, on the path every NumPy call takes
            return self.base
        return capabilities_of(*self._context())

    def _context(self) -> tuple[Any, Any]:
        current = _current.get()
        if current is not None:
            return current
        from convkit import dispatch

        return namespace_of(dispatch.call_arrays())

    @contextlib.contextmanager
    def _using(self, *arrays: Any) -> Iterator[Any]:
        """Compute in the namespace (and on the device) of ``arrays``."""
        token = _current.set(namespace_of(arrays))
        try:
            yield _current.get()
        finally:
            _current.reset(token)

    def owns(self, obj: object) -> bool:
        if _is_numpy(obj) or self.unavailable_reason() is not None:
            return False
        import array_api_compat

        return bool(array_api_compat.is_array_api_obj(obj))

    @functools.cache  # noqa: B019 (one instance per process: the registry's)
    def unavailable_reason(self) -> str | None:
        try:
            return super().unavailable_reason()
        except ImportError as exc:  # an import hook that refuses the module outright
            return f"missing module(s): {exc}; install with {self.install_hint}"

    def describe(self) -> list[str]:
        """The namespaces this process has computed on, and those it could import, each
        with its dtypes and whether it has ``fft``."""
        lines = [f"seen {key}: {_summary(caps)}" for key, caps in sorted(_seen.items())]
        for library, namespace in KNOWN.items():
            if importlib.util.find_spec(library) is None:
                continue
            if any(key.startswith(f"{namespace} on") for key in _seen):
                continue
            try:
                xp = importlib.import_module(namespace)
                info = xp.__array_namespace_info__()
                device = info.default_device()
                lines.append(
                    f"importable {namespace} on {device}: {_summary(capabilities_of(xp, device, record=False))}"
                )
            except Exception as exc:  # a library that fails to load must not break the listing
                lines.append(
                    f"importable {library}, but it fails to load: {type(exc).__name__}: {exc}"
                )
        return lines

    def dtype_name(self, obj: Any) -> str:
        import array_api_compat

        return dtype_name(array_api_compat.array_namespace(obj), obj.dtype)

    def array_key(self, obj: Any) -> Hashable | None:
        import array_api_compat

        xp, device = array_api_compat.array_namespace(obj), array_api_compat.device(obj)
        # the namespace's capabilities are part of it (array-api-strict can switch fft off)
        return (tuple(obj.shape), self.dtype_name(obj), str(device), _key(xp, device))

    def device_of(self, obj: Any) -> str:
        return "cpu"

    def asarray(self, obj: Any, dtype: str, options: Mapping[str, Any]) -> Any:
        import array_api_compat

        xp, device = self._context()
        if not _is_numpy(obj) and array_api_compat.is_array_api_obj(obj):
            if array_api_compat.array_namespace(obj) is xp:
                if array_api_compat.device(obj) != device:  # onto the call's device
                    obj = array_api_compat.to_device(obj, device)
                same = self.dtype_name(obj) == dtype
                return obj if same else xp.astype(obj, getattr(xp, dtype))
            obj = self.to_numpy(obj)
        if not hasattr(xp, dtype) or dtype in dict(capabilities_of(xp, device).missing):
            raise TypeError(f"namespace {xp.__name__} has no dtype {dtype} on device {device}")
        host = np.asarray(obj)
        host = np.ascontiguousarray(host) if host.ndim else host  # (0-d stays 0-d)
        return xp.asarray(host, dtype=getattr(xp, dtype), device=device)

    def to_numpy(self, obj: Any) -> np.ndarray:
        if _is_numpy(obj):
            return np.asarray(obj)
        try:
            return np.from_dlpack(obj)
        except (TypeError, RuntimeError, BufferError, ValueError):
            import array_api_compat

            return np.asarray(array_api_compat.to_device(obj, "cpu"))

    def restore(self, obj: Any, like: Any) -> Any:
        import array_api_compat

        xp = array_api_compat.array_namespace(like)
        if not _is_numpy(obj) and array_api_compat.array_namespace(obj) is xp:
            return obj
        host = self.to_numpy(obj)
        dtype = getattr(xp, host.dtype.name)
        return xp.asarray(host, dtype=dtype, device=array_api_compat.device(like))

    def namespace(self) -> Any:
        return self._context()[0]

    def fft_module(self) -> Any:
        xp = self.namespace()
        if not hasattr(xp, "fft"):
            raise ValueError(f"namespace {xp.__name__} has no fft extension; use method='direct'")
        return xp.fft

    def pad(self, x: Any, padding: tuple[tuple[int, int], ...], mode: str) -> Any:
        with self._using(x) as (xp, _):
            if mode == "zeros":
                import array_api_extra as xpx

                width = [(0, 0)] * (x.ndim - len(padding)) + [(lo, hi) for lo, hi in padding]
                return xpx.pad(x, width, mode="constant", xp=xp)
            return xp_pad(xp, x, padding, mode)

    def conv(
        self, x: Any, weight: Any, bias: Any | None, spec: ConvSpec, options: Mapping[str, Any]
    ) -> Any:
        with self._using(x) as (xp, _):
            if spec.method == "fft":
                self.fft_module()  # a clear error where there is none
                return self.conv_fft(x, weight, bias, spec, options)
            if spec.method == "winograd":
                return self.conv_winograd(x, weight, bias, spec, options)
            if spec.method != "direct":
                raise ValueError(
                    f"method={spec.method!r} is not a method of backend 'array_api'; it "
                    f"implements 'direct', 'fft' and 'winograd'"
                )
            xpad = self.pad(x, spec.padding, spec.padding_mode)
            return gather.direct_conv(xp, xpad, weight, bias, spec)

    def convolve(
        self, in1: Any, in2: Any, spec: SignalSpec, method: str, options: Mapping[str, Any]
    ) -> Any:
        with self._using(in1, in2):
            return super().convolve(in1, in2, spec, method, options)

    def conv_vjp(
        self,
        x: Any,
        weight: Any,
        grad_out: Any,
        spec: ConvSpec,
        bias: bool,
        options: Mapping[str, Any],
    ) -> tuple[Any, Any, Any | None]:
        with self._using(x, weight, grad_out):
            return super().conv_vjp(x, weight, grad_out, spec, bias, options)

    def conv_transpose(
        self, x: Any, weight: Any, bias: Any | None, spec: ConvSpec, options: Mapping[str, Any]
    ) -> Any:
        with self._using(x, weight):
            return super().conv_transpose(x, weight, bias, spec, options)


def seen() -> dict[str, Capabilities]:
    """The namespaces this process has computed on, with their capabilities, by
    ``"<namespace> on <device>"``.

    >>> isinstance(seen(), dict)
    True
    """
    return dict(_seen)


def _summary(caps: Capabilities) -> str:
    fft = "fft" if "fft" in caps.conv_methods else "no fft"
    return f"{','.join(caps.dtypes)}; {fft}"


@convkit.hookimpl
def convkit_add_backends(registry: BackendRegistry) -> None:
    """Register the ``array_api`` backend."""
    registry.add(ArrayAPIBackend())
