"""The exercises command, its report, and the committed run in docs/exercises-run/
(each exercise's measurements are checked in tests/test_ex_<name>.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("skimage", reason="the exercises use scikit-image's photographs")
pytest.importorskip("matplotlib", reason="the exercises draw figures")
pytest.importorskip("soundfile", reason="the audio exercise writes real WAV files")


def test_the_command_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "convkit",
            "exercises",
            "--quick",
            "--only",
            "delta0",
            "waldo",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "delta0" in result.stdout and "waldo" in result.stdout
    report = (out / "report.md").read_text()
    assert "## Where's Waldo" in report and "![waldo](figures/waldo.png)" in report
    assert (out / "figures" / "waldo.png").is_file()
    numbers = json.loads((out / "report.json").read_text())
    assert [e["name"] for e in numbers] == ["delta0", "waldo"]


def test_unknown_exercise_is_named(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "convkit", "exercises", "--only", "delta1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "unknown exercise(s) delta1; valid: delta0, invariance" in result.stderr


def test_the_main_job_needs_no_torch(tmp_path: Path) -> None:
    """The README's first command installs only the `exercises` extra: no torch, no
    array-api-compat. Block both and run exercises that train and differentiate."""
    code = (
        "import sys\n"
        "class NotInstalled:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchaudio', 'array_api_compat'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NotInstalled())\n"
        "from convkit.cli import main\n"
        f"sys.exit(main(['exercises', '--quick', '--only', 'delta0', 'invariance', 'text', "
        f"'--out', r'{tmp_path}']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "invariance" in result.stdout and (tmp_path / "report.md").is_file()


RUN = Path(__file__).resolve().parents[1] / "docs" / "exercises-run"


def test_the_committed_run_has_the_structure_of_a_fresh_one(tmp_path: Path) -> None:
    """docs/exercises-run/ is regenerated with the code: a fresh --quick run has the same
    exercises, the same numbers' keys and the same figures."""
    from convkit.exercises import run_all

    with open(os.devnull, "w") as log:
        run_all(quick=True, out=tmp_path, progress=False, log=log)
    fresh = json.loads((tmp_path / "report.json").read_text())
    committed = json.loads((RUN / "report.json").read_text())
    assert [e["name"] for e in committed] == [e["name"] for e in fresh]
    for old, new in zip(committed, fresh, strict=True):
        assert sorted(old["numbers"]) == sorted(new["numbers"]), old["name"]
        assert _shape(old["numbers"], 0) == _shape(new["numbers"], 0), old["name"]
        assert old["figures"] == new["figures"], old["name"]
        for figure in old["figures"]:
            assert (RUN / figure).is_file(), figure
    report = (RUN / "report.md").read_text()
    assert "Mode: full." in report and "Backend: numpy" in report
    sections = report.split("\n## ")[1:]
    assert len(sections) == len(committed)
    for section in sections:  # every answer has its question, evidence and limits
        for part in ("**Question.**", "**Answer.**", "**Evidence.**", "**Limits.**"):
            assert part in section, (section.splitlines()[0], part)


def _shape(value: object, depth: int) -> object:
    """The keys of a JSON value down to ``depth`` levels of nesting and the kinds of the
    values beneath them (deeper keys are data — distances, seeds — that a quick run
    samples more sparsely than a full one)."""
    if isinstance(value, dict) and depth >= 0:
        return {k: _shape(v, depth - 1) for k, v in value.items()}
    return type(value).__name__ if isinstance(value, list | str | bool | dict) else "number"
