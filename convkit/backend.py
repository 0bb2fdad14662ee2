"""What a backend is: the small surface every backend implements, and its capabilities.

A backend is an object that subclasses :class:`Backend`. The core talks to it only
through the methods below, with arrays already converted to the backend's own type and
a :class:`~convkit.spec.ConvSpec` already checked. Importing a backend's module must be
cheap: heavy libraries (torch, scipy) are imported inside the methods, never at module
import, so ``import convkit`` and ``convkit backends`` stay fast.

Why this module is long: it is the whole contract between the core and a backend — the
capabilities, every method a backend may implement with its documented default, and the
mix-in for NumPy-based backends — so that a plugin author reads it in one place.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from convkit.algorithms import direct, fft, vjp, winograd
from convkit.costs import CostModel
from convkit.dtypes import COMPLEX_DTYPES, FLOAT_DTYPES
from convkit.padding import PADDING_MODES, pad_numpy
from convkit.padding import pad as xp_pad
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec

_DTYPE_NAMES: dict[Any, str] = {}

PRECISIONS = ("highest", "fast")
"""The values of the ``precision`` argument of the operations. ``"highest"`` (the
default): every product and sum in the dtype itself, as the conformance suite checks
(float32 is float32, not TF32 or bfloat16). ``"fast"``: a backend may let its library
lower float32 arithmetic where the hardware gains from it (TF32 on NVIDIA tensor
cores: a 10-bit mantissa, relative errors up to about 1e-3). A backend that has no
such choice computes ``"fast"`` at the highest precision."""


def precision_of(options: Mapping[str, Any]) -> str:
    """The precision a backend method is asked for: ``options["precision"]``, which the
    core sets on every call, else ``"highest"`` (a backend method called directly).

    >>> precision_of({"precision": "fast"}), precision_of({})
    ('fast', 'highest')
    """
    return str(options.get("precision", "highest"))


@dataclass(frozen=True)
class Capabilities:
    """What a backend supports; the core checks a call against it before dispatch.

    ``max_ndim=None`` means any number of spatial dimensions.

    >>> Capabilities(dtypes=("float32", "float64")).supports_ndim(7)
    True
    """

    dtypes: tuple[str, ...] = FLOAT_DTYPES + COMPLEX_DTYPES
    devices: tuple[str, ...] = ("cpu",)
    min_ndim: int = 1
    max_ndim: int | None = None
    padding_modes: tuple[str, ...] = PADDING_MODES
    groups: bool = True
    dilation: bool = True
    options: tuple[str, ...] = ("device",)
    array_types: tuple[str, ...] = ("numpy.ndarray",)
    integer_conv: bool = False
    """Whether ``conv`` computes integer dtypes exactly (used by ``convolve``'s direct
    method when float64 would not be exact)."""
    conv_methods: tuple[str, ...] = ("direct", "fft")
    """The methods of ``conv`` this backend implements: ``"direct"``, ``"fft"`` (any
    backend, through :meth:`Backend.conv_fft`), and ``"winograd"`` for a backend whose
    ``conv`` calls :meth:`Backend.conv_winograd` on ``spec.method == "winograd"``."""
    host_arrays: bool = False
    """Whether the default backend ``auto`` may run this backend on arrays in host
    memory that another backend owns (NumPy arrays, CPU tensors): its :meth:`~Backend.asarray`
    takes a NumPy array without copying it or moving it off the host."""
    generic: bool = False
    """Whether this backend claims arrays of many libraries (any Array API array): the
    core offers it an array only after every other backend has declined it, so a
    dedicated backend always keeps its own type."""
    precisions: tuple[str, ...] = ("highest",)
    """The values of ``precision`` this backend computes differently (:data:`PRECISIONS`);
    it accepts the others and computes them at ``"highest"``. The torch backend honours
    ``"fast"`` (TF32 on CUDA)."""
    missing: tuple[tuple[str, str], ...] = ()
    """Methods and dtypes this backend lacks here, each with the reason, for the error a
    call asking for one gets (``("fft", "namespace X has no fft extension")``)."""
    costs: CostModel = field(default_factory=CostModel)

    def supports_ndim(self, d: int) -> bool:
        """Whether ``d`` spatial dimensions are supported."""
        return d >= self.min_ndim and (self.max_ndim is None or d <= self.max_ndim)

    def describe_ndim(self) -> str:
        """Spatial dimensions as text, such as ``'1+'`` or ``'1-3'``."""
        if self.max_ndim is None:
            return f"{self.min_ndim}+"
        return f"{self.min_ndim}-{self.max_ndim}"


class Backend:
    """Base class of convkit backends.

    Subclasses set :attr:`name`, :attr:`capabilities`, :attr:`requires` (top-level
    modules that must be importable) and :attr:`install_hint`, and implement the
    methods that raise ``NotImplementedError`` here. See ``docs/plugins.md``.

    >>> class Mine(Backend):
    ...     name = "mine"
    >>> Mine().unavailable_reason() is None
    True
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    requires: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = ""

    def unavailable_reason(self) -> str | None:
        """Why this backend cannot run here, or ``None`` when it can.

        The default checks that every module in :attr:`requires` can be found, without
        importing it.
        """
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            hint = f"; install it with {self.install_hint}" if self.install_hint else ""
            return f"missing module(s) {', '.join(missing)}{hint}"
        return None

    def owns(self, obj: object) -> bool:
        """Whether ``obj`` is an array of this backend's own type. The answer must
        depend on the type alone: the core remembers it per type."""
        raise NotImplementedError

    def dtype_name(self, obj: Any) -> str:
        """The NumPy name of the dtype of an array this backend owns (``'float32'``):
        kind and size only, so a big-endian ``>f8`` is ``'float64'`` too."""
        dtype = obj.dtype
        try:
            return _DTYPE_NAMES[dtype]
        except (KeyError, TypeError):  # looked up once per dtype: .name is slow
            name = np.dtype(dtype).name
            with contextlib.suppress(TypeError):
                _DTYPE_NAMES[dtype] = name
            return name

    def asarray(self, obj: Any, dtype: str, options: Mapping[str, Any]) -> Any:
        """Convert a NumPy array, or an array of this backend's type, to this backend's
        type with ``dtype`` (and on the device named in ``options``, if any)."""
        raise NotImplementedError

    def to_numpy(self, obj: Any) -> np.ndarray:
        """Convert an array of this backend's type to a NumPy array."""
        raise NotImplementedError

    def restore(self, obj: Any, like: Any) -> Any:
        """Convert a result (NumPy, or this backend's type) to the type, and device, of
        ``like``, an array this backend owns. Called on the backend that owns the
        caller's input, so results come back the way they went in."""
        raise NotImplementedError

    def store(self, obj: Any, target: Any) -> None:
        """Write ``obj``, an array of this backend, into ``target``: an array of the
        same shape that takes NumPy slice assignment (a Zarr array, a NumPy memory map),
        as :func:`convkit.adapters.arrays.save_array` opens it. The default assigns
        :meth:`to_numpy` of ``obj`` whole; a backend of lazy, chunked arrays writes
        chunk by chunk.

        >>> import convkit as ck
        >>> target = np.zeros(3)
        >>> ck.checks.registered_backend("numpy").store(np.arange(3.0), target)
        >>> target.tolist()
        [0.0, 1.0, 2.0]
        """
        target[...] = self.to_numpy(obj)

    def describe(self) -> list[str]:
        """Lines ``convkit backends`` prints about this backend beyond its table row
        (what it has seen or can reach); none by default.

        >>> import convkit as ck
        >>> ck.checks.registered_backend("numpy").describe()
        []
        """
        return []

    def in_host_memory(self, obj: Any) -> bool:
        """Whether ``obj``, an array this backend owns, lives in host memory and
        :meth:`to_numpy` returns it without copying or computing anything; only then may
        ``auto`` hand it to another backend. The default, ``False``, keeps arrays with
        their owner."""
        return False

    def array_key(self, obj: Any) -> Hashable | None:
        """What, besides its type, a call's backend selection and planning read from an
        array this backend owns (its shape and dtype; a device, a flag), so that a call
        repeating an earlier call's signature can skip them (:mod:`convkit.plans`).
        ``None``, the default, means the array cannot be described cheaply and every
        call takes the full path.

        >>> import convkit as ck
        >>> ck.checks.registered_backend("numpy").array_key(np.ones((2, 3)))
        ((2, 3), dtype('float64'))

        .. versionadded:: 0.2
        """
        return None

    vjp_falls_back: ClassVar[bool] = False
    """Whether this backend's own :meth:`conv_vjp` runs the default (the gradients
    through :meth:`conv`) where its cost model estimates that cheaper, as the numpy
    backend does for large kernels, where the default's convolutions use the FFT; the
    planner then estimates the cheaper of the two."""

    import_seconds: ClassVar[float] = 0.0
    """Roughly how long the first call takes to import this backend's library; ``auto``
    adds it to the estimates of a backend that is not :meth:`loaded` yet, so a
    NumPy-only program does not import a large library for a call it speeds up by
    less."""

    def loaded(self) -> bool:
        """Whether this backend's library is already imported in this process."""
        return True

    def device_of(self, obj: Any) -> str:
        """The device an array this backend owns lives on, with its index where the
        library has one (``"cpu"``, ``"cuda:1"``). A call runs on the device of its first
        argument of this backend's type unless a ``device`` option says otherwise, and
        the core hands it to the backend as ``options["device"]`` (on every device but
        the CPU) so that arguments of other types join it there; ``auto`` estimates it
        with that device's cost model."""
        return "cpu"

    def device_key(self, device: str) -> str:
        """What this machine's measured rates on ``device`` are stored under
        (:func:`convkit.calibration.model_key`): the device's kind by default (``"cpu"``,
        ``"cuda"``); a backend whose devices differ from one another names the model
        and index (``"cuda:0 (NVIDIA H200)"``).

        >>> import convkit as ck
        >>> ck.checks.registered_backend("numpy").device_key("cpu")
        'cpu'
        """
        return device.partition(":")[0]

    def synchronize(self, obj: Any) -> None:
        """Wait until the work that produces ``obj`` (an array of this backend, or a
        tuple of them) is done: what a timing must end with on a device that runs
        asynchronously (a CUDA stream). The default does nothing.

        >>> import convkit as ck
        >>> ck.checks.registered_backend("numpy").synchronize(np.ones(2))
        """

    def cost_model(self, options: Mapping[str, Any]) -> CostModel:
        """The built-in cost model for a call with ``options`` (such as its device);
        ``convkit calibrate`` measures this machine's and takes precedence."""
        return self.capabilities.costs

    def limit_threads(self, threads: int) -> contextlib.AbstractContextManager[None]:
        """A context in which this backend's libraries use ``threads`` threads, restoring
        their previous counts on exit; the core enters it around a call when the user set
        ``threads`` (:mod:`convkit.threads`), and never otherwise. The default calls
        :meth:`set_threads` (kept for plugins written before this method) and restores
        nothing: override this to leave the process as it was.

        .. versionadded:: 0.1 (plugin API 1)
        """
        self.set_threads(threads)
        return contextlib.nullcontext()

    def set_threads(self, threads: int) -> None:
        """Deprecated in favour of :meth:`limit_threads`: use ``threads`` threads from
        now on. The default does nothing."""

    def devices_here(self) -> tuple[str, ...]:
        """The declared devices that exist on this machine (default: all declared), by
        kind or, for a kind with several, each with its index (``"cuda:0"``):
        ``convkit calibrate`` measures each."""
        return self.capabilities.devices

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` if ``options`` (such as ``device``) cannot be honoured."""
        device = options.get("device")
        if device is not None and device not in self.capabilities.devices:
            raise ValueError(
                f"backend {self.name!r} cannot run on device={device!r}; it supports "
                f"{', '.join(self.capabilities.devices)}"
            )

    def namespace(self) -> Any:
        """The array-API namespace of this backend's arrays (default: NumPy's)."""
        return np

    def fft_module(self) -> Any:
        """The FFT functions to use, with NumPy's signatures (default: the namespace's)."""
        return self.namespace().fft

    def pad(self, x: Any, padding: tuple[tuple[int, int], ...], mode: str) -> Any:
        """Pad the trailing spatial axes; the default works for any array-API library."""
        return xp_pad(self.namespace(), x, padding, mode)

    def convolve(
        self, in1: Any, in2: Any, spec: SignalSpec, method: str, options: Mapping[str, Any]
    ) -> Any:
        """``convolve`` (or ``correlate``, when ``spec.correlate``) of two arrays of this
        backend's type and one dtype, with ``method`` ``"direct"`` or ``"fft"``; returns
        ``spec.output_shape``.

        The default computes the direct method as one grouped :meth:`conv` by its
        direct method (:func:`convkit.algorithms.direct.direct_convolve`; no transform
        hides inside, so integers stay exact and ``method="direct"`` times as itself)
        and the FFT method by :func:`convkit.algorithms.fft.fft_convolve` on
        :meth:`namespace`.
        """
        xp = self.namespace()
        if method == "fft":
            return fft.fft_convolve(xp, in1, in2, spec, self.fft_module())
        conv = direct.conv_fn(self, options, methods=("direct",))
        return direct.direct_convolve(xp, conv, in1, in2, spec)

    def conv(
        self, x: Any, weight: Any, bias: Any | None, spec: ConvSpec, options: Mapping[str, Any]
    ) -> Any:
        """Cross-correlate a batched input, padding it as ``spec`` says.

        ``x`` is ``(N, C_in, *S)``, ``weight`` ``(C_out, C_in // groups, *K)``, ``bias``
        ``(C_out,)`` or ``None``, all of this backend's type and one dtype. Returns an
        array of shape ``spec.output_shape`` and that dtype::

            y[n, o, i] = bias[o] + sum_{c, a} weight[o, c, a] * xpad[n, g*Cg + c, i*stride + a*dilation]

        where ``g`` is the group of output channel ``o`` and ``Cg = C_in // groups``.
        ``spec.method`` is ``"direct"`` or ``"fft"``; :meth:`conv_fft` implements the
        latter for any backend.
        """
        raise NotImplementedError

    def conv_vjp(
        self,
        x: Any,
        weight: Any,
        grad_out: Any,
        spec: ConvSpec,
        bias: bool,
        options: Mapping[str, Any],
    ) -> tuple[Any, Any, Any | None]:
        """``(grad_x, grad_weight, grad_bias)`` of :meth:`conv` for ``grad_out``.

        The default derives all three from the forward operation
        (:func:`convkit.algorithms.vjp.conv_vjp`): a backend that passes the conformance
        suite trains without a backward of its own. A backend may override with a
        native one.
        """
        return vjp.conv_vjp(
            self.namespace(),
            direct.conv_fn(self, options),
            lambda a: self.pad(a, spec.padding, spec.padding_mode),
            x,
            weight,
            grad_out,
            spec,
            bias,
        )

    def conv_transpose(
        self, x: Any, weight: Any, bias: Any | None, spec: ConvSpec, options: Mapping[str, Any]
    ) -> Any:
        """The adjoint of :meth:`conv` with respect to its input: ``spec`` describes the
        forward ``conv`` whose output has ``x``'s shape; returns its input's shape
        (default: :func:`convkit.algorithms.vjp.conv_transpose`)."""
        conv = direct.conv_fn(self, options)
        return vjp.conv_transpose(self.namespace(), conv, x, weight, bias, spec)

    def conv_winograd(
        self, x: Any, weight: Any, bias: Any | None, spec: ConvSpec, options: Mapping[str, Any]
    ) -> Any:
        """The Winograd method of :meth:`conv` for 3-tap kernels at stride 1, for any
        backend (:func:`convkit.algorithms.winograd.winograd_conv` on
        :meth:`namespace`, with the tile
        :func:`~convkit.algorithms.direct.winograd_tile` picks for the dtype).

        >>> import convkit as ck
        >>> x, w = np.ones((1, 1, 6)), np.ones((1, 1, 3))
        >>> spec = ConvSpec.build(x.shape, w.shape, method="winograd")
        >>> ck.checks.registered_backend("numpy").conv_winograd(x, w, None, spec, {}).round(12)
        array([[[3., 3., 3., 3.]]])
        """
        tile = direct.winograd_tile(self.dtype_name(x), spec) or min(winograd.TILES)
        return winograd.winograd_conv(
            self.namespace(),
            x,
            weight,
            bias,
            spec,
            tile=tile,
            pad=lambda a: self.pad(a, spec.padding, spec.padding_mode),
        )

    def conv_fft(
        self, x: Any, weight: Any, bias: Any | None, spec: ConvSpec, options: Mapping[str, Any]
    ) -> Any:
        """The FFT method of :meth:`conv`, for any backend
        (:func:`convkit.algorithms.fft.conv_fft`): pad, transform input and weights, sum
        the channels per frequency, invert; one channel per group goes to
        :meth:`convolve`, which may use overlap-add."""
        return fft.conv_fft(self, x, weight, bias, spec, options)


class NumpyArrays:
    """Array conversion for a backend that computes on NumPy arrays (mix in before
    :class:`Backend`): inputs become NumPy arrays of the call's dtype, results go back
    as they are, and padding is :func:`numpy.pad` in convkit's modes.

    >>> class Mine(NumpyArrays, Backend):
    ...     name = "mine"
    >>> Mine().asarray([1, 2], "float32", {}).dtype
    dtype('float32')
    """

    def asarray(self, obj: Any, dtype: str, options: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(obj, dtype=dtype)

    def to_numpy(self, obj: Any) -> np.ndarray:
        return np.asarray(obj)

    def restore(self, obj: Any, like: Any) -> np.ndarray:
        return np.asarray(obj)

    def array_key(self, obj: Any) -> Hashable | None:
        dtype = obj.dtype
        return (obj.shape, dtype) if dtype.isnative else None

    def pad(self, x: np.ndarray, padding: tuple[tuple[int, int], ...], mode: str) -> np.ndarray:
        return pad_numpy(x, padding, mode)


@dataclass(frozen=True)
class BackendInfo:
    """One registered backend, as :func:`convkit.list_backends` reports it."""

    name: str
    available: bool
    reason: str | None
    plugin: str
    distribution: str | None
    version: str | None
    capabilities: Capabilities = field(repr=False)
