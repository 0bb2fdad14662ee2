"""The exercises with a third-party backend installed that has no float64.

The example plugin examples/convkit-jax, installed with pip into a temporary directory
(not this environment), declares float32 and complex64 only (JAX's 64-bit mode is off:
``clean_environ`` drops every ``JAX_*`` variable). ``convkit exercises`` must not crash
on it: a named ``--backend`` runs only that backend, and a backend without float64 or
complex128 (named or under ``auto``) runs the case in float32 or complex64, and the report
says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import pip_install, run_python

pytest.importorskip("jax", reason="the example plugin is a JAX backend; pip install jax")
pytest.importorskip("skimage", reason="the exercises use scikit-image's photographs")
pytest.importorskip("matplotlib", reason="the exercises draw figures")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "convkit-jax"


@pytest.fixture(scope="module")
def jax_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("jax-plugin") / "site"
    pip_install("--target", str(site), str(EXAMPLE))
    return site


def exercises(site: Path, out: Path, backend: str) -> tuple[int, str, str]:
    code = (
        "import sys; from convkit.cli import main\n"
        "sys.exit(main(['exercises', '--quick', '--only', 'delta0', 'commutativity', "
        f"'--backend', '{backend}', '--out', r'{out}']))\n"
    )
    result = run_python(code, site)
    return result.returncode, result.stdout, result.stderr


def test_named_backend_runs_only_that_one(jax_site: Path, tmp_path: Path) -> None:
    rc, _, stderr = exercises(jax_site, tmp_path, "scipy")
    assert rc == 0, stderr[-3000:]
    numbers = {e["name"]: e["numbers"] for e in json.loads((tmp_path / "report.json").read_text())}
    assert list(numbers["delta0"]["per_backend"]) == ["scipy"]
    assert list(numbers["commutativity"]["per_backend"]) == ["scipy"]


def test_auto_runs_jax_in_float32_beside_the_others(jax_site: Path, tmp_path: Path) -> None:
    rc, _, stderr = exercises(jax_site, tmp_path, "auto")
    assert rc == 0, stderr[-3000:]
    numbers = {e["name"]: e["numbers"] for e in json.loads((tmp_path / "report.json").read_text())}
    d0, comm = numbers["delta0"], numbers["commutativity"]
    assert d0["per_backend"]["jax"]["dtype"] == "float32"
    assert d0["per_backend"]["numpy"]["dtype"] == "float64" and d0["dtype"] == "float64"
    assert d0["lower_precision_backends"] == {"jax": "float32"}
    assert d0["per_backend"]["numpy"]["stack_vs_mlp"] < 1e-13  # float64 stays float64
    assert comm["per_backend"]["jax"]["dtype"] == "complex64"
    assert comm["per_backend"]["numpy"]["dtype"] == "complex128"
    assert "jax" not in d0["skipped_backends"] and "jax" not in comm["skipped_backends"]
    report = (tmp_path / "report.md").read_text()
    assert "| jax | float32 |" in report and "| jax | complex64 |" in report


def test_named_jax_runs_in_float32(jax_site: Path, tmp_path: Path) -> None:
    """The plugin has no float64 and no complex128: ``--backend jax`` runs both exercises
    in float32/complex64 and says so, where it used to abort."""
    rc, stdout, stderr = exercises(jax_site, tmp_path, "jax")
    assert rc == 0, stderr[-3000:]
    assert "float32" in stdout and "complex64" in stdout  # the terminal's verdicts say so
    numbers = {e["name"]: e["numbers"] for e in json.loads((tmp_path / "report.json").read_text())}
    d0, comm = numbers["delta0"], numbers["commutativity"]
    assert list(d0["per_backend"]) == ["jax"] and d0["dtype"] == "float32"
    row = d0["per_backend"]["jax"]
    # float32 round-off against the float64 MLP: not float64's (< 1e-13), not more than 1e-5
    assert 1e-10 < row["stack_vs_mlp"] < 1e-5 and row["jacobian_block_vs_mlp"] < 1e-5
    assert row["other_pixels_change_direct"] == 0.0 and row["jacobian_off_block_max"] == 0.0
    assert list(comm["per_backend"]) == ["jax"] and comm["dtype"] == "complex64"
    assert comm["per_backend"]["jax"]["dims"] == [1, 2, 3]
    for key in ("conv_swap", "conv_vs_loop", "corr_vs_loop", "corr_reversed_conj"):
        assert 1e-10 < comm["worst"][key] < 1e-5, key
    assert comm["worst"]["corr_swap_min"] > 0.05
    report = (tmp_path / "report.md").read_text()
    assert "| jax | float32 |" in report and "| jax | complex64 |" in report
    assert "jax declares no float64" in report and "jax declares no complex128" in report
