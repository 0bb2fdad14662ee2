"""examples/config: a project that selects the scipy backend in its pyproject.toml, and
a README whose console blocks are what convkit prints there."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from support import clean_environ

from convkit import selection

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "config"
README = EXAMPLE / "README.md"
PLACEHOLDER = "/path/to/convkit"  # what the README writes for the checkout's directory
PROGRAMS = {"convkit": [sys.executable, "-m", "convkit"], "python": [sys.executable]}


def _environ(tmp_path: Path, **env: str) -> dict[str, str]:
    """This environment with no ``CONVKIT_*`` variable, plus ``env``. clean_environ also
    points ``CONVKIT_CACHE_DIR`` at an empty directory; here the user's calibration is
    kept out through ``XDG_CACHE_HOME`` instead, so that no ``CONVKIT_*`` is set."""
    environ = clean_environ()
    del environ["CONVKIT_CACHE_DIR"]
    environ["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    environ.update(env)
    return environ


def _run(command: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run a README command line (``[VAR=value ...] program args``) in examples/config,
    ``convkit`` and ``python`` being this interpreter's."""
    words = shlex.split(command)
    env = {}
    while re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    program = PROGRAMS[os.path.basename(words[0])]
    return subprocess.run(
        [*program, *words[1:]],
        capture_output=True,
        text=True,
        cwd=EXAMPLE,
        env=_environ(tmp_path, **env),
    )


def _normalise(text: str) -> str:
    """The parts of the output that legitimately differ between machines made equal:
    the checkout's directory (the provenance names the config file by its absolute
    path) becomes the README's placeholder, and torch's ``cuda(absent)`` becomes
    ``cuda``: the README was recorded where no CUDA device is present, and the devices
    column is the last, so the marker changes no other column's alignment."""
    return text.replace(str(REPO), PLACEHOLDER).replace("cuda(absent)", "cuda")


def _readme_commands() -> list[tuple[str, str]]:
    """``(command, the output the README shows for it)`` from its console blocks."""
    found: list[tuple[str, list[str]]] = []
    for block in re.findall(r"^```console\n(.*?)^```$", README.read_text(), re.M | re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append((line[2:], []))
            else:
                found[-1][1].append(line)
    return [(command, "\n".join(lines) + "\n") for command, lines in found]


def test_the_readme_shows_the_commands() -> None:
    commands = [command for command, _ in _readme_commands()]
    assert commands[0] == "../../.venv/bin/convkit backends"
    assert any(c.startswith("CONVKIT_BACKEND=numpy ") for c in commands)


@pytest.mark.parametrize(("command", "shown"), _readme_commands())
def test_the_readme_shows_what_the_command_prints(command: str, shown: str, tmp_path: Path) -> None:
    done = _run(command, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _normalise(done.stdout) == _normalise(shown), (
        f"examples/config/README.md shows another output for {command!r}; stderr:\n{done.stderr}"
    )


def test_the_selection_comes_from_the_projects_pyproject(tmp_path: Path) -> None:
    done = _run("convkit backends", tmp_path)
    assert done.returncode == 0, done.stderr
    config = EXAMPLE / "pyproject.toml"
    assert f"active: scipy (from {config}: [tool.convkit] backend)" in done.stdout.splitlines()


def test_convkit_backend_overrides_the_file(tmp_path: Path) -> None:
    done = _run("CONVKIT_BACKEND=numpy convkit backends", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "active: numpy (from env var CONVKIT_BACKEND)" in done.stdout.splitlines()


def test_the_example_is_a_minimal_valid_project() -> None:
    data = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    assert data["project"]["name"] == "convkit-config-example"
    assert data["project"]["version"]
    config = selection.load_config(EXAMPLE)
    assert config is not None
    assert (config.path, config.backend) == (EXAMPLE / "pyproject.toml", "scipy")
    # options for a backend, if the example ever grows a table, must name a backend
    assert set(config.backend_options) <= {"numpy", "scipy", "torch", "dask"}
