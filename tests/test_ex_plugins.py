"""The exercises with a third-party backend installed that has no float64.

The example plugin examples/convkit-jax, installed with pip into a temporary directory
(not this environment), declares float32 and complex64 only (JAX's 64-bit mode is off:
``clean_environ`` drops every ``JAX_*`` variable). ``convkit exercises`` must not crash
on it: a named ``--backend`` runs only that backend, and ``auto`` skips jax with the
reason in the report.
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


def test_auto_skips_jax_with_its_reason(jax_site: Path, tmp_path: Path) -> None:
    rc, _, stderr = exercises(jax_site, tmp_path, "auto")
    assert rc == 0, stderr[-3000:]
    numbers = {e["name"]: e["numbers"] for e in json.loads((tmp_path / "report.json").read_text())}
    assert "jax" not in numbers["delta0"]["per_backend"]
    assert "no float64" in numbers["delta0"]["skipped_backends"]["jax"]
    assert "numpy" in numbers["delta0"]["per_backend"]
    assert "jax" not in numbers["commutativity"]["per_backend"]
    assert set(numbers["commutativity"]["skipped_backends"]["jax"]) == {"1", "2", "3"}
    assert "no complex128" in numbers["commutativity"]["skipped_backends"]["jax"]["1"]
    report = (tmp_path / "report.md").read_text()
    assert "`jax`: no float64 (it declares float32, complex64)" in report
    assert "`jax` (1, 2, 3-d: no complex128 (it declares float32, complex64))" in report
    assert "skipped: jax" in report
