"""Backend selection: every level against every other, provenance, config files, scoping."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import convkit as ck
from convkit import plugins
from convkit.selection import ConfigError

LEVELS = ["argument", "context", "set_backend", "env", "file", "default"]


class Levels:
    """Sets one selection level at a time and says what its provenance string is."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stack: contextlib.ExitStack
    ):
        self.monkeypatch, self.tmp_path, self.stack = monkeypatch, tmp_path, stack
        self.argument: str | None = None

    def set(self, level: str, name: str) -> str:
        if level == "argument":
            self.argument = name
            return "argument"
        if level == "context":
            self.stack.enter_context(ck.use_backend(name))
            return "use_backend() context"
        if level == "set_backend":
            ck.set_backend(name)
            return "set_backend()"
        if level == "env":
            self.monkeypatch.setenv("CONVKIT_BACKEND", name)
            return "env var CONVKIT_BACKEND"
        if level == "file":
            path = self.tmp_path / "pyproject.toml"
            path.write_text(f'[project]\nname = "x"\n\n[tool.convkit]\nbackend = "{name}"\n')
            self.monkeypatch.chdir(self.tmp_path)
            return f"{path.resolve()}: [tool.convkit] backend"
        assert level == "default"
        return "default"


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_alone(level: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        levels = Levels(monkeypatch, tmp_path, stack)
        source = levels.set(level, "scipy")
        got = ck.get_backend(levels.argument)
        assert (got.name, got.source) == ("auto" if level == "default" else "scipy", source)


@pytest.mark.parametrize(
    ("high", "low"),
    [
        (h, lo)
        for i, h in enumerate(LEVELS)
        for lo in LEVELS[i + 1 :]
        if h != "default" and lo != "default"
    ],
)
@pytest.mark.parametrize("names", [("scipy", "numpy"), ("numpy", "scipy")])
def test_more_specific_level_wins(
    high: str, low: str, names: tuple[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with contextlib.ExitStack() as stack:
        levels = Levels(monkeypatch, tmp_path, stack)
        levels.set(low, names[1])
        source = levels.set(high, names[0])
        got = ck.get_backend(levels.argument)
        assert (got.name, got.source) == (names[0], source)


@pytest.fixture
def ran_on(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records which backend computed each call (the real backends still compute)."""
    calls: list[str] = []
    registry = plugins.host().registry
    for name in registry.names():
        backend = registry.get(name)
        assert backend is not None
        original = backend.conv

        def spy(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(backend, "conv", spy)
    return calls


def test_the_selected_backend_computes(ran_on: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    x, w = np.ones((1, 1, 5)), np.ones((1, 1, 2))
    ck.conv(x, w)
    with ck.use_backend("scipy"):
        ck.conv(x, w)
    monkeypatch.setenv("CONVKIT_BACKEND", "scipy")  # changed after import: read per call
    ck.conv(x, w)
    ck.conv(x, w, backend="numpy")
    assert ran_on == ["numpy", "scipy", "scipy", "numpy"]


def test_auto_follows_the_input_type(ran_on: list[str]) -> None:
    torch = pytest.importorskip("torch", reason="needs tensors")
    ck.conv(np.ones((1, 1, 5)), np.ones((1, 1, 2)))
    x, w = torch.ones(1, 1, 5), torch.ones(1, 1, 2)
    y = ck.conv(x, w)
    assert isinstance(y, torch.Tensor)  # whoever computed it, as explain says
    assert ran_on == ["numpy", ck.explain(x, w).backend]
    with torch.enable_grad():  # a tensor that needs autograd stays with torch
        ck.conv(x, w.requires_grad_())
    assert ran_on[-1] == "torch"


def test_name_with_device_and_options() -> None:
    sel = ck.get_backend("torch:cuda:1")
    assert (sel.name, dict(sel.options)) == ("torch", {"device": "cuda:1"})
    with ck.use_backend("torch", device="cpu") as active:
        assert ck.get_backend() == active
        assert dict(active.options) == {"device": "cpu"}


def test_env_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVKIT_BACKEND", "torch")
    monkeypatch.setenv("CONVKIT_DEVICE", "cpu")
    sel = ck.get_backend()
    assert (sel.name, dict(sel.options), sel.source) == (
        "torch",
        {"device": "cpu"},
        "env vars CONVKIT_BACKEND, CONVKIT_DEVICE",
    )


def test_use_backend_nests_and_restores() -> None:
    with ck.use_backend("scipy"):
        with ck.use_backend("numpy"):
            assert ck.get_backend().name == "numpy"
        assert ck.get_backend().name == "scipy"
    assert ck.get_backend().name == "auto"


def test_use_backend_does_not_leak_into_other_threads() -> None:
    seen: dict[str, str] = {}
    inside = threading.Event()
    release = threading.Event()

    def selecting() -> None:
        with ck.use_backend("scipy"):
            seen["selecting"] = ck.get_backend().name
            inside.set()
            release.wait(5)

    def watching() -> None:
        inside.wait(5)
        seen["watching"] = ck.get_backend().name
        release.set()

    threads = [threading.Thread(target=selecting), threading.Thread(target=watching)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"selecting": "scipy", "watching": "auto"}


def test_use_backend_does_not_leak_between_asyncio_tasks() -> None:
    async def task(name: str | None, gate: asyncio.Event, other: asyncio.Event) -> str:
        if name is None:
            await gate.wait()  # runs while the other task is inside its context
            result = ck.get_backend().name
            other.set()
            return result
        with ck.use_backend(name):
            gate.set()
            await other.wait()
            return ck.get_backend().name

    async def main() -> list[str]:
        gate, other = asyncio.Event(), asyncio.Event()
        return list(await asyncio.gather(task("scipy", gate, other), task(None, gate, other)))

    assert asyncio.run(main()) == ["scipy", "auto"]


# -- config files --------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path.resolve()


def test_nearest_pyproject_upward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    top = _write(tmp_path / "pyproject.toml", '[tool.convkit]\nbackend = "scipy"\n')
    _write(tmp_path / "a" / "pyproject.toml", '[project]\nname = "no-convkit-table"\n')
    (tmp_path / "a" / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a" / "b")
    sel = ck.get_backend()
    assert (sel.name, sel.source) == ("scipy", f"{top}: [tool.convkit] backend")


def test_convkit_toml_beats_pyproject_in_the_same_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "pyproject.toml", '[tool.convkit]\nbackend = "numpy"\n')
    path = _write(tmp_path / "convkit.toml", 'backend = "scipy"\n')
    monkeypatch.chdir(tmp_path)
    sel = ck.get_backend()
    assert (sel.name, sel.source) == ("scipy", f"{path}: backend")


def test_convkit_config_env_var_wins_over_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "convkit.toml", 'backend = "numpy"\n')
    named = _write(tmp_path / "elsewhere" / "settings.toml", 'backend = "scipy"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVKIT_CONFIG", str(named))
    assert ck.get_backend().source == f"{named}: backend"


def test_per_backend_option_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(
        tmp_path / "pyproject.toml",
        '[tool.convkit]\nbackend = "torch"\n\n[tool.convkit.torch]\ndevice = "cpu"\n',
    )
    monkeypatch.chdir(tmp_path)
    assert dict(ck.get_backend().options) == {"device": "cpu"}
    # an option given with a more specific level wins over the table
    assert dict(ck.get_backend("torch:cuda").options) == {"device": "cuda"}


def test_config_file_edited_after_first_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "convkit.toml"
    path.write_text('backend = "numpy"\n')
    monkeypatch.chdir(tmp_path)
    assert ck.get_backend().name == "numpy"
    path.write_text('backend = "scipy"   # edited\n')
    assert ck.get_backend().name == "scipy"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("backend = \n", r"convkit.toml: not valid TOML"),
        ("backend = 3\n", r"convkit.toml: backend must be a non-empty string; got 3"),
        ('device = ""\n', r"convkit.toml: device must be a non-empty string"),
        ("chunks = 4\n", r"convkit.toml: chunks = 4 is not a setting"),
        ("threads = 0\n", r"convkit.toml: threads must be a positive integer; got 0"),
    ],
)
def test_malformed_config_names_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, match: str
) -> None:
    _write(tmp_path / "convkit.toml", text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=match):
        ck.conv(np.ones((1, 1, 3)), np.ones((1, 1, 2)))


def test_malformed_pyproject_table_names_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "pyproject.toml", "[tool.convkit]\nbackend = 1\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ConfigError, match=r"pyproject.toml: \[tool.convkit\] backend must be a non-empty string"
    ):
        ck.get_backend()


def test_convkit_config_naming_a_missing_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CONVKIT_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=r"env var CONVKIT_CONFIG names .*nope.toml.*not a file"):
        ck.get_backend()


@pytest.mark.parametrize(
    "setter", [lambda: ck.set_backend(""), lambda: ck.use_backend(3).__enter__()]
)
def test_selection_must_be_a_name(setter: Callable[[], object]) -> None:
    with pytest.raises(TypeError, match="must be a backend name"):
        setter()


def test_per_backend_table_applies_under_auto_and_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "pyproject.toml", "[tool.convkit.numpy]\nthreads = 4\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ValueError,
        match=rf"does not take option\(s\) threads \(from {path}: \[tool.convkit.numpy\]\)",
    ):
        ck.conv(np.ones((1, 1, 4)), np.ones((1, 1, 2)))  # auto picks numpy; its table applies
    torch = pytest.importorskip("torch", reason="a torch table needs torch tensors")
    path.write_text('[tool.convkit.torch]\ndevice = "tpu"\n')
    with pytest.raises(
        ValueError,
        match=rf"device='tpu'.*\(from {path}: \[tool.convkit.torch\]\)",
    ):
        ck.conv(torch.ones(1, 1, 4), torch.ones(1, 1, 2))
