"""docs/adapters.md documents every public name of the adapters, exactly as the code
defines it, and every example in it runs and prints what it says it prints."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "adapters.md"
MODULES: dict[str, ModuleType] = {
    name: importlib.import_module(f"convkit.adapters.{name}")
    for name in ("audio", "image", "kernels", "text", "arrays")
}
# The plugin hook implementation: pluggy calls it, docs/plugins.md documents the hook,
# and docs/adapters.md names it in a sentence rather than under a heading of its own.
HOOK_IMPLEMENTATIONS = {"kernels.convkit_add_kernels"}
HEADING = re.compile(r"^#{2,6} `(?P<name>(?:" + "|".join(MODULES) + r")\.[^`]+)`$", re.M)
BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```$", re.M | re.S)
PRINTS = "# prints: "


def _public_names(module: ModuleType) -> list[str]:
    """The names ``module`` defines at its top level (functions, classes, constants),
    read from its source so that imported names do not count, less private ones."""
    tree = ast.parse(inspect.getsource(module))
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [n for n in names if not n.startswith("_")]


def _signature(obj: Any, drop_first: bool = False) -> str:
    """``inspect.signature(obj)`` as rendered without annotations (``self`` dropped)."""
    sig = inspect.signature(obj)
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    if drop_first:
        params = params[1:]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


def _public_methods(cls: type) -> dict[str, tuple[object, bool]]:
    """The public methods ``cls`` itself defines: name to (the attribute, whether its
    signature starts with ``self``)."""
    found = {}
    for name, raw in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(raw, classmethod | staticmethod):
            found[name] = (getattr(cls, name), False)
        elif inspect.isfunction(raw):
            found[name] = (raw, True)
    return found


def _callables() -> dict[str, object]:
    """Every public function, class and method of the five modules, by dotted name."""
    found: dict[str, object] = {}
    for mod, module in MODULES.items():
        for name in _public_names(module):
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                found[f"{mod}.{name}"] = obj
            if inspect.isclass(obj):
                for meth, (attr, _) in _public_methods(obj).items():
                    found[f"{mod}.{name}.{meth}"] = attr
    return found


def _expected_headings() -> list[str]:
    """The heading each public name must have: ``module.name(signature)`` for
    functions, classes (their constructor) and methods, ``module.name`` for constants."""
    headings = []
    for mod, module in MODULES.items():
        for name in _public_names(module):
            if f"{mod}.{name}" in HOOK_IMPLEMENTATIONS:
                continue
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                headings.append(f"{mod}.{name}")
                continue
            headings.append(f"{mod}.{name}{_signature(obj)}")
            if inspect.isclass(obj):
                for meth, (attr, bound_self) in _public_methods(obj).items():
                    headings.append(f"{mod}.{name}.{meth}{_signature(attr, bound_self)}")
    return headings


def _blocks() -> list[tuple[str, int, str]]:
    """``(heading above it, line number, code)`` for every python block of the doc."""
    text = DOC.read_text()
    blocks = []
    for match in BLOCK.finditer(text):
        above = re.findall(r"^#+ `?([^`(\n]+)", text[: match.start()], re.M)
        line = text.count("\n", 0, match.start("code")) + 1
        blocks.append((above[-1] if above else "intro", line, match.group("code")))
    return blocks


def test_the_five_modules_have_public_names() -> None:
    # guards the tests below against finding nothing to check
    assert {"load", "save", "resample", "fir_filter", "run_conv1d"} <= set(
        _public_names(MODULES["audio"])
    )
    assert "FORMATS" in _public_names(MODULES["arrays"])
    assert "Vocabulary.build" in {n.split(".", 1)[1] for n in _callables()}


def test_every_public_name_has_a_heading_with_its_current_signature() -> None:
    documented = HEADING.findall(DOC.read_text())
    expected = _expected_headings()
    missing = [h for h in expected if h not in documented]
    stale = [h for h in documented if h not in expected]
    repeated = sorted({h for h in documented if documented.count(h) > 1})
    assert not missing, f"docs/adapters.md lacks these headings (new or changed): {missing}"
    assert not stale, f"docs/adapters.md documents what the code no longer has: {stale}"
    assert not repeated, f"docs/adapters.md documents these more than once: {repeated}"


def test_the_kernel_hook_is_named_and_linked() -> None:
    text = DOC.read_text()
    assert "`convkit_add_kernels` hook that plugins use" in text
    assert "](plugins.md" in text


def test_every_public_callable_has_a_doctest() -> None:
    lacking = [name for name, obj in _callables().items() if ">>>" not in (obj.__doc__ or "")]
    assert not lacking, f"these adapters have no doctest example in their docstring: {lacking}"


def test_the_doc_has_an_example_under_every_heading() -> None:
    text = DOC.read_text()
    sections = re.split(r"^#{3,6} ", text, flags=re.M)[1:]
    without = [s.splitlines()[0] for s in sections if "```python" not in s]
    assert not without, f"these entries of docs/adapters.md have no example: {without}"


@pytest.mark.parametrize(
    ("heading", "line", "code"),
    _blocks(),
    ids=[f"L{line}-{heading.strip()}" for heading, line, _ in _blocks()],
)
def test_example_runs_and_prints_what_it_says(
    heading: str,
    line: int,
    code: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each ``python`` block runs on its own, in a fresh namespace, with the working
    directory and ``tempfile``'s directory in ``tmp_path`` (so whatever an example
    writes is removed); its ``# prints:`` comments are its whole output, in order."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    exec(compile(code, f"{DOC}:{line}", "exec"), {"__name__": "__docs_example__"})
    printed = capsys.readouterr().out.splitlines()
    promised = [s.strip()[len(PRINTS) :] for s in code.splitlines() if s.strip().startswith(PRINTS)]
    assert printed == promised, f"the example at docs/adapters.md:{line} ({heading})"
