"""How ``auto`` chooses: the backend and method expected to be fastest for one call.

With the default backend ``auto``, a call's candidates are the backend that owns its
input and, when every input lives in host memory (NumPy arrays, CPU tensors that need
no autograd), every available backend that declares
:attr:`~convkit.backend.Capabilities.host_arrays`: handing them a host array costs no
copy. Arrays on an accelerator, in a Dask graph, or of a third-party type stay with
their owner, so data never moves between devices unless a ``device`` is asked for.
Each candidate that supports the call (dimensions, dtype, padding mode, options) is
estimated by its cost model (:mod:`convkit.calibration`: this machine's measured rates,
or the backend's built-in ones) for each method, and the cheapest estimate wins. A
backend whose library is not imported yet carries its import time
(:attr:`~convkit.backend.Backend.import_seconds`): a NumPy-only program does not load
torch for a call it would speed up by less.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from convkit import calibration, plugins, selection
from convkit.backend import Backend
from convkit.registry import installed

CONVERT_SECONDS = 1e-5
"""Estimated cost of handing host arrays to a backend other than their owner (a view,
no copy; the result comes back the same way)."""


@dataclass(frozen=True)
class Estimate:
    """One alternative ``auto`` considered: a backend, a method, and its estimated
    seconds (``inf`` where it cannot run the call; ``note`` then says why)."""

    backend: str
    method: str
    seconds: float
    note: str = ""


@dataclass(frozen=True)
class MethodChoice:
    """The backend and method a call runs with, and the estimates behind the choice.

    ``costs`` maps each method to its estimated seconds on ``backend`` (``inf`` where
    the method is ruled out); ``estimates`` lists every alternative considered, for
    every candidate backend; ``reason`` says why the choice was made. ``str()`` gives
    a table.
    """

    method: str
    backend: str
    costs: dict[str, float]
    reason: str
    estimates: tuple[Estimate, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        lines = [f"picks {self.backend} / {self.method} ({self.reason})"]
        rows = sorted(self.estimates, key=lambda e: e.seconds)
        for e in rows:
            mark = "*" if (e.backend, e.method) == (self.backend, self.method) else " "
            cost = "-" if math.isinf(e.seconds) else f"{e.seconds * 1e3:.3f} ms"
            note = f"  {e.note}" if e.note else ""
            lines.append(f" {mark} {e.backend:10} {e.method:7} {cost:>13}{note}")
        return "\n".join(lines)


MethodCosts = Callable[[Backend, selection.Selection], tuple[dict[str, float], str]]
"""Per candidate: estimated seconds per method (``inf`` where ruled out) and a note; may
raise ``ValueError``/``TypeError`` when the candidate cannot run the call at all."""


def candidates(
    host: plugins.PluginHost, sel: selection.Selection, owner: Backend, host_inputs: bool
) -> list[Backend]:
    """The backends ``auto`` considers: ``owner`` first, then, when the inputs live in
    host memory, every other available backend that takes host arrays."""
    found = [owner]
    if not host_inputs:
        return found
    registry = host.registry
    for name in registry.names():
        backend = registry.get(name)
        if backend is None or backend is owner or not backend.capabilities.host_arrays:
            continue
        if installed(backend):  # the full check runs if it is picked
            found.append(backend)
    return found


def fixed_seconds(backend: Backend, sel: selection.Selection) -> float:
    """What running a call on ``backend`` costs before it computes anything, when it
    does not own the inputs: its model's per-call overhead, the hand-over, and its
    import time if its library is not loaded yet.

    >>> from convkit import checks
    >>> seconds = fixed_seconds(checks.registered_backend("numpy"), selection.Selection("numpy"))
    >>> round(seconds * 1e6)  # 20 µs per call, 10 µs to hand the arrays over
    30
    """
    model = calibration.lookup(backend, sel.options)[0]
    extra = 0.0 if backend.loaded() else backend.import_seconds
    return model.call_overhead + CONVERT_SECONDS + extra


def plan(
    backends: list[Backend],
    sel: selection.Selection,
    method: str,
    method_costs: MethodCosts,
    owner: Backend,
    shortcut: bool = False,
) -> tuple[Backend, selection.Selection, MethodChoice]:
    """The cheapest (backend, method) among ``backends`` for a call; ``method`` other
    than ``"auto"`` fixes the method. When no candidate can run the call, the error of
    the first candidate (the input's owner, or the selected backend) is raised. With
    ``shortcut``, a call whose estimate on its owner is below every other candidate's
    fixed cost (:func:`fixed_seconds`) stays with the owner without the others being
    estimated (the choice is the same; only the table is shorter)."""
    estimates: list[Estimate] = []
    best: tuple[float, Backend, selection.Selection, str] | None = None
    first_error: Exception | None = None
    per_backend: dict[str, dict[str, float]] = {}
    notes: dict[str, str] = {}
    for k, backend in enumerate(backends):
        if shortcut and k == 1 and best is not None and best[1] is owner and method == "auto":
            # the owner's estimate is below what any other candidate costs before it
            # computes anything (its fixed cost and the hand-over): the call is too small
            # to move, so the others are not estimated
            floor = min(fixed_seconds(b, selection.for_backend(sel, b.name)) for b in backends[1:])
            if best[0] <= floor:
                notes[owner.name] = (
                    f"below the {floor * 1e6:.0f} µs any other backend would cost to start"
                )
                break
        bsel = selection.for_backend(sel, backend.name)
        try:
            costs, note = method_costs(backend, bsel)
        except (ValueError, TypeError) as exc:
            first_error = first_error or exc
            estimates.append(Estimate(backend.name, "-", math.inf, str(exc)))
            continue
        compared = backend is not owner and len(backends) > 1  # auto weighs the moves
        extra = CONVERT_SECONDS if compared else 0.0
        if compared and not backend.loaded():
            extra += backend.import_seconds
            note = f"{note}; +{backend.import_seconds:g} s to import it first"
        per_backend[backend.name] = costs
        notes[backend.name] = note
        for m, seconds in costs.items():
            total = seconds + extra
            estimates.append(Estimate(backend.name, m, total, note))
            if method not in ("auto", m) or math.isinf(total):
                continue
            if best is None or total < best[0]:
                best = (total, backend, bsel, m)
    if best is None:
        if first_error is not None:
            raise first_error
        raise ValueError(
            f"no backend among {', '.join(b.name for b in backends)} can run this call"
        )
    _, target, tsel, chosen = best
    weighed = {e.backend for e in estimates}
    if method != "auto":
        reason = "requested"
    elif len(weighed) == 1 and len(backends) > 1:
        reason = notes[target.name]
    elif len(backends) > 1:
        reason = "lowest estimated cost of the candidate backends"
    else:
        reason = notes.get(target.name) or "lowest estimated cost"
    choice = MethodChoice(chosen, target.name, per_backend[target.name], reason, tuple(estimates))
    return target, tsel, choice
