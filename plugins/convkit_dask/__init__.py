"""The Dask backend: chunk-wise convolution of arrays larger than memory, on the threaded
scheduler or a ``dask.distributed`` cluster.

Dask arrays in, lazy Dask arrays out. Every block is computed by a local backend
(option ``inner``, default ``"auto"``: the backend convkit picks for NumPy arrays), whose
``conv`` the block calls directly, so this backend adds no convolution arithmetic of
its own: it pads the whole array, plans the chunks and halos, and assembles the blocks
(see :mod:`convkit_dask.ops`). Settings: :mod:`convkit_dask.settings`; the guide:
``docs/scaling.md``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

import convkit
from convkit.algorithms import direct, integers
from convkit.backend import Backend, Capabilities, precision_of
from convkit.costs import CostModel
from convkit.registry import BackendRegistry
from convkit.selection import parse_backend
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec
from convkit_dask import settings

CONVKIT_PLUGIN_API = 1
"""The convkit plugin API this plugin was written for."""

GRAPH_SECONDS = 5e-3
"""Fixed seconds of a call beyond its blocks' work: building the task graph and running
it on the scheduler (measured: 5 ms for a 16-sample ``conv`` on the threaded scheduler,
2 cores)."""


class DaskBackend(Backend):
    """Dask arrays, computed block by block with the halo each block needs; the padding
    mode is applied once, at the outer boundary of the whole array."""

    name = "dask"
    capabilities = Capabilities(
        devices=("cpu",),
        options=tuple(settings.DEFAULTS),
        array_types=("dask.array.Array",),
    )
    requires = ("dask", "array_api_compat")
    install_hint = "pip install -e '.[dask]' in the convkit checkout"

    def owns(self, obj: object) -> bool:
        array = sys.modules.get("dask.array")
        return array is not None and isinstance(obj, array.Array)

    def asarray(self, obj: Any, dtype: str, options: Mapping[str, Any]) -> Any:
        from convkit_dask import ops

        if not self.owns(obj):
            chunks = settings.setting("chunks", options)[0]
            stored = getattr(obj, "chunks", None)  # a Zarr array's own chunks
            if chunks == "auto" and isinstance(stored, tuple) and len(stored) == obj.ndim:
                chunks = stored
            obj = ops.asarray(obj, chunks)
        return obj if obj.dtype == np.dtype(dtype) else obj.astype(dtype)

    def to_numpy(self, obj: Any) -> np.ndarray:
        if not self.owns(obj):
            return np.asarray(obj)
        from convkit_dask import ops

        limit = settings.compute_limit()
        if obj.nbytes > limit and not ops.from_memory(obj):
            raise MemoryError(
                f"refusing to compute a Dask array of shape {obj.shape} ({obj.nbytes} bytes) "
                f"into one NumPy array: that is more than compute_limit={limit} bytes. Run "
                f"the call with backend='dask' to keep it chunked, call .compute() yourself "
                f"if it fits, or raise the limit (env var CONVKIT_DASK_COMPUTE_LIMIT or "
                f"compute_limit in [tool.convkit.dask])"
            )
        return compute(obj, _recall(obj))

    def restore(self, obj: Any, like: Any) -> Any:
        if self.owns(obj):
            return obj
        from convkit_dask import ops

        array = np.asarray(obj)
        chunks = like.chunks if tuple(like.shape) == array.shape else "auto"
        return ops.asarray(array, chunks)

    def store(self, obj: Any, target: Any) -> None:
        """Compute a lazy result into ``target`` on the scheduler its call was given
        (:func:`convkit_dask.store.store`): into a Zarr array, each block is written by
        the worker that computed it."""
        if not self.owns(obj):
            return super().store(obj, target)
        from convkit_dask import store

        store.store(obj, target, _recall(obj))

    def check_options(self, options: Mapping[str, Any]) -> None:
        inner, source = settings.setting("inner", options)
        if not isinstance(inner, str) or parse_backend(inner, source)[0] == self.name:
            raise ValueError(
                f"inner={inner!r} (from {source}) must name the local backend that "
                f"computes each block, such as 'auto', 'numpy' or 'scipy'; not the dask "
                f"backend itself"
            )
        chunks, source = settings.setting("chunks", options)
        ok = chunks == "auto" or (
            isinstance(chunks, int) and not isinstance(chunks, bool) and chunks > 0
        )
        if isinstance(chunks, list | tuple):
            ok = all(
                (isinstance(c, int) and c > 0) or isinstance(c, list | tuple) or c == "auto"
                for c in chunks
            )
        if not ok:
            raise ValueError(
                f"chunks={chunks!r} (from {source}) is not a chunk size; expected 'auto', "
                f"a positive int, or one size (or tuple of sizes) per dimension"
            )
        settings.compute_limit(options)
        settings.timeout(options)
        value, source = settings.setting("scheduler", options)
        try:
            settings.check_scheduler_value(value)
        except ValueError as exc:
            raise ValueError(f"{exc} (from {source})") from exc
        settings.scheduler(options)  # an address must answer now, within the timeout

    def cost_model(self, options: Mapping[str, Any]) -> CostModel:
        """The rates of the local backend that computes the blocks (NumPy's for
        ``inner="auto"``, whose blocks are NumPy arrays), calibrated where measured, with
        :data:`GRAPH_SECONDS` more per call."""
        from convkit import calibration, checks

        inner = str(settings.setting("inner", options)[0])
        name = "numpy" if inner == "auto" else parse_backend(inner, "inner")[0]
        try:
            model = calibration.cost_model(checks.registered_backend(name), {})
        except ValueError:  # an unknown inner backend is reported by check_options
            model = self.capabilities.costs
        overhead = model.call_overhead + GRAPH_SECONDS
        return dataclasses.replace(model, call_overhead=overhead)

    def namespace(self) -> Any:
        from convkit_dask import ops

        return ops.namespace()

    def pad(self, x: Any, padding: tuple[tuple[int, int], ...], mode: str) -> Any:
        from convkit_dask import ops

        return ops.pad(x, padding, mode)

    def conv(
        self, x: Any, weight: Any, bias: Any | None, spec: ConvSpec, options: Mapping[str, Any]
    ) -> Any:
        from convkit_dask import ops

        w = self._small(weight, "weight", options)
        b = None if bias is None else self._small(bias, "bias", options)
        y = ops.conv(
            x, w, b, spec, inner=self._inner(x, spec, options), precision=precision_of(options)
        )
        _remember(y, options)
        return y

    def conv_vjp(
        self,
        x: Any,
        weight: Any,
        grad_out: Any,
        spec: ConvSpec,
        bias: bool,
        options: Mapping[str, Any],
    ) -> tuple[Any, Any, Any | None]:
        """Lazy gradients, block by block (:func:`convkit_dask.ops.conv_vjp`): only the
        weights are held in memory. A gradient returned in the type of a NumPy argument
        (the weight's, usually) is computed on the call's scheduler."""
        from convkit_dask import ops

        w = self._small(weight, "weight", options)
        inner = self._inner(x, spec, options)
        grads = ops.conv_vjp(
            x, w, grad_out, spec, bias, inner=inner, precision=precision_of(options)
        )
        for g in grads:
            if g is not None:
                _remember(g, options)
        return grads

    def conv_transpose(
        self, x: Any, weight: Any, bias: Any | None, spec: ConvSpec, options: Mapping[str, Any]
    ) -> Any:
        """A lazy transposed convolution, chunk by chunk
        (:func:`convkit_dask.ops.conv_transpose`)."""
        from convkit_dask import ops

        w = self._small(weight, "weight", options)
        b = None if bias is None else self._small(bias, "bias", options)
        y = ops.conv_transpose(
            x, w, b, spec, inner=self._inner(x, spec, options), precision=precision_of(options)
        )
        _remember(y, options)
        return y

    def convolve(
        self, in1: Any, in2: Any, spec: SignalSpec, method: str, options: Mapping[str, Any]
    ) -> Any:
        # the smaller input becomes the weights of one grouped conv; each block then
        # runs the requested method (an FFT per block is overlap-save)
        def conv(x: Any, w: Any, cspec: ConvSpec) -> Any:
            return self.conv(x, w, None, dataclasses.replace(cspec, method=method), options)

        dtype = np.dtype(in1.dtype)
        # the FFT method gets integers: float64, rounded back (through int64, so that
        # values beyond a small dtype wrap as integers do); with no axis to convolve,
        # the product is exact in the dtype itself
        as_float = dtype.kind in "iu" and bool(spec.conv_axes)
        if as_float:
            in1, in2 = in1.astype(np.float64), in2.astype(np.float64)
        y = direct.direct_convolve(self.namespace(), conv, in1, in2, spec)
        return integers.round_to_integers(self.namespace(), y, dtype) if as_float else y

    def _inner(self, x: Any, spec: ConvSpec, options: Mapping[str, Any]) -> str:
        """The local backend the blocks run on. A named one is checked here, once for
        the whole graph, as a call to it would be (available, and declaring the dtype,
        dimensions, groups and dilation of the blocks); ``"auto"`` is resolved by each
        worker for its own blocks (:func:`convkit_dask.ops.block_backend`), since the
        workers may have other libraries than this process."""
        inner = str(settings.setting("inner", options)[0])
        if inner == "auto":
            return inner
        from convkit import checks, selection

        name, opts = parse_backend(inner, "inner")
        backend = checks.check_available(checks.registered_backend(name), "option inner")
        block = dataclasses.replace(spec, padding=((0, 0),) * spec.ndim)  # padded here
        chosen = selection.Selection(name, opts, "the dask backend's option inner")
        checks.check_capabilities(backend, chosen, block, np.dtype(x.dtype).name)
        return inner

    def _small(self, a: Any, what: str, options: Mapping[str, Any]) -> np.ndarray:
        """Weights as NumPy: they are small, and every block needs all of its groups'."""
        if not self.owns(a):
            return np.asarray(a)
        limit = settings.compute_limit(options)
        if a.nbytes > limit:
            raise MemoryError(
                f"the {what} of shape {a.shape} ({a.nbytes} bytes) is more than "
                f"compute_limit={limit} bytes; the dask backend chunks the input and holds "
                f"the {what} in memory"
            )
        return compute(a, options)


_recent: dict[str, Mapping[str, Any]] = {}
"""The options of recent results, by graph-layer name: ``to_numpy`` (which gets no
options) computes a result on the scheduler its call was given."""


def _remember(y: Any, options: Mapping[str, Any]) -> None:
    # only explicit options: a value from the config file is read again when needed,
    # under the environment, as the call read it
    given = settings.explicit_options(options)
    if "scheduler" in given or "timeout" in given:
        if len(_recent) >= 256:
            del _recent[next(iter(_recent))]
        _recent[y.name] = {k: given[k] for k in ("scheduler", "timeout") if k in given}


def _recall(a: Any) -> Mapping[str, Any] | None:
    for name in reversed(list(a.dask.layers)):
        if name in _recent:
            return _recent[name]
    return None


def compute(a: Any, options: Mapping[str, Any] | None = None) -> np.ndarray:
    """Compute a Dask array into NumPy on the configured scheduler (threads unless
    ``scheduler`` names a cluster's address).

    >>> import dask.array as da
    >>> compute(da.ones(3, chunks=2)).tolist()
    [1.0, 1.0, 1.0]
    """
    import dask

    (result,) = dask.compute(a, scheduler=settings.scheduler(options))
    return np.asarray(result)


@convkit.hookimpl
def convkit_add_backends(registry: BackendRegistry) -> None:
    """Register the ``dask`` backend."""
    registry.add(DaskBackend())
