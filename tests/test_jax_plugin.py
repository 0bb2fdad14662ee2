"""The example third-party plugin, examples/convkit-jax, installed with pip as a user would.

It is installed into a temporary directory (not this environment), and every check runs
in a fresh interpreter that has that directory on its path.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import clean_environ, pip_install, run_python

pytest.importorskip("jax", reason="the example plugin is a JAX backend; pip install jax")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "convkit-jax"


@pytest.fixture(scope="session")
def jax_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("jax-plugin") / "site"
    pip_install("--target", str(site), str(EXAMPLE))
    return site


def run(
    code: str, site: Path, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return run_python(code, site, cwd, **env)


def test_convkit_backends_lists_it_with_its_distribution(jax_site: Path) -> None:
    result = run("import sys; from convkit.cli import main; sys.exit(main(['backends']))", jax_site)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("jax "))
    assert row.split()[:4] == ["jax", "yes", "convkit-jax", "0.1.0"]


SPY = """
import numpy as np, convkit as ck
from convkit import plugins
jax_backend = plugins.host().registry.get("jax")
calls = []
original = jax_backend.conv
jax_backend.conv = lambda *a, **k: (calls.append(1), original(*a, **k))[1]
x, w = np.ones((1, 1, 6, 6), np.float32), np.ones((1, 1, 3, 3), np.float32)
"""


@pytest.mark.parametrize("level", ["argument", "context", "set_backend", "env", "file"])
def test_every_selection_level_reaches_it(jax_site: Path, tmp_path: Path, level: str) -> None:
    call = {
        "argument": "y = ck.conv(x, w, backend='jax')",
        "context": "with ck.use_backend('jax'):\n    y = ck.conv(x, w)",
        "set_backend": "ck.set_backend('jax')\ny = ck.conv(x, w)",
        "env": "y = ck.conv(x, w)",
        "file": "y = ck.conv(x, w)",
    }[level]
    env = {"CONVKIT_BACKEND": "jax"} if level == "env" else {}
    if level == "file":
        (tmp_path / "pyproject.toml").write_text('[tool.convkit]\nbackend = "jax"\n')
    code = (
        SPY + call + "\nprint(type(y).__name__, y.tolist(), len(calls), ck.get_backend().source)\n"
    )
    result = run(code, jax_site, cwd=tmp_path, **env)
    assert result.returncode == 0, result.stderr
    kind, *_ = result.stdout.split()
    assert kind == "ndarray" and "[[[[9.0, 9.0, 9.0, 9.0]" in result.stdout
    assert " 1 " in result.stdout, "the jax backend should have computed exactly once"


def test_jax_arrays_in_jax_arrays_out(jax_site: Path) -> None:
    result = run(
        """
        import jax, jax.numpy as jnp, numpy as np, convkit as ck
        x = jnp.ones((2, 3, 8, 8)); w = jnp.ones((4, 3, 3, 3))
        y = ck.conv(x, w, padding="same", padding_mode="reflect")       # auto: jax owns these
        z = ck.convolve(jnp.ones(50), jnp.ones(7), "same")
        gx, gw, gb = ck.conv_vjp(x, w, jnp.ones_like(y), padding="same", padding_mode="reflect")
        print(all(isinstance(a, jax.Array) for a in (y, z, gx, gw, gb)), y.shape, float(y.max()))
        """,
        jax_site,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "True" and "27.0" in result.stdout


def test_its_own_tests_run_convkit_testing(jax_site: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            str(EXAMPLE / "tests"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_environ(PYTHONPATH=str(jax_site)),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout.splitlines()[-1]


def test_editable_install_works_too(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    pip_install("--prefix", str(prefix), "-e", str(EXAMPLE))
    site_dirs = list(prefix.glob("lib/python*/site-packages"))
    assert site_dirs, "pip should have made a site-packages under the prefix"
    code = (
        "import site, sys\n"
        f"site.addsitedir(r'{site_dirs[0]}')  # processes the editable install's .pth\n"
        "import convkit as ck, convkit_jax\n"
        "info = {b.name: b for b in ck.list_backends()}\n"
        "print(info['jax'].distribution, convkit_jax.__file__)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    distribution, location = result.stdout.split()
    assert distribution == "convkit-jax"
    assert Path(location).resolve().is_relative_to(EXAMPLE)  # the source tree, not a copy
