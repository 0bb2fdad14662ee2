"""The default backend ``auto``: which backends it considers, what it picks, what it
measures (``convkit calibrate``), and the ``threads`` setting."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import run_python

import convkit as ck
from convkit import bench, calibrate, calibration
from convkit.costs import CostModel
from convkit.planner import CONVERT_SECONDS
from convkit.spec import ConvSpec
from convkit.testing import assert_close, reference_conv

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="compares against the torch backend")

import scipy.signal  # noqa: E402,F401 - loaded, as in any SciPy user: no import time to weigh

HOST = sorted(b.name for b in ck.list_backends() if b.available and b.capabilities.host_arrays)


def _finite(choice: ck.MethodChoice) -> list[tuple[str, str, float]]:
    return [(e.backend, e.method, e.seconds) for e in choice.estimates if math.isfinite(e.seconds)]


@pytest.mark.parametrize(
    ("x", "w", "kwargs"),
    [
        ((8, 64, 56, 56), (64, 64, 3, 3), {"padding": 1}),
        ((1, 1, 2048, 2048), (1, 1, 31, 31), {}),
        ((64, 128, 512), (256, 128, 5), {"padding": 2}),
        ((2, 4, 8, 8, 8, 8), (8, 4, 3, 3, 3, 3), {}),
    ],
)
def test_auto_considers_every_host_backend_and_picks_the_cheapest(
    x: tuple[int, ...], w: tuple[int, ...], kwargs: dict
) -> None:
    choice = ck.explain(x, w, **kwargs)
    considered = sorted({e.backend for e in choice.estimates})
    assert considered == HOST
    best = min(_finite(choice), key=lambda e: e[2])
    assert (choice.backend, choice.method) == best[:2]
    extra = 0.0 if choice.backend == "numpy" else CONVERT_SECONDS  # numpy owns the input
    mine = {e.method: e.seconds for e in choice.estimates if e.backend == choice.backend}
    assert mine == {m: pytest.approx(c + extra) for m, c in choice.costs.items()}


def test_auto_result_equals_the_reference_whatever_it_picks() -> None:
    rng = np.random.default_rng(0)
    for xs, ws, kw in [
        ((2, 16, 20, 20), (8, 16, 3, 3), {"padding": 1}),
        ((1, 1, 3000), (1, 1, 257), {}),
        ((2, 8, 12, 12), (8, 1, 3, 3), {"padding": 1, "groups": 8, "padding_mode": "reflect"}),
    ]:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        y = ck.conv(x, w, **kw)
        assert isinstance(y, np.ndarray) and y.dtype == np.float32
        xp = np.pad(
            x.astype(np.float64),
            [(0, 0), (0, 0)] + [(kw.get("padding", 0),) * 2] * (x.ndim - 2),
            mode={"zeros": "constant", "reflect": "reflect"}[kw.get("padding_mode", "zeros")],
        )
        ref = reference_conv(xp, w.astype(np.float64), groups=kw.get("groups", 1))
        assert_close(y, ref, "float32")


@needs_torch
def test_auto_runs_the_backend_it_explains() -> None:
    """In a fresh interpreter: a call that torch would speed up by less than its import
    time does not import torch; one that it speeds up by more does, and the result is
    still a NumPy array; once torch is imported, it competes on its rates alone. On a
    2-core CPU torch's built-in rates rarely save 1.5 s over NumPy's and SciPy's, so
    this machine's stored rates (``costs.json``, as ``convkit calibrate`` writes it)
    make torch a thousand times faster."""
    code = """
        import dataclasses, sys
        import numpy as np
        import convkit as ck
        from convkit import calibration, checks
        from convkit.costs import CostModel

        torch_backend = checks.registered_backend("torch")
        fast = {f.name: 1e15 for f in dataclasses.fields(CostModel) if f.name.endswith("rate")}
        fast.update(call_overhead=1e-6, fft_overhead=1e-6)
        model = dataclasses.replace(torch_backend.cost_model({}), **fast)
        calibration.save({"torch:cpu": model}, {"torch:cpu": calibration._version(torch_backend)})
        for xs, ws in [
            ((8, 64, 56, 56), (64, 64, 3, 3)),  # 15 ms on numpy: not worth an import
            ((64, 1, 2048, 2048), (1, 1, 31, 31)),  # seconds on numpy and scipy
            ((8, 64, 56, 56), (64, 64, 3, 3)),  # torch is loaded now
        ]:
            choice = ck.explain(xs, ws, padding=1)
            before = "torch" in sys.modules
            y = ck.conv(np.ones(xs, np.float32), np.ones(ws, np.float32), padding=1)
            print(choice.backend, before, "torch" in sys.modules, type(y).__name__)
    """
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    cnn, blur, cnn_again = (line.split() for line in result.stdout.splitlines())
    assert cnn == ["numpy", "False", "False", "ndarray"]
    assert blur == ["torch", "False", "True", "ndarray"]
    assert cnn_again == ["torch", "True", "True", "ndarray"]


@needs_torch
def test_tensors_that_need_autograd_stay_on_torch() -> None:
    import torch

    x = torch.randn(1, 2, 8, 8, requires_grad=True)
    w = torch.randn(3, 2, 3, 3)
    choice = ck.explain(x, w)
    assert {e.backend for e in choice.estimates} == {"torch"}
    y = ck.conv(x, w)
    assert y.grad_fn is not None
    with torch.no_grad():  # no graph to keep: host memory is host memory
        assert {e.backend for e in ck.explain(x, w).estimates} == set(HOST)
    assert {e.backend for e in ck.explain(x.detach(), w).estimates} == set(HOST)


def test_integers_in_convolve_stay_with_their_owner() -> None:
    a, b = np.arange(10), np.arange(3)
    choice = ck.explain(a, b, op="convolve")
    assert {e.backend for e in choice.estimates} == {"numpy"}
    assert ck.convolve(a, b).tolist() == np.convolve(a, b).tolist()


def test_a_device_nobody_here_has_is_the_owners_error() -> None:
    x, w = np.ones((1, 1, 8)), np.ones((1, 1, 3))
    with (
        ck.use_backend("auto", device="tpu"),
        pytest.raises(ValueError, match=r"backend 'numpy' cannot run on device='tpu'"),
    ):
        ck.conv(x, w)


def test_an_explicit_backend_is_never_second_guessed() -> None:
    choice = ck.explain((8, 64, 56, 56), (64, 64, 3, 3), padding=1, backend="scipy")
    assert {e.backend for e in choice.estimates} == {"scipy"}
    assert choice.backend == "scipy"


def test_explain_covers_gradients_and_signals() -> None:
    vjp = ck.explain((8, 64, 56, 56), (64, 64, 3, 3), padding=1, op="conv_vjp")
    assert vjp.method == "auto" and {e.backend for e in vjp.estimates} == set(HOST)
    sig = ck.explain((2**18,), (1025,), op="convolve", mode="valid")
    assert sig.method == "fft"
    with pytest.raises(ValueError, match=r"op='conv2d' is not an operation"):
        ck.explain((1, 1, 4), (1, 1, 2), op="conv2d")


def test_explain_command_prints_every_alternative() -> None:
    argv = ["explain", "--x", "8", "64", "56", "56", "--w", "64", "64", "3", "3"]
    result = subprocess.run(
        [sys.executable, "-m", "convkit", *argv, "--padding", "1"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rows = [line.removeprefix(" ").split() for line in lines[2:]]
    parsed = []
    for r in rows:
        starred = r[0] == "*"
        backend, method, cost = r[1:4] if starred else r[:3]
        parsed.append((starred, backend, method, float(cost)))
    (pick,) = [p for p in parsed if p[0]]
    assert lines[1].startswith(f"picks {pick[1]} / {pick[2]} (")
    assert pick[3] == min(p[3] for p in parsed)
    expected = {(n, m) for n in HOST for m in ("direct", "fft")}
    expected |= {(n, "winograd") for n in HOST if n != "scipy"}  # a 3x3 layer at stride 1
    assert {(p[1], p[2]) for p in parsed} == expected
    if HAS_TORCH:  # a fresh process has not imported torch: its estimates carry that
        assert all("to import it first" in line for line in lines[2:] if " torch " in line)


# -- calibration ------------------------------------------------------------------


def test_calibrate_stores_this_machines_rates_and_auto_uses_them(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "convkit", "calibrate", "--backend", "numpy", "--quick"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    path = calibration.costs_path()
    assert f"stored in {path}" in result.stdout
    data = json.loads(path.read_text())
    assert data["machine"] == calibration.machine()
    rates = data["models"]["numpy:cpu"]["rates"]
    assert all(v > 0 for k, v in rates.items() if k.endswith(("rate", "factor")))
    assert all(v >= 0 for v in rates.values())
    model = CostModel(**rates)
    spec = ConvSpec.build((8, 64, 56, 56), (64, 64, 3, 3), padding=1)
    choice = ck.explain((8, 64, 56, 56), (64, 64, 3, 3), padding=1, backend="numpy")
    assert choice.costs["direct"] == pytest.approx(model.conv_direct(spec))
    assert choice.costs["fft"] == pytest.approx(model.conv_fft(spec))
    assert {e.note for e in choice.estimates} == {"calibrated rates"}
    if "scipy" in HOST:  # not measured: keeps its built-in rates
        notes = {e.note for e in ck.explain((1, 1, 64), (1, 1, 3), backend="scipy").estimates}
        assert notes == {"built-in rates"}


def _store(models: dict, machine: dict | None = None, fmt: int = calibration.FORMAT) -> Path:
    path = calibration.costs_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": fmt, "machine": machine or calibration.machine(), "models": models}
    path.write_text(json.dumps(payload))
    return path


def test_stored_rates_apply_only_to_the_same_backend_version() -> None:
    fast = dataclasses.asdict(CostModel(mac_rate=1e15, tap_rate=1e15, call_overhead=0.0))
    spec = ConvSpec.build((8, 64, 56, 56), (64, 64, 3, 3), padding=1)
    numpy_backend = ck.checks.registered_backend("numpy")
    _store({"numpy:cpu": {"version": "0.0.0-other", "rates": fast}})
    assert not calibration.is_calibrated(numpy_backend, {})
    version = next(b.version for b in ck.list_backends() if b.name == "numpy")
    _store({"numpy:cpu": {"version": version, "rates": fast}})
    assert calibration.is_calibrated(numpy_backend, {})
    direct = ck.explain((8, 64, 56, 56), (64, 64, 3, 3), padding=1).costs
    assert ck.explain((8, 64, 56, 56), (64, 64, 3, 3), padding=1).backend == "numpy"
    assert direct["direct"] == pytest.approx(CostModel(**fast).conv_direct(spec))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "cannot be used"),
        (json.dumps({"format": 99, "machine": {}, "models": {}}), "cannot be used"),
        (None, "calibrated on another machine"),
    ],
)
def test_a_stale_or_broken_cache_warns_and_uses_built_in_rates(
    content: str | None, match: str
) -> None:
    if content is None:
        _store({"numpy:cpu": {"version": "x", "rates": {}}}, machine={"cpus": -1})
    else:
        path = calibration.costs_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    with pytest.warns(RuntimeWarning, match=match):
        y = ck.conv(np.ones((1, 1, 5)), np.ones((1, 1, 2)))
    assert y.tolist() == [[[2.0, 2.0, 2.0, 2.0]]]


def test_saving_keeps_the_other_backends_entries() -> None:
    one = {"numpy:cpu": CostModel(mac_rate=1.0)}
    two = {"scipy:cpu": CostModel(mac_rate=2.0)}
    calibration.save(one, {"numpy:cpu": "1"})
    path = calibration.save(two, {"scipy:cpu": "2"})
    models = json.loads(path.read_text())["models"]
    assert models["numpy:cpu"]["rates"]["mac_rate"] == 1.0
    assert models["scipy:cpu"]["rates"]["mac_rate"] == 2.0
    assert not list(path.parent.glob("*.partial"))


def test_calibrating_an_unknown_backend_is_reported() -> None:
    models, _, failures = calibrate.calibrate(["nonesuch"], quick=True)
    assert models == {} and failures == {"nonesuch": "not an available backend"}


# -- threads ----------------------------------------------------------------------


def test_threads_setting_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, no level names a count; set_threads beats the environment. (What a count
    does to the libraries, within a call only, is in test_side_effects.py.)"""
    assert ck.get_threads() == (None, "not set (each library keeps its own count)")
    monkeypatch.setenv("CONVKIT_NUM_THREADS", "1")
    assert ck.get_threads() == (1, "env var CONVKIT_NUM_THREADS")
    ck.set_threads(3)
    assert ck.get_threads() == (3, "set_threads()")
    ck.set_threads(None)
    monkeypatch.delenv("CONVKIT_NUM_THREADS")
    assert ck.get_threads()[0] is None


