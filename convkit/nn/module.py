"""Parameters and the module protocol shared by every layer: PyTorch's conventions for
names, modes, ``repr`` and state dicts, and a Keras-style :meth:`Module.summary`."""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from convkit.fileio import atomic_output
from convkit.nn.parameter import Parameter, to_numpy

_RECORDING: contextvars.ContextVar[list[tuple[Module, tuple[int, ...]]] | None] = (
    contextvars.ContextVar("convkit_nn_summary", default=None)
)
"""While :meth:`Module.summary` runs: the leaf modules called, with their output shapes."""


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` with ``strict=False`` did not match."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base of the layers: ``layer(x)`` runs :meth:`forward`, :meth:`backward` takes the
    gradient of the loss with respect to the output, accumulates the parameters'
    gradients and returns the gradient with respect to the input.

    Names follow PyTorch: a child held in an attribute is named after it, the children
    of a :class:`~convkit.nn.Sequential` by their index, so :meth:`state_dict` keys are
    those of the same structure in PyTorch (``0.weight``, ``2.running_mean``, ...).
    Layers work on NumPy arrays; the convolution inside runs on the backend the layer
    (or the selection) names.

    >>> from convkit import nn
    >>> model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> list(model.state_dict())
    ['0.weight', '0.bias', '2.weight', '2.bias']
    >>> model.eval().training
    False
    """

    parameter_names: tuple[str, ...] = ()
    """Attributes that hold a :class:`Parameter` (or ``None`` when the layer has none)."""

    buffer_names: tuple[str, ...] = ()
    """Attributes that hold state saved with the parameters but not trained (running
    statistics), as NumPy arrays (or ``None``)."""

    training: bool = True
    """Whether the module is in training mode (:meth:`train`) or evaluation mode
    (:meth:`eval`); dropout and batch normalisation behave differently in each."""

    def forward(self, x: Any) -> Any:
        """Compute the output and remember what :meth:`backward` needs."""
        raise NotImplementedError

    def backward(self, grad_out: Any) -> Any:
        """Gradient with respect to the input of the last :meth:`forward`."""
        raise NotImplementedError

    def __call__(self, x: Any) -> Any:
        y = self.forward(x)
        calls = _RECORDING.get()
        if calls is not None and next(self.named_children(), None) is None:
            calls.append((self, tuple(np.shape(y))))
        return y

    def __setattr__(self, name: str, value: Any) -> None:
        current = self.__dict__.get(name)
        if isinstance(current, Parameter) and not isinstance(value, Parameter):
            current.value = value  # checked: same shape and dtype
            return
        optional = name in self.parameter_names and name in self.__dict__
        if optional and current is None and value is not None:
            raise ValueError(
                f"{type(self).__name__} has no {name} parameter (it was built without "
                f"one); build the layer with {name}=True to have one"
            )
        object.__setattr__(self, name, value)

    # -- structure ----------------------------------------------------------------------

    def children(self) -> list[Module]:
        """Sub-modules held in a sequence (``Sequential``); attributes are found anyway."""
        return []

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """``(name, module)`` for the direct sub-modules: attributes by name, then the
        sequence of :meth:`children` by index."""
        for name, value in self.__dict__.items():
            if isinstance(value, Module):
                yield name, value
        for i, child in enumerate(self.children()):
            yield str(i), child

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module (named ``prefix``) and every sub-module, depth first."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(name, parameter)`` pairs of this module and its children, in order."""
        for name, value in self.__dict__.items():
            if isinstance(value, Parameter):
                yield prefix + name, value
        for name, child in self.named_children():
            yield from child.named_parameters(f"{prefix}{name}.")

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """``(name, array)`` pairs of the buffers of this module and its children."""
        for name in self.buffer_names:
            value = self.__dict__.get(name)
            if value is not None:
                yield prefix + name, value
        for name, child in self.named_children():
            yield from child.named_buffers(f"{prefix}{name}.")

    def parameters(self) -> list[Parameter]:
        """Every parameter, for an optimiser."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        """Reset every parameter's gradient."""
        for p in self.parameters():
            p.zero_grad()

    # -- modes and dtypes ---------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Set training mode (``mode=False``: evaluation mode) here and in every
        sub-module; returns the module.

        >>> from convkit import nn
        >>> nn.Sequential(nn.Dropout()).train(False)[0].training
        False
        """
        for _, module in self.named_modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Set evaluation mode: dropout passes its input through and batch normalisation
        uses its running statistics. Returns the module.

        >>> from convkit import nn
        >>> nn.Dropout().eval().training
        False
        """
        return self.train(False)

    def astype(self, dtype: Any) -> Module:
        """Convert every floating-point parameter and buffer to ``dtype`` (``float32``
        or ``float64``), in place; returns the module. Make the optimiser afterwards.

        >>> from convkit import nn
        >>> nn.Linear(2, 1).astype(np.float64).weight.value.dtype
        dtype('float64')
        """
        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            raise TypeError(f"dtype={dtype!r}: layers train in float32 or float64")
        for _, module in self.named_modules():
            for value in module.__dict__.values():
                if isinstance(value, Parameter):
                    value.astype(dt)
            for name in module.buffer_names:
                buf = module.__dict__.get(name)
                if buf is not None and buf.dtype.kind == "f":
                    object.__setattr__(module, name, buf.astype(dt))
        return self

    def float(self) -> Module:
        """``astype(np.float32)``, as ``torch.nn.Module.float``."""
        return self.astype(np.float32)

    def double(self) -> Module:
        """``astype(np.float64)``, as ``torch.nn.Module.double``."""
        return self.astype(np.float64)

    # -- state ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and buffers by name (copies), PyTorch's keys for the same
        structure: each module's parameters, then its buffers, then its children's.

        >>> from convkit import nn
        >>> list(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).state_dict())
        ['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked']
        """
        state: dict[str, np.ndarray] = {}
        for prefix, module in self.named_modules():
            dot = f"{prefix}." if prefix else ""
            for name, value in module.__dict__.items():
                if isinstance(value, Parameter):
                    state[dot + name] = value.value.copy()
            for name in module.buffer_names:
                buf = module.__dict__.get(name)
                if buf is not None:
                    state[dot + name] = np.array(buf)
        return state

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Set parameters and buffers from ``state``: NumPy arrays, torch tensors (so
        ``model.load_state_dict(torch_model.state_dict())`` works for the same
        structure) or anything array-like.

        Shapes must match; values are cast to the module's dtypes where NumPy casts
        within a kind (float64 into float32), as ``torch.Tensor.copy_`` does. With
        ``strict=True`` the keys must match exactly; with ``strict=False`` the keys that
        did not are returned. Nothing is changed unless every entry fits.

        >>> from convkit import nn
        >>> a, b = nn.Linear(2, 1, seed=0), nn.Linear(2, 1, seed=1)
        >>> b.load_state_dict(a.state_dict())
        IncompatibleKeys(missing_keys=[], unexpected_keys=[])
        >>> bool((a.weight.value == b.weight.value).all())
        True
        """
        targets: dict[str, tuple[Module, str, np.ndarray]] = {}
        for prefix, module in self.named_modules():
            dot = f"{prefix}." if prefix else ""
            for name, value in module.__dict__.items():
                if isinstance(value, Parameter):
                    targets[dot + name] = (module, name, value.value)
            for name in module.buffer_names:
                buf = module.__dict__.get(name)
                if buf is not None:
                    targets[dot + name] = (module, name, buf)
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(
                f"state does not fit this {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        converted: dict[str, np.ndarray] = {}
        for key, (_, _, current) in targets.items():
            if key not in state:
                continue
            new = to_numpy(state[key])
            if new.shape != current.shape:
                raise ValueError(
                    f"state[{key!r}] has shape {new.shape}; this module's {key} has shape "
                    f"{current.shape}"
                )
            if not np.can_cast(new.dtype, current.dtype, "same_kind"):
                raise TypeError(
                    f"state[{key!r}] has dtype {new.dtype}; this module's {key} is "
                    f"{current.dtype}, which it cannot be cast to"
                )
            converted[key] = new.astype(current.dtype, copy=True)
        for key, new in converted.items():
            module, name, _ = targets[key]
            if isinstance(module.__dict__[name], Parameter):
                module.__dict__[name].value = new
            else:
                object.__setattr__(module, name, new)
        return IncompatibleKeys(missing, unexpected)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` to an ``.npz`` file, atomically: the file appears
        only complete, and a failure leaves any previous file untouched.

        >>> import tempfile, pathlib
        >>> from convkit import nn
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.npz"
        >>> nn.Linear(2, 1, seed=0).save(path)
        >>> sorted(np.load(path).files)
        ['bias', 'weight']
        """
        with atomic_output(path) as f:
            np.savez(f, **self.state_dict())  # type: ignore[arg-type]

    def load(self, path: str | os.PathLike[str]) -> None:
        """Read a state written by :meth:`save` (:meth:`load_state_dict`'s checks).

        >>> import tempfile, pathlib
        >>> from convkit import nn
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.npz"
        >>> nn.Linear(2, 1, seed=0).save(path)
        >>> layer = nn.Linear(2, 1, seed=1)
        >>> layer.load(path)
        >>> bool((layer.weight.value == nn.Linear(2, 1, seed=0).weight.value).all())
        True
        """
        with np.load(path) as data:
            self.load_state_dict({k: data[k] for k in data.files})

    # -- display ----------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The module's own settings, shown inside its ``repr`` (as PyTorch's)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr().splitlines()
        children = [
            f"({name}): " + repr(child).replace("\n", "\n  ")
            for name, child in self.named_children()
        ]
        lines = extra + children
        if not children and len(extra) <= 1:
            return f"{type(self).__name__}({''.join(extra)})"
        return type(self).__name__ + "(\n  " + "\n  ".join(lines) + "\n)"

    def summary(
        self, input_shape: tuple[int, ...], *, print_fn: Callable[[str], Any] = print
    ) -> None:
        """Print each layer, its output shape and its parameter count, as Keras'
        ``model.summary()``. ``input_shape`` is one example's shape (no batch axis); a
        forward pass on zeros in evaluation mode finds the shapes (a row for each call of
        a layer without children, named by its path), and the mode is left as it was.

        >>> from convkit import nn
        >>> nn.Sequential(nn.Linear(4, 3), nn.ReLU()).summary((4,))
        Layer (type)    Output shape        Param #
        ===========================================
        0 (Linear)      (None, 3)                15
        1 (ReLU)        (None, 3)                 0
        ===========================================
        Total params: 15
        Trainable params: 15
        Non-trainable params: 0
        """
        params = self.parameters()
        dtype = params[0].value.dtype if params else np.dtype(np.float32)
        names = {id(module): name for name, module in self.named_modules()}
        calls: list[tuple[Module, tuple[int, ...]]] = []
        was_training = self.training
        self.eval()
        token = _RECORDING.set(calls)
        try:
            self(np.zeros((1, *input_shape), dtype=dtype))
        finally:
            _RECORDING.reset(token)
            self.train(was_training)
        rows = [
            (
                f"{names[id(m)]} ({type(m).__name__})" if names[id(m)] else type(m).__name__,
                shape,
                sum(p.size for p in m.parameters()),
            )
            for m, shape in calls
        ]
        table = [("Layer (type)", "Output shape", "Param #")] + [
            (name, "(None, " + ", ".join(map(str, shape[1:])) + ")", f"{n:,}")
            for name, shape, n in rows
        ]
        name_w, shape_w, count_w = (max(len(r[i]) for r in table) + 4 for i in range(3))
        width = name_w + shape_w + count_w

        def line(r: tuple[str, str, str]) -> str:
            return r[0].ljust(name_w) + r[1].ljust(shape_w) + r[2].rjust(count_w)

        trainable = sum(p.size for p in params)
        buffers = sum(b.size for _, b in self.named_buffers() if b.dtype.kind == "f")
        out = [line(table[0]), "=" * width, *map(line, table[1:]), "=" * width]
        out += [
            f"Total params: {trainable + buffers:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {buffers:,}",
        ]
        for text in out:
            print_fn(text)
