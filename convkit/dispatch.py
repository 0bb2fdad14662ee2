"""One call's path, written once: owner → selection and plan → convert once → backend
→ check → convert back.

The public operations (:mod:`convkit.ops`) build a spec and hand :func:`run` the
operands, the estimates of each candidate (:mod:`convkit.estimates`) and how to call
the backend; :func:`run` does the rest, the same way for every operation:

1. the backend that owns each operand's array type (:func:`owner_of`);
2. the backend and method: the selected backend, or under ``auto`` the cheapest
   candidate (:func:`choose`, :mod:`convkit.planner`);
3. each operand converted to that backend's type and the call's dtype, once
   (:func:`to_backend`);
4. the backend's operation, under the ``threads`` setting if one is set; an exception
   there becomes a :class:`BackendError` naming it (:func:`call`);
5. each result checked against the shape and dtype the core computed
   (:func:`check_result`) and converted back to its operand's type and device
   (:func:`back`).

Steps 3-5 are a :class:`Plan`; a call that repeats an earlier call's signature runs the
earlier call's plan directly (:mod:`convkit.plans`).

Why this module is long: it is that one path, every step of it, so that one reading
shows how any call runs; splitting the steps apart would scatter a single sequence.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from convkit import calibration, planner, plans, plugins, registry, selection, threads
from convkit.backend import PRECISIONS, Backend
from convkit.checks import check_available, check_options, registered
from convkit.costs import CostModel
from convkit.planner import MethodChoice, MethodCosts, plan
from convkit.signalspec import METHODS


class Operand(NamedTuple):
    """One array argument of a call: its name (for messages), the array, and the
    backend that owns its type."""

    argument: str
    array: Any
    owner: Backend


class Output(NamedTuple):
    """What the core expects back for one result: its shape and dtype, the argument
    whose array type (and device) it returns in, and how messages name it."""

    shape: tuple[int, ...]
    dtype: str
    like: str
    what: str = "its result"


class CallOptions(selection.BackendOptions):
    """The options a backend receives for one call: the selection's options, with
    ``precision`` (the call's :data:`~convkit.backend.PRECISIONS` value) and, when the
    call runs on a device other than the CPU, ``device`` (:func:`call_device`), so that
    the backend puts every argument there; and :attr:`cost_model`, the rates its own
    choices within the call should use (this machine's calibrated ones on the call's
    device, else the built-in ones), looked up only if the backend asks."""

    def __init__(
        self, options: Mapping[str, Any], backend: Backend, device: str | None, precision: str
    ) -> None:
        merged = {**options, "precision": precision}
        if device is not None:
            merged["device"] = device
        super().__init__(merged, getattr(options, "from_config", ()))
        self._backend = backend

    @functools.cached_property
    def cost_model(self) -> CostModel:
        """The cost model the call was planned with."""
        return calibration.cost_model(self._backend, self)


def call_device(
    backend: Backend, inputs: Sequence[tuple[Backend, Any]], selected: Any = None
) -> str | None:
    """The device a call on ``backend`` runs on (``None``: the backend's default, its
    host, where every argument already is): the ``selected`` device option; else the
    device of the first argument of ``backend``'s own type (the CPU included, when
    another argument is elsewhere). A selected device with no index (``"cuda"``) is the
    argument's own device of that kind when it is on one, so a tensor on ``cuda:1``
    stays there.

    >>> import numpy as np, convkit as ck
    >>> numpy = ck.checks.registered_backend("numpy")
    >>> call_device(numpy, [(numpy, np.ones(2))]) is None
    True
    >>> call_device(numpy, [(numpy, np.ones(2))], "cpu")
    'cpu'
    """
    devices = [owner.device_of(a) for owner, a in inputs]
    own = next((d for (owner, _), d in zip(inputs, devices, strict=True) if owner is backend), None)
    if selected is None:
        if own is None or (own == "cpu" and all(d == "cpu" for d in devices)):
            return None
        return own
    selected = str(selected)
    if own is not None and ":" not in selected and own.partition(":")[0] == selected:
        return own
    return selected


def check_precision(precision: Any) -> str:
    """``precision`` if it is one of :data:`~convkit.backend.PRECISIONS`, else a
    ``ValueError`` that names them.

    >>> check_precision("fast")
    'fast'
    """
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(
            f"precision={precision!r} is not a precision; expected one of "
            f"{', '.join(repr(p) for p in PRECISIONS)}"
        )
    return precision


_call_arrays: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar(
    "convkit_call_arrays", default=()
)


def call_arrays() -> tuple[Any, ...]:
    """The input arrays of the call under way (empty outside one): a backend that serves
    many array libraries reads from them which one, and which device, the call is on.

    >>> call_arrays()
    ()
    """
    return _call_arrays.get()


@contextlib.contextmanager
def calling(arrays: Sequence[Any]) -> Iterator[None]:
    """Make ``arrays`` the call's arrays (:func:`call_arrays`) within the block.

    >>> with calling([np.ones(2)]):
    ...     len(call_arrays())
    1
    """
    token = _call_arrays.set(tuple(arrays))
    try:
        yield
    finally:
        _call_arrays.reset(token)


def operands(host: plugins.PluginHost, **arrays: Any) -> dict[str, Operand]:
    """Each named array as an :class:`Operand` (lists and scalars become NumPy arrays,
    non-native byte order becomes native); ``None`` stays out."""
    out = {}
    for argument, obj in arrays.items():
        if obj is not None:
            array = as_array(obj)
            out[argument] = Operand(argument, array, owner_of(host, array, argument))
    return out


def run(
    host: plugins.PluginHost,
    sel: selection.Selection,
    inputs: Sequence[Operand],
    *,
    op: str,
    costs: MethodCosts,
    arguments: Callable[[list[Any], MethodChoice], tuple[Any, ...]],
    outputs: Callable[[Backend, Any, str], tuple[Any, ...]],
    expected: Sequence[Output | None],
    dtype: str | Callable[[Backend, MethodChoice], str],
    method: str = "auto",
    methods: Sequence[str] = METHODS,
    cross: bool = True,
    signature: Hashable | None = None,
    keep_plan: Callable[[MethodChoice], bool] | None = None,
    precision: str = "highest",
) -> tuple[Any, ...]:
    """Run backend operation ``op`` on ``inputs`` and return its results in the
    operands' array types.

    ``arguments(converted, choice)`` gives the backend method's positional arguments
    (before ``options``) from the converted inputs; ``dtype`` is the dtype the inputs
    are converted to, or a function of the chosen backend and method that says it;
    ``outputs(target, result, computed_in)`` turns the backend's return value, computed
    in that dtype, into one array per :class:`Output` (``None`` where there is none, as
    a gradient of no bias). ``cross`` lets ``auto`` look beyond the owner of the first
    input. With a ``signature`` (:func:`convkit.plans.key`), the :class:`Plan` the call
    settled on is kept for the next call with that signature, unless ``keep_plan(choice)``
    says that the choice depended on more than the signature. ``precision`` is checked
    here and reaches the backend as ``options["precision"]``.
    """
    check_precision(precision)
    with calling([o.array for o in inputs]):  # the choices below read the call's arrays
        target, bsel, choice = choose(
            host, sel, [(o.owner, o.array) for o in inputs], method, costs, cross, methods=methods
        )
        compute_dtype = dtype(target, choice) if callable(dtype) else dtype
    device = call_device(target, [(o.owner, o.array) for o in inputs], bsel.options.get("device"))
    plan = Plan(
        host,
        target,
        [o.owner for o in inputs],
        [o.argument for o in inputs],
        compute_dtype,
        CallOptions(bsel.options, target, device, precision),
        threads.get_threads(selection.config_of(sel) or selection.NO_CONFIG)[0],
        op,
        functools.partial(_arguments, arguments, choice),
        outputs,
        expected,
        choice,
    )
    results = plan(*(o.array for o in inputs))
    if signature is not None and (keep_plan is None or keep_plan(choice)):
        plans.store(signature, plan, plans.selection_objects())
    return results


def _arguments(
    arguments: Callable[[list[Any], MethodChoice], tuple[Any, ...]],
    choice: MethodChoice,
    converted: list[Any],
) -> tuple[Any, ...]:
    return arguments(converted, choice)


class Plan:
    """A call's path once its backend, method and dtype are settled: convert each input
    once, compute (under the ``threads`` setting, if one is set), check each result's
    shape and dtype, convert it back to its operand's type and device. :func:`run` makes
    one per call; :mod:`convkit.plans` keeps it for calls with the same signature.

    >>> import numpy as np, convkit as ck
    >>> from convkit import plans
    >>> x, w = np.ones((1, 1, 8)), np.ones((1, 1, 2))
    >>> for _ in range(2):
    ...     y = ck.conv(x, w, backend="numpy")
    >>> args = (1, 0, 1, 1, "zeros", "auto", "numpy", "highest")
    >>> plan = plans.get(plans.key(plugins.host(), "conv", (x, w, None), args))
    >>> plan.target.name, plan.choice.method, plan(x, w, None)[0].tolist()
    ('numpy', 'direct', [[[2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]]])
    """

    __slots__ = (
        "arguments",
        "choice",
        "dtype",
        "expected",
        "host",
        "keep",
        "like",
        "op",
        "options",
        "outputs",
        "owners",
        "target",
        "threads",
    )

    def __init__(
        self,
        host: plugins.PluginHost,
        target: Backend,
        owners: list[Backend],
        names: list[str],
        dtype: str,
        options: CallOptions,
        thread_count: int | None,
        op: str,
        arguments: Callable[[list[Any]], tuple[Any, ...]],
        outputs: Callable[[Backend, Any, str], tuple[Any, ...]],
        expected: Sequence[Output | None],
        choice: MethodChoice,
    ) -> None:
        self.host, self.target, self.owners = host, target, owners
        self.dtype, self.options, self.threads, self.op = dtype, options, thread_count, op
        self.arguments, self.outputs, self.expected = arguments, outputs, list(expected)
        self.like = [None if e is None else names.index(e.like) for e in expected]
        self.choice = choice
        self.keep: tuple[Any, ...] = ()

    def __call__(self, *arrays: Any) -> tuple[Any, ...]:
        """The results for ``arrays`` (the operands in order; ``None`` entries skipped)."""
        present = [a for a in arrays if a is not None]
        with calling(present):
            return self._run(present)

    def _run(self, present: list[Any]) -> tuple[Any, ...]:
        host, target, dtype, options = self.host, self.target, self.dtype, self.options
        converted = [
            to_backend(host, target, owner, a, dtype, options)
            for owner, a in zip(self.owners, present, strict=True)
        ]
        args = self.arguments(converted)
        if self.threads is None:  # the common case, and a cheap one: nothing to set
            result = call(host, target, self.op, *args, options)
        else:
            with threads.limited(target, self.threads):
                result = call(host, target, self.op, *args, options)
        done: list[Any] = []
        results = self.outputs(target, result, dtype)
        for y, want, i in zip(results, self.expected, self.like, strict=True):
            if y is None or want is None or i is None:
                done.append(None)
                continue
            check_result(host, target, y, want.shape, want.dtype, want.what)
            done.append(back(host, target, self.owners[i], y, present[i]))
        return tuple(done)


def choose(
    host: plugins.PluginHost,
    sel: selection.Selection,
    inputs: list[tuple[Backend, Any]],
    method: str,
    method_costs: planner.MethodCosts,
    cross: bool = True,
    run: bool = True,
    methods: Sequence[str] = METHODS,
) -> tuple[Backend, selection.Selection, MethodChoice]:
    """The backend, its selection and the method a call runs with: the selected
    backend, or for ``auto`` the cheapest candidate (:mod:`convkit.planner`); ``cross``
    lets ``auto`` look beyond the input's owner. When the call will ``run``, a backend
    ``auto`` weighed by its installed modules alone gets its full availability check
    first, and is dropped if it fails it."""
    if method not in methods:
        raise ValueError(
            f"method={method!r} is not a method; expected one of "
            f"{', '.join(repr(m) for m in methods)}"
        )
    with calling([a for _, a in inputs]):
        return _choose(host, sel, inputs, method, method_costs, cross, run)


def _choose(
    host: plugins.PluginHost,
    sel: selection.Selection,
    inputs: list[tuple[Backend, Any]],
    method: str,
    method_costs: planner.MethodCosts,
    cross: bool,
    run: bool,
) -> tuple[Backend, selection.Selection, MethodChoice]:
    owner = inputs[0][0]
    if sel.name == selection.AUTO:
        host_inputs = cross and all(o.in_host_memory(a) for o, a in inputs)
        backends = planner.candidates(host, sel, check_available(owner), host_inputs)
        for candidate in backends:  # a bad option in a backend's own table is an error
            bsel = selection.for_backend(sel, candidate.name)
            own = {k: v for k, v in bsel.options.items() if k not in sel.options}
            if own:
                check_options(candidate, selection.Selection(candidate.name, own, bsel.source))
    else:
        backends = [check_available(registered(host, sel), sel.source)]

    def on_call_device(backend: Backend, bsel: selection.Selection) -> tuple[dict[str, float], str]:
        """Estimates for ``backend`` on the device the call would run on there (a CUDA
        tensor is estimated with its GPU's rates even when no ``device`` was given)."""
        device = call_device(backend, inputs, bsel.options.get("device"))
        if device is not None and device != bsel.options.get("device"):
            bsel = selection.Selection(bsel.name, {**bsel.options, "device": device}, bsel.source)
        return method_costs(backend, bsel)

    target, sel_target, choice = plan(backends, sel, method, on_call_device, owner, run)
    while run and target is not owner and registry.unavailable_reason(target) is not None:
        # auto weighed it from its installed files; its libraries do not load together
        backends = [b for b in backends if b is not target]
        target, sel_target, choice = plan(backends, sel, method, on_call_device, owner, run)
    return target, sel_target, choice


class BackendError(RuntimeError):
    """A backend failed during a call, or returned something other than what the core
    computed it must return; the message names the backend and the plugin."""


def call(host: plugins.PluginHost, target: Backend, method: str, *args: Any) -> Any:
    """``target.method(*args)``; a failure inside the backend is re-raised as a
    :class:`BackendError` that names the backend and its plugin."""
    try:
        return getattr(target, method)(*args)
    except Exception as exc:
        raise BackendError(
            f"backend {target.name!r} from {host.origin(target.name)} failed in {method}(): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def check_result(
    host: plugins.PluginHost,
    target: Backend,
    y: Any,
    shape: tuple[int, ...],
    dtype: str,
    what: str,
) -> None:
    got_shape = tuple(getattr(y, "shape", ()))
    try:
        got_dtype = target.dtype_name(y)
    except Exception:
        got_dtype = type(y).__name__
    if got_shape != shape or got_dtype != dtype:
        raise BackendError(
            f"backend {target.name!r} from {host.origin(target.name)} returned {what} with "
            f"shape {got_shape} and dtype {got_dtype}; expected shape {shape} and dtype "
            f"{dtype}"
        )


def back(host: plugins.PluginHost, target: Backend, owner: Backend, y: Any, like: Any) -> Any:
    """A result of ``target`` in the array type (and device) of ``like``."""
    if owner is not target:
        y = call(host, target, "to_numpy", y)
    return call(host, owner, "restore", y, like)


def as_array(obj: Any) -> Any:
    """Arrays pass through; lists, tuples and scalars become NumPy arrays. A NumPy
    array in non-native byte order (``>f8`` on a little-endian machine) is converted to
    native order here, once, so every later step sees ``float64``."""
    if not (hasattr(obj, "shape") and hasattr(obj, "dtype")):
        obj = np.asarray(obj)
    if isinstance(obj, np.ndarray | np.generic) and not obj.dtype.isnative:
        obj = obj.astype(obj.dtype.newbyteorder("="))
    return obj


def owner_of(host: plugins.PluginHost, obj: Any, argument: str) -> Backend:
    """The backend whose array type ``obj`` is (the first registered that owns it, a
    ``generic`` one only when no other does), remembered per type for this set of
    plugins."""
    kind = type(obj)
    found = host.owners.get(kind)
    if found is not None:
        return found
    registry = host.registry
    candidates = [b for b in map(registry.get, registry.names()) if b is not None]
    candidates.sort(key=lambda b: b.capabilities.generic)  # stable: dedicated ones first
    for candidate in candidates:
        if candidate.owns(obj):
            host.owners[kind] = candidate
            return candidate
    raise TypeError(
        f"{argument} is a {kind.__module__}.{kind.__qualname__}, which no registered "
        f"backend handles; registered "
        f"backends: {', '.join(registry.names()) or '(none)'}"
    )


def to_backend(
    host: plugins.PluginHost, target: Backend, owner: Backend, obj: Any, dtype: str, options: Any
) -> Any:
    """``obj`` (owned by ``owner``) in ``target``'s array type and ``dtype``, once."""
    if owner is not target:
        obj = call(host, owner, "to_numpy", obj)
    return call(host, target, "asarray", obj, dtype, options)