def test_threads_from_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "convkit.toml").write_text("threads = 1\n")
    monkeypatch.chdir(tmp_path)
    assert ck.get_threads() == (1, f"{tmp_path / 'convkit.toml'}: threads")


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "4"])
def test_bad_thread_counts_are_named(bad: object, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=rf"threads must be a positive integer; got {bad!r}"):
        ck.set_threads(bad)  # type: ignore[arg-type]
    monkeypatch.setenv("CONVKIT_NUM_THREADS", str(bad))
    if str(bad).isdigit() and int(str(bad)) > 0:
        return
    with pytest.raises(ValueError, match=r"CONVKIT_NUM_THREADS=.* is not a thread count"):
        ck.get_threads()


# -- the benchmark's own measurements ---------------------------------------------


def test_extra_memory_sees_numpy_and_torch_allocations() -> None:
    def numpy_scratch() -> float:
        a = np.ones(64 << 20, dtype=np.uint8)  # 64 MiB, touched
        return float(a[::4096].sum())

    assert 60 <= bench._extra_memory(numpy_scratch) <= 80
    assert bench.steady_allocator() == sys.platform.startswith("linux")
    for _ in range(2):  # freed memory is kept for reuse now, and still counted
        assert 60 <= bench._extra_memory(numpy_scratch) <= 80
    if HAS_TORCH:
        import torch

        def torch_scratch() -> float:
            t = torch.ones(64 << 20, dtype=torch.uint8)  # invisible to tracemalloc
            return float(t[::4096].sum())

        assert bench._extra_memory(torch_scratch) >= 60


def test_summary_is_the_geometric_mean_against_each_peer() -> None:
    def row(work: str, cand: str, t: float, peer: bool) -> bench.Row:
        return bench.Row(work, cand, peer, t, 0.0, 0.0, 0.0)

    rows = [
        row("a", "convkit auto", 1.0, False),
        row("a", "torch F.conv2d (peer)", 2.0, True),
        row("b", "convkit auto", 4.0, False),
        row("b", "torch F.conv1d (peer)", 1.0, True),
        row("b", "numpy.convolve (peer)", 8.0, True),
    ]
    for r in rows:
        best = min(x.median_s for x in rows if x.peer and x.workload == r.workload)
        r.ratio_to_best_peer = r.median_s / best
    text = bench.summary(rows)
    assert "torch F.conv" in text and f"{math.sqrt(0.5 * 4):6.2f}x over 2" in text
    assert f"{0.5:6.2f}x over 1" in text
    assert "worst ratio to a workload's best peer: 4.00x (b)" in text
