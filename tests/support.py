"""Helpers for tests that install real packages with pip and run fresh interpreters."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any


def clean_environ(**env: str) -> dict[str, str]:
    """This environment without convkit's and JAX's settings, plus ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CONVKIT_", "JAX_"))}
    # built-in cost models, whatever this user calibrated
    environ["CONVKIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="convkit-cache-")
    environ.update(env)
    return environ


def pip_install(*args: str) -> None:
    """``pip install --no-deps --no-build-isolation ARGS`` into the places ``args`` name."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            *args,
        ],
        check=True,
    )


def run_python(
    code: str, site: Path | None = None, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that sees ``site`` (a ``pip --target`` dir)."""
    environ = clean_environ(**env)
    if site is not None:
        environ["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
    )


def write_plugin(src: Path, dist: str, module: str, code: str) -> Path:
    """A plugin project in ``src`` (created): distribution ``dist``, one module
    ``module`` with ``code``, registered in the ``convkit`` entry-point group as a
    third-party plugin is; returns ``src``, ready for ``pip install``."""
    (src / module).mkdir(parents=True)
    (src / module / "__init__.py").write_text(textwrap.dedent(code))
    (src / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=69"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "1.2.3"

        [project.entry-points.convkit]
        {module} = "{module}"

        [tool.setuptools]
        packages = ["{module}"]
        """)
    )
    return src


def only_backends(monkeypatch: Any, **dtypes: tuple[str, ...]) -> None:
    """Make ``convkit.list_backends`` report just the named backends, each declaring only
    the given dtypes (the backends themselves are unchanged)."""
    import dataclasses

    import convkit as ck

    real = {info.name: info for info in ck.list_backends()}
    fake = [
        dataclasses.replace(
            real[name], capabilities=dataclasses.replace(real[name].capabilities, dtypes=dts)
        )
        for name, dts in dtypes.items()
    ]
    monkeypatch.setattr(ck, "list_backends", lambda: fake)


GRADIENT_CASES: list[tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
    ((2, 3, 11), (4, 3, 3), dict(stride=2, padding=2)),
    ((2, 4, 13), (4, 2, 3), dict(groups=2, dilation=3, padding=(4,), padding_mode="reflect")),
    (
        (1, 2, 9, 8),
        (3, 2, 3, 2),
        dict(stride=(2, 3), padding=((2, 1), (1, 3)), dilation=(2, 1), padding_mode="symmetric"),
    ),
    ((2, 4, 7, 6), (8, 1, 3, 3), dict(groups=4, padding=1, padding_mode="replicate")),
    ((2, 2, 6, 7), (3, 2, 3, 3), dict(padding="same", stride=2, padding_mode="circular")),
    (
        (1, 2, 5, 6, 4),
        (2, 2, 2, 3, 2),
        dict(stride=(1, 2, 1), padding=(1, 0, 2), dilation=(2, 1, 1), padding_mode="reflect"),
    ),
    ((2, 3, 5, 5), (2, 3, 2, 2), dict(stride=3)),  # the forward pass never reaches the last rows
]
"""Forward calls whose gradients the tests compare with torch autograd: strides,
dilations, groups and every padding mode, in 1 to 3 spatial dimensions."""
