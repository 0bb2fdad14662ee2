"""``convkit bench``: it runs, and reports what it measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from convkit import bench


def test_workload_flops_follow_the_formula() -> None:
    cnn = next(w for w in bench.WORKLOADS if w.name == "cnn3x3")
    assert cnn.flops(quick=False) == 2 * 8 * 64 * 56 * 56 * 64 * 9
    backward = next(w for w in bench.WORKLOADS if w.name == "cnn3x3_backward")
    assert backward.flops(quick=False) == 3 * cnn.flops(quick=False)


def test_bench_writes_json_and_a_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the chart is drawn with matplotlib")
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "convkit",
            "bench",
            "--quick",
            "--only",
            "conv4d",
            "vol5",
            "--rounds",
            "1",
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
        ],
        capture_output=True,
        text=True,
    )
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
