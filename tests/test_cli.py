"""The ``convkit`` command, run as the installed console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    assert lines[0].split() == [
        "backend",
        "available",
        "from",
        "dims",
        "dtypes",
        "devices",
        "precision",
    ]
    numpy_row = next(line for line in lines if line.startswith("numpy "))
    assert numpy_row.split()[:4] == ["numpy", "yes", "convkit", "0.1.0"]
    assert "active: auto (from default)" in result.stdout
    torch_row = next((line for line in lines if line.startswith("torch ")), None)
    if torch_row is not None and " yes " in torch_row:
        import torch

        expected = "cpu,cuda" if torch.cuda.is_available() else "cpu,cuda(absent)"
        assert torch_row.split()[-2:] == [expected, "highest,fast"]


def test_backends_shows_where_the_choice_came_from(tmp_path: Path) -> None:
    (tmp_path / "convkit.toml").write_text('backend = "scipy"\n')
    result = convkit("backends", cwd=tmp_path)
    assert f"active: scipy (from {tmp_path.resolve()}/convkit.toml: backend)" in result.stdout
    result = convkit("backends", cwd=tmp_path, CONVKIT_BACKEND="numpy")
    assert "active: numpy (from env var CONVKIT_BACKEND)" in result.stdout


def test_backends_flags_an_unusable_choice(tmp_path: Path) -> None:
    result = convkit("backends", cwd=tmp_path, CONVKIT_BACKEND="tourch")
    assert result.returncode == 2  # a configuration error
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


def test_version() -> None:
    import convkit as ck

    result = convkit("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"convkit {ck.__version__}\n"


@pytest.mark.parametrize("command", [[], ["filter"], ["explain"]])
def test_help_documents_the_exit_status(command: list[str]) -> None:
    result = convkit(*command, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "exit status: 0 success 1 runtime failure" in text
    assert "2 usage or configuration error: bad arguments or values, unknown or unavailable" in text


def test_backends_says_what_auto_does_now(tmp_path: Path) -> None:
    import convkit as ck

    result = convkit("backends", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "owns its input's array type" not in text
    hosts = [b.name for b in ck.list_backends() if b.available and b.capabilities.host_arrays]
    assert {"numpy", "scipy"} <= set(hosts)
    assert "auto: per call, the backend and method with the lowest estimated cost" in text
    assert (
        "Host arrays (NumPy arrays, CPU tensors that need no grad) may be computed by any "
        f"available backend that takes host arrays: {', '.join(hosts)}." in text
    )
    assert (
        "CUDA tensors, tensors that require grad, Dask arrays, other plugins' arrays and "
        "integer convolve stay with the backend that owns them." in text
    )


@pytest.mark.parametrize(
    ("padding", "expected"),
    [
        ("same", "same"),
        ("valid", "valid"),
        ("3", 3),
        ("1,2", (1, 2)),
        ("1:2,0:0", ((1, 2), (0, 0))),
        ("1,0:2", (1, (0, 2))),
    ],
)
def test_explain_takes_every_padding_conv_takes(padding: str, expected: object) -> None:
    import convkit as ck

    result = convkit(
        "explain", "--x", "1", "1", "32", "32", "--w", "1", "1", "3", "3",
        f"--padding={padding}", "--backend", "numpy",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    choice = ck.explain((1, 1, 32, 32), (1, 1, 3, 3), padding=expected, backend="numpy")
    assert result.stdout.splitlines()[1] == str(choice).splitlines()[0]
    assert f"padding={expected}" in result.stdout.splitlines()[0]


def test_explain_takes_strides_and_dilations_per_dimension() -> None:
    result = convkit(
        "explain", "--x", "1", "1", "32", "32", "--w", "1", "1", "3", "3",
        "--stride", "2,1", "--dilation", "1,2", "--backend", "numpy",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "stride=(2, 1), padding=0, dilation=(1, 2)" in result.stdout


@pytest.mark.parametrize(
    ("padding", "message"),
    [
        ("x", "argument --padding: --padding 'x': expected same, valid, an int (3)"),
        ("1:2:3", "argument --padding: --padding '1:2:3': expected same, valid"),
        ("1,2,3", "padding=(1, 2, 3) has 3 entries; expected an int, a tuple of 2 ints"),
        ("-1", "padding must be >= 0 on every side; got padding=-1"),
    ],
)
def test_explain_names_a_bad_padding(padding: str, message: str) -> None:
    result = convkit(
        "explain", "--x", "1", "1", "32", "32", "--w", "1", "1", "3", "3",
        f"--padding={padding}",
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def _png(path: Path) -> Path:
    pytest.importorskip("PIL", reason="the filter command writes images with Pillow")
    from convkit.adapters import image

    image.save(path, np.full((1, 8, 8), 0.5))
    return path


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("unknown backend", 2, "unknown backend 'nmupy'"),
        ("unavailable backend", 2, "backend 'torch' (selected by argument) is not available"),
        ("bad config", 2, "convkit.toml: not valid TOML"),
        ("bad padding mode", 2, "--padding-mode 'mirror' is not a padding mode; expected one"),
        ("bad kernel", 2, "unknown kernel 'gausian'"),
        ("unsupported input", 2, "INPUT in.bmp: unsupported file type '.bmp'; expected one of"),
        ("output of another kind", 2, "OUTPUT out.wav: the output of image input"),
        ("scale for audio", 2, "--scale minmax: scaling applies to image outputs"),
        ("unknown exercise", 2, "unknown exercise(s) delta1; valid: delta0"),
        ("unknown workload", 2, "--only nope: unknown workload(s); expected some of"),
        ("calibrate unknown backend", 2, "unknown backend 'nope'"),
        ("missing input", 1, "INPUT missing.png: no such file"),
        ("unreadable input", 1, "garbage.png: not a readable image"),
        ("existing output", 1, "OUTPUT out.png already exists; pass --overwrite to replace it"),
        ("output directory missing", 1, "cannot write nodir/out.png: the directory nodir does"),
    ],
)
def test_exit_status_2_for_usage_and_configuration_1_for_runtime(
    tmp_path: Path, case: str, status: int, message: str
) -> None:
    src = _png(tmp_path / "in.png")
    filter_args = ["filter", "in.png", "out.png", "--kernel", "box"]
    env: dict[str, str] = {}
    args = {
        "unknown backend": [*filter_args, "--backend", "nmupy"],
        "unavailable backend": [*filter_args, "--backend", "torch"],
        "bad config": filter_args,
        "bad padding mode": [*filter_args, "--padding-mode", "mirror"],
        "bad kernel": ["filter", "in.png", "out.png", "--kernel", "gausian"],
        "unsupported input": ["filter", "in.bmp", "out.png", "--kernel", "box"],
        "output of another kind": ["filter", "in.png", "out.wav", "--kernel", "box"],
        "scale for audio": [
            "filter",
            "in.wav",
            "o.wav",
            "--kernel",
            "lowpass",
            "--scale",
            "minmax",
        ],
        "unknown exercise": ["exercises", "--only", "delta1", "--out", "ex"],
        "unknown workload": ["bench", "--only", "nope"],
        "calibrate unknown backend": ["calibrate", "--backend", "nope", "--dry-run"],
        "missing input": ["filter", "missing.png", "out.png", "--kernel", "box"],
        "unreadable input": ["filter", "garbage.png", "out.png", "--kernel", "box"],
        "existing output": filter_args,
        "output directory missing": ["filter", "in.png", "nodir/out.png", "--kernel", "box"],
    }[case]
    if case == "unavailable backend":
        env["PYTHONPATH"] = str(_blocked_torch(tmp_path))
    if case == "bad config":
        (tmp_path / "convkit.toml").write_text("backend = [\n")
    if case == "unreadable input":
        (tmp_path / "garbage.png").write_text("garbage")
    if case == "existing output":
        (tmp_path / "out.png").write_bytes(b"precious")
    result = convkit(*args, cwd=tmp_path, **env)
    assert result.returncode == status, result.stderr
    assert result.stderr.startswith("convkit: error: "), result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert src.is_file()
    if case == "existing output":
        assert (tmp_path / "out.png").read_bytes() == b"precious"
    else:
        assert not (tmp_path / "out.png").exists()


def _blocked_torch(tmp_path: Path) -> Path:
    """A directory that, first on ``PYTHONPATH``, makes ``import torch`` fail: the torch
    backend is registered but unavailable."""
    (tmp_path / "blocked" / "torch").mkdir(parents=True)
    (tmp_path / "blocked" / "torch" / "__init__.py").write_text(
        'raise ImportError("torch is blocked here")\n'
    )
    return tmp_path / "blocked"


def test_the_exercises_report_names_where_the_backend_came_from(tmp_path: Path) -> None:
    for extra, source in [
        ([], "the command's default (--backend numpy)"),
        (["--backend", "numpy"], "--backend"),
    ]:
        out = tmp_path / ("explicit" if extra else "default")
        result = convkit("exercises", "--quick", "--only", "delta0", "--out", str(out), *extra)
        assert result.returncode == 0, result.stderr
        report = (out / "report.md").read_text()
        assert f"Backend: numpy (from {source}). Mode: quick." in report
        assert "(from argument)" not in report
