"""The six exercises of "From Dense Layers to Convolutions", carried out and measured,
plus the chapter's Waldo detector.

``convkit exercises`` runs them (:func:`run_all`) and writes ``report.md`` with every
number and figure; each exercise is also a module with a ``run(ctx) -> Result``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from convkit.exercises import audio, boundary, commutativity, delta0, invariance, text, waldo
from convkit.exercises.common import Context, Result
from convkit.fileio import atomic_output

EXERCISES: dict[str, Callable[[Context], Result]] = {
    "delta0": delta0.run,
    "invariance": invariance.run,
    "boundary": boundary.run,
    "audio": audio.run,
    "text": text.run,
    "commutativity": commutativity.run,
    "waldo": waldo.run,
}
"""Exercise name to its ``run`` function, in the chapter's order."""


def run_all(
    names: Sequence[str] | None = None,
    *,
    backend: str | None = "numpy",
    out: str | Path = "out/exercises",
    quick: bool = False,
    progress: bool | None = None,
    log: Any = None,
    backend_source: str | None = None,
    audio: str | Path | None = None,
) -> list[Result]:
    """Run the named exercises (all by default), write ``out/report.md`` and
    ``out/report.json``, and return the results. ``backend_source`` is what the report
    says chose the backend (e.g. ``"--backend"``); by default, where
    :func:`convkit.get_backend` finds the choice; ``audio`` a recording exercise 4 also
    denoises."""
    check_names(names)
    selected = [n for n in EXERCISES if not names or n in names]
    ctx = Context(
        backend=backend,
        quick=quick,
        out=Path(out),
        progress=progress,
        backend_source=backend_source,
        audio=None if audio is None else Path(audio),
    )
    ctx.out.mkdir(parents=True, exist_ok=True)
    log = sys.stderr if log is None else log
    results, seconds = [], {}
    for i, name in enumerate(selected, 1):
        print(f"[{i}/{len(selected)}] {name} ...", file=log, flush=True)
        start = time.perf_counter()
        results.append(EXERCISES[name](ctx))
        seconds[name] = time.perf_counter() - start
    write_report(results, ctx, seconds)
    return results


def check_names(names: Sequence[str] | None) -> None:
    """Raise a ``ValueError`` naming any of ``names`` that is not an exercise.

    >>> check_names(["delta0", "waldo"])
    >>> check_names(["delta1"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown exercise(s) delta1; valid: delta0, invariance, boundary, ...
    """
    unknown = sorted(set(names or []) - set(EXERCISES))
    if unknown:
        raise ValueError(f"unknown exercise(s) {', '.join(unknown)}; valid: {', '.join(EXERCISES)}")


def summary(results: Sequence[Result]) -> str:
    """A plain-text table: exercise, key number, verdict."""
    width = max(len(r.name) for r in results)
    key_width = max(len(r.key) for r in results)
    lines = [f"{'exercise':{width}}  {'key number':{key_width}}  verdict"]
    lines += [f"{r.name:{width}}  {r.key:{key_width}}  {r.verdict}" for r in results]
    return "\n".join(lines)


def write_report(results: Sequence[Result], ctx: Context, seconds: dict[str, float]) -> None:
    """``report.md`` (numbers, verdicts, figures) and ``report.json``, atomically."""
    import convkit

    selection = convkit.get_backend(ctx.backend)
    if ctx.backend_source is not None:
        selection = dataclasses.replace(selection, source=ctx.backend_source)
    note = (
        " (per call, the backend and method estimated fastest)" if selection.name == "auto" else ""
    )
    lines = [
        "# convkit exercises: from dense layers to convolutions",
        "",
        f"Backend: {selection}{note}. Mode: {'quick' if ctx.quick else 'full'}. "
        f"convkit {convkit.__version__}.",
        "",
        "| exercise | key number | verdict | seconds |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r.name} | {_cell(r.key)} | {_cell(r.verdict)} | {seconds[r.name]:.1f} |"
        for r in results
    ]
    for r in results:
        lines += ["", f"## {r.title}", ""]
        if r.question:
            lines += [f"**Question.** {r.question}", ""]
        if r.answer:
            lines += [f"**Answer.** {r.answer}", ""]
        lines += [f"**In one line:** {r.verdict}", ""]
        if r.details:
            lines += ["**Evidence.**", "", r.details, ""]
        lines += [f"![{r.name}]({fig})" for fig in r.figures]
        if r.figures:
            lines += [""]
        if r.limits:
            lines += [f"**Limits.** {r.limits}", ""]
        lines += [
            "<details><summary>every number</summary>",
            "",
            "```json",
            json.dumps(r.numbers, indent=2, default=_plain),
            "```",
            "",
            "</details>",
        ]
    with atomic_output(ctx.out / "report.md") as f:
        f.write(("\n".join(lines) + "\n").encode())
    payload = [
        {
            "name": r.name,
            "verdict": r.verdict,
            "numbers": r.numbers,
            "figures": r.figures,
            "seconds": seconds[r.name],
        }
        for r in results
    ]
    with atomic_output(ctx.out / "report.json") as f:
        f.write(json.dumps(payload, indent=2, default=_plain).encode())


def _cell(text: str) -> str:
    """Text for a Markdown table cell (a bare ``|`` would end the cell)."""
    return text.replace("|", "\\|")


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays as JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = ["EXERCISES", "Context", "Result", "check_names", "run_all", "summary", "write_report"]
