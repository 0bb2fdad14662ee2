"""``convkit bench``: it runs, and reports what it measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import clean_environ, pip_install, write_plugin

from convkit import bench


def test_workload_flops_follow_the_formula() -> None:
    cnn = next(w for w in bench.WORKLOADS if w.name == "cnn3x3")
    assert cnn.flops(quick=False) == 2 * 8 * 64 * 56 * 56 * 64 * 9
    backward = next(w for w in bench.WORKLOADS if w.name == "cnn3x3_backward")
    assert backward.flops(quick=False) == 3 * cnn.flops(quick=False)


def _quick_bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``convkit bench --quick --rounds 1 --only ARGS...`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "convkit", "bench", "--quick", "--rounds", "1", "--only", *args],
        capture_output=True,
        text=True,
        env=env,
    )


def test_bench_writes_json_and_a_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the chart is drawn with matplotlib")
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    result = _quick_bench("conv4d", "vol5", "--json", str(out_json), "--plot", str(out_png))
    assert result.returncode == 0, result.stderr
    assert "matmul peak here" in result.stdout
    data = json.loads(out_json.read_text())
    rows = data["rows"]
    assert data["matmul_peak_flops"] > 0
    assert {r["workload"] for r in rows} == {"conv4d", "vol5"}
    assert any(r["candidate"] == "convkit numpy auto" for r in rows)
    conv4d = [r for r in rows if r["workload"] == "conv4d"]
    assert not any(r["peer"] for r in conv4d) and all(
        r["ratio_to_best_peer"] is None for r in conv4d
    )
    vol5 = [r for r in rows if r["workload"] == "vol5"]
    best_peer = min(r["median_s"] for r in vol5 if r["peer"])
    for r in vol5:
        assert r["ratio_to_best_peer"] == pytest.approx(r["median_s"] / best_peer)
        assert r["gflops"] > 0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_workload_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown workload\(s\) cnn5; valid: cnn3x3, audio1k"):
        bench.run(["cnn5"])


FLAKY_PLUGIN = """
import convkit
from convkit_numpy import NumpyBackend

CONVKIT_PLUGIN_API = 1
_calls = [0]


class Flaky(NumpyBackend):
    \"\"\"NumPy's backend under another name, that works once and then fails.\"\"\"

    name = "flaky"

    def conv(self, x, weight, bias, spec, options):
        _calls[0] += 1
        if _calls[0] > 1:
            raise RuntimeError("device lost")
        return super().conv(x, weight, bias, spec, options)


@convkit.hookimpl
def convkit_add_backends(registry):
    registry.add(Flaky())
"""

BROKEN_TORCHAUDIO = """
raise OSError("libtorchaudio.so: cannot open shared object file: No such file or directory")
"""


@pytest.fixture(scope="module")
def failing_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding, as a user's environment might: a backend plugin installed by
    pip whose conv fails from its second call on, and a torchaudio whose compiled
    library does not load (it shadows the real one)."""
    root = tmp_path_factory.mktemp("failing")
    src = write_plugin(root / "src", "ck-flaky", "ck_flaky", FLAKY_PLUGIN)
    site = root / "site"
    pip_install("--target", str(site), str(src))
    (site / "torchaudio").mkdir()
    (site / "torchaudio" / "__init__.py").write_text(BROKEN_TORCHAUDIO)
    return site


def test_failing_candidates_are_reported_and_the_run_goes_on(
    failing_site: Path, tmp_path: Path
) -> None:
    """A peer that cannot load and a backend that fails, at its first call or in a later
    round, each get a ``failed`` row; the other rows and workloads are measured, the
    summary leaves the failures out, and the JSON records them."""
    out_json = tmp_path / "bench.json"
    result = _quick_bench(
        "audio1k",
        "conv4d",
        "--json",
        str(out_json),
        env=clean_environ(PYTHONPATH=str(failing_site)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    (torchaudio,) = [line for line in lines if "torchaudio fftconvolve (peer)" in line]
    assert "failed: OSError: libtorchaudio.so: cannot open shared object file" in torchaudio
    summary = result.stdout[result.stdout.index("against each peer") :]
    assert "torchaudio" not in summary and "scipy.signal.oaconvolve" in summary

    rows = json.loads(out_json.read_text())["rows"]
    by_name = {(r["workload"], r["candidate"]): r for r in rows}
    assert by_name["audio1k", "torchaudio fftconvolve (peer)"] == {
        "workload": "audio1k",
        "candidate": "torchaudio fftconvolve (peer)",
        "peer": True,
        "median_s": None,
        "gflops": None,
        "peak_fraction": None,
        "extra_mib": None,
        "ratio_to_best_peer": None,
        "error": "OSError: libtorchaudio.so: cannot open shared object file: No such file or "
        "directory",
    }
    flaky = [r for r in rows if r["candidate"].startswith("convkit flaky")]
    assert {r["workload"] for r in flaky} == {"audio1k", "conv4d"}
    for r in flaky:  # the first call of the first one worked: it failed in the rounds
        assert r["error"].startswith("BackendError: backend 'flaky' from plugin 'ck_flaky'"), r
        assert r["median_s"] is None and len(r["error"]) <= len("BackendError: ") + 100
    for work in ("audio1k", "conv4d"):  # everything else was measured
        measured = [r for r in rows if r["workload"] == work and not r["error"]]
        assert {"convkit auto", "convkit numpy auto"} <= {r["candidate"] for r in measured}
        assert all(r["median_s"] > 0 for r in measured)
    best = min(
        r["median_s"] for r in rows if r["workload"] == "audio1k" and r["peer"] and not r["error"]
    )
    auto = by_name["audio1k", "convkit auto"]
    assert auto["ratio_to_best_peer"] == pytest.approx(auto["median_s"] / best)


def test_summary_skips_failed_rows() -> None:
    def row(candidate: str, seconds: float, error: str = "") -> bench.Row:
        peer = candidate.endswith("(peer)")
        return bench.Row("w", candidate, peer, seconds, 1.0, 0.1, 0.0, seconds / 2.0, error)

    rows = [
        row("convkit auto", 1.0),
        row("scipy.signal.oaconvolve (peer)", 2.0),
        bench._failed_row("w", "torchaudio fftconvolve (peer)", True, "OSError: no lib"),
    ]
    text = bench.summary(rows)
    assert "scipy.signal.oaconvolve" in text and "0.50x over 1 workload(s)" in text
    assert "torchaudio" not in text
    assert "failed: OSError: no lib" in bench.table(rows, 1e9)
