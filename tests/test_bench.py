"""``convkit bench``: it runs, and reports what it measured."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from support import clean_environ, pip_install, write_plugin

import convkit as ck
from convkit import bench


def test_workload_flops_follow_the_formula() -> None:
    cnn = next(w for w in bench.WORKLOADS if w.name == "cnn3x3")
    assert cnn.flops(quick=False) == 2 * 8 * 64 * 56 * 56 * 64 * 9
    backward = next(w for w in bench.WORKLOADS if w.name == "cnn3x3_backward")
    assert backward.flops(quick=False) == 3 * cnn.flops(quick=False)


def test_new_workloads_flops_follow_the_formula() -> None:
    """Twice the multiply-adds of the direct sum, counted from the shapes by hand."""
    work = {w.name: w for w in bench.WORKLOADS}
    # grad_large: padding 2 keeps 1024x768; 3 output channels, 2 input, 5x5 taps; 3 passes
    assert work["grad_large"].flops(quick=False) == 3 * 2 * (1024 * 768) * 3 * 2 * 25
    assert work["grad_large"].flops(quick=True) == 3 * 2 * (256 * 192) * 3 * 2 * 25
    # tiny_conv: 14 valid outputs of 3 taps
    assert work["tiny_conv"].flops(quick=True) == 2 * 14 * 3
    # tiny_convolve, full mode: each of 16 samples meets each of 3 taps once
    assert work["tiny_convolve"].flops(quick=False) == 2 * 16 * 3
    assert work["tiny_conv"].calls > 1 and work["tiny_convolve"].calls > 1


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
    assert data["matmul_peak_flops"] > 0 and data["device"] == "cpu"
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
        "estimate_s": None,
        "estimate_ratio": None,
        "calls": 1,
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


def test_tiny_workloads_report_per_call_times_and_estimates(tmp_path: Path) -> None:
    """The loop workloads time every backend and their peers per call; each convkit row
    carries auto's estimate for it and the estimate over the measured median, the
    table prints both, and the cost model section counts the rows."""

    out_json = tmp_path / "bench.json"
    result = _quick_bench(
        "tiny_conv", "tiny_convolve", "--json", str(out_json), env=clean_environ()
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "est ms" in result.stdout and "est/meas" in result.stdout
    assert "cost model (auto's estimate / measured time" in result.stdout
    rows = json.loads(out_json.read_text())["rows"]
    backends = [b.name for b in ck.list_backends() if b.available]
    mine = {f"convkit {name}" for name in backends} | {"convkit auto"}
    expected_peers = {
        "tiny_conv": {"torch F.conv1d (peer)", "numpy.correlate (peer)"},
        "tiny_convolve": {"scipy.signal.convolve (peer)", "numpy.convolve (peer)"},
    }
    for work, peers in expected_peers.items():
        group = [r for r in rows if r["workload"] == work]
        assert {r["candidate"] for r in group} == mine | peers
        best = min(r["median_s"] for r in group if r["peer"])
        for r in group:
            assert not r["error"], r
            assert r["calls"] > 1 and r["median_s"] > 0
            assert r["ratio_to_best_peer"] == pytest.approx(r["median_s"] / best)
            if r["peer"]:
                assert r["estimate_s"] is None and r["estimate_ratio"] is None
            else:
                assert r["estimate_s"] > 0
                assert r["estimate_ratio"] == pytest.approx(r["estimate_s"] / r["median_s"])
    by_name = {(r["workload"], r["candidate"]): r for r in rows}
    # the numpy backend's estimate is its cheapest method's (built-in rates in both)
    x, w = np.zeros((1, 1, 16), np.float32), np.zeros((1, 1, 3), np.float32)
    conv_costs = ck.choose_conv_method(x, w, backend="numpy").costs
    assert by_name["tiny_conv", "convkit numpy"]["estimate_s"] == pytest.approx(
        min(conv_costs.values())
    )
    signal_costs = ck.choose_method(np.zeros(16), np.zeros(3), backend="numpy").costs
    assert by_name["tiny_convolve", "convkit numpy"]["estimate_s"] == pytest.approx(
        min(signal_costs.values())
    )
    rated = [r for r in rows if not r["peer"]]
    outside = [r for r in rated if not 1 / 3 <= r["estimate_ratio"] <= 3]
    assert f"{len(rated) - len(outside)} of {len(rated)} rows right" in result.stdout
    assert result.stdout.count("  outside: ") == len(outside)


def test_a_candidate_over_the_first_call_limit_is_reported_and_the_run_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A candidate whose first call takes longer than the limit gets a ``too slow`` row
    and no rounds; the workload's other candidates are measured."""

    calls = [0]

    def slow() -> None:
        calls[0] += 1
        time.sleep(0.6)

    original = bench.candidates

    def with_a_slow_one(
        work: bench.Workload, x: np.ndarray, w: np.ndarray, on: bench.Device
    ) -> tuple[dict[str, Callable[[], object]], list[str]]:
        fns, peers = original(work, x, w, on)
        for fn in fns.values():  # imports and first-call set-up happen here, not timed
            with contextlib.suppress(Exception):  # one that raises is reported, not fatal
                fn()
        return {**fns, "convkit slow": slow}, peers

    monkeypatch.setattr(bench, "FIRST_CALL_LIMIT_S", 0.3)
    monkeypatch.setattr(bench, "candidates", with_a_slow_one)
    rows, _ = bench.run(["tiny_conv"], quick=True, rounds=1, stream=io.StringIO())
    by_name = {r.candidate: r for r in rows}
    slow_row = by_name["convkit slow"]
    assert (
        slow_row.error.startswith("too slow: first call 0.6") and "> 0.3 s limit" in slow_row.error
    )
    assert slow_row.median_s != slow_row.median_s and calls[0] == 1  # NaN: never timed again
    others = [r for r in rows if r.candidate != "convkit slow"]
    assert {"convkit auto", "convkit numpy", "numpy.correlate (peer)"} <= {
        r.candidate for r in others
    }
    assert not any(r.error.startswith("too slow") for r in others)
    assert by_name["numpy.correlate (peer)"].median_s > 0  # timed after the slow one
    text = bench.table(rows, 1e9)
    assert "convkit slow" in text and "failed: too slow: first call" in text
    assert "not measured: tiny_conv / convkit slow" in text
