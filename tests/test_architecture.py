"""The layout stays as docs/architecture.md draws it: no import cycles inside
``convkit/``, no module past ~400 lines without a reason at its top, and a NumPy-only
program loads no other array library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from support import run_python

import convkit

ROOT = Path(convkit.__file__).parent
LONG_MODULE_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The convkit modules ``path`` imports, from every import statement anywhere in it
    (inside functions too): ``import a.b`` names the module ``a.b``; ``from a import b``
    names ``a.b`` when that is a module, else ``a``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def known_prefix(target: str) -> str:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(known_prefix(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else known_prefix(base))
    return found - {"", name}


def import_graph() -> dict[str, set[str]]:
    """Each convkit module and the convkit modules it imports."""
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_inside_convkit() -> None:
    cycles = _cycles(import_graph())
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_long_modules_say_why_at_their_top() -> None:
    long = []
    for name, path in _modules().items():
        text = path.read_text()
        if text.count("\n") > LONG_MODULE_LINES:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "Why this module is long" not in doc:
                long.append(f"{name} ({text.count(chr(10))} lines)")
    assert long == [], f"modules over {LONG_MODULE_LINES} lines without a reason: {long}"


@pytest.mark.parametrize("backend", [None, "numpy"])
def test_numpy_only_calls_load_no_other_array_library(backend: str | None) -> None:
    result = run_python(f"""
        import sys
        import numpy as np
        import convkit as ck

        backend = {backend!r}
        rng = np.random.default_rng(0)
        x, w = rng.standard_normal((2, 3, 16, 16)), rng.standard_normal((4, 3, 3, 3))
        y = ck.conv(x, w, padding=1, backend=backend)
        ck.conv(x, w, padding=1, method="fft", backend=backend)
        ck.conv_vjp(x, w, np.ones_like(y), padding=1, padding_mode="reflect", backend=backend)
        ck.conv_transpose(y, w, padding=1, backend=backend)  # the adjoint: w as it is
        ck.convolve(rng.standard_normal(2**16), rng.standard_normal(513), method="fft",
                    backend=backend)  # long enough for overlap-add
        ck.correlate(rng.standard_normal(300), rng.standard_normal(20), backend=backend)
        print(sorted(m for m in ("scipy", "torch", "jax", "dask") if m in sys.modules))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"
