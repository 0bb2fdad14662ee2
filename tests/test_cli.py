"""The ``convkit`` command, run as the installed console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def convkit(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("convkit", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "convkit"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CONVKIT_")}
    environ.update(env)
    return subprocess.run([*command, *args], capture_output=True, text=True, env=environ, cwd=cwd)


def test_console_script_is_installed() -> None:
    assert shutil.which("convkit", path=str(Path(sys.executable).parent)), (
        "pyproject.toml's [project.scripts] should install a 'convkit' command"
    )


def test_backends_table_and_active_choice(tmp_path: Path) -> None:
    result = convkit("backends", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["backend", "available", "from", "dims", "dtypes", "devices"]
    numpy_row = next(line for line in lines if line.startswith("numpy "))
    assert numpy_row.split()[:4] == ["numpy", "yes", "convkit", "0.1.0"]
    assert "active: auto (from default)" in result.stdout
    torch_row = next((line for line in lines if line.startswith("torch ")), None)
    if torch_row is not None and " yes " in torch_row:
        import torch

        expected = "cpu,cuda" if torch.cuda.is_available() else "cpu,cuda(absent)"
        assert torch_row.split()[-1] == expected


def test_backends_shows_where_the_choice_came_from(tmp_path: Path) -> None:
    (tmp_path / "convkit.toml").write_text('backend = "scipy"\n')
    result = convkit("backends", cwd=tmp_path)
    assert f"active: scipy (from {tmp_path.resolve()}/convkit.toml: backend)" in result.stdout
    result = convkit("backends", cwd=tmp_path, CONVKIT_BACKEND="numpy")
    assert "active: numpy (from env var CONVKIT_BACKEND)" in result.stdout


def test_backends_flags_an_unusable_choice(tmp_path: Path) -> None:
    result = convkit("backends", cwd=tmp_path, CONVKIT_BACKEND="tourch")
    assert result.returncode == 1
    assert "unknown backend 'tourch' (from env var CONVKIT_BACKEND)" in result.stdout
    assert "did you mean 'torch'?" in result.stdout


def test_bad_config_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "convkit.toml").write_text("backend = [\n")
    result = convkit("backends", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.startswith("convkit: error: ")
        and "convkit.toml: not valid TOML" in result.stderr
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [[], ["nonsense"]])
def test_usage_errors(args: list[str]) -> None:
    result = convkit(*args)
    assert result.returncode == 2
    assert "usage: convkit" in result.stderr
