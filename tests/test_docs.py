"""The docs say what the code does: the capability matrix and the hook reference."""

from __future__ import annotations

import inspect
from pathlib import Path

import convkit as ck
from convkit import hookspecs
from convkit.padding import PADDING_MODES

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _rows(text: str, header: str) -> dict[str, list[str]]:
    lines = text[text.index(header) :].splitlines()[1:]
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] not in ("backend", "") and not set(cells[0]) <= {"-"}:
            rows[cells[0]] = cells
    return rows


def test_capability_matrix_matches_the_registered_backends() -> None:
    text = (DOCS / "backends.md").read_text()
    rows = _rows(text, "| backend | spatial dims |")
    builtins = {b.name: b for b in ck.list_backends() if b.distribution == "convkit"}
    assert set(rows) == set(builtins)
    for name, info in builtins.items():
        caps = info.capabilities
        modes = (
            "all five"
            if set(caps.padding_modes) == set(PADDING_MODES)
            else ", ".join(caps.padding_modes)
        )
        expected = [
            name,
            caps.describe_ndim(),
            ", ".join(caps.dtypes),
            ", ".join(caps.devices),
            modes,
            "yes" if caps.groups else "no",
            "yes" if caps.dilation else "no",
        ]
        assert rows[name] == expected


def test_every_hook_is_documented_for_plugin_authors() -> None:
    text = (DOCS / "plugins.md").read_text()
    hooks = [n for n in dir(hookspecs) if n.startswith("convkit_")]
    assert hooks
    for hook in hooks:
        spec = getattr(hookspecs, hook)
        params = ", ".join(inspect.signature(spec).parameters)
        heading = f"### `{hook}({params})`"
        assert heading in text, f"docs/plugins.md lacks the heading {heading!r}"
        doc = spec.__doc__ or ""
        for name in inspect.signature(spec).parameters:
            assert f":param {name}:" in doc, f"hook spec {hook} does not document {name}"
