"""The dask backend: conformance over several chunkings, equality with the NumPy backend
for every padding mode, stride, dilation and groups in 1 to 3 dimensions, laziness, mixed
inputs, settings, a real ``distributed.LocalCluster`` (including a worker killed
mid-computation) and ``convkit filter`` on Zarr and ``.npy`` files."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import convkit as ck
from convkit.checks import check_selection, registered_backend
from convkit.cli import main as cli_main
from convkit.padding import PADDING_MODES
from convkit.spec import ConvSpec
from convkit.testing import assert_close, reference_conv
from convkit.testing.conformance import BackendConformance

dask = pytest.importorskip("dask", reason="the dask backend needs pip install -e '.[dask]'")
da = pytest.importorskip("dask.array", reason="the dask backend needs pip install -e '.[dask]'")
distributed = pytest.importorskip("distributed", reason="needs pip install -e '.[dask]'")
zarr = pytest.importorskip("zarr", reason="needs pip install -e '.[dask]'")

from dask.callbacks import Callback  # noqa: E402

from convkit_dask import ops, settings  # noqa: E402


def _use_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str) -> None:
    """Point convkit at a config file whose ``[dask]`` table is ``table``."""
    path = tmp_path / "convkit.toml"
    path.write_text(f"[dask]\n{table}\n")
    monkeypatch.setenv("CONVKIT_CONFIG", str(path))


class TestDaskConformance(BackendConformance):
    """The whole suite, with NumPy inputs wrapped in chunks of 2 (every axis split,
    uneven, smaller than most halos, batch and channels too) and in Dask's automatic
    chunks (one chunk for these sizes)."""

    @pytest.fixture(params=["2", '"auto"'], ids=["chunks-2", "chunks-auto"])
    def backend(
        self, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> str:
        _use_config(tmp_path, monkeypatch, f"chunks = {request.param}")
        return "dask"


# -- equality with the NumPy backend ---------------------------------------------------

CASES = [
    ("1d", (2, 3, 23), (4, 3, 3), dict(stride=2, dilation=2, padding=((3, 4),))),
    ("1d-wide-pad", (1, 2, 6), (2, 2, 4), dict(padding=((9, 7),), stride=3)),
    (
        "2d-groups",
        (2, 4, 13, 11),
        (6, 2, 3, 4),
        dict(groups=2, stride=(3, 2), padding=((2, 5), (1, 0))),
    ),
    ("2d-depthwise", (1, 3, 12, 10), (6, 1, 5, 3), dict(groups=3, padding="same", dilation=(1, 2))),
    # causal: all padding low, and the last chunk (of uneven 3s) shorter than it
    ("1d-causal", (1, 2, 31), (2, 2, 5), dict(padding=((4, 0),))),
    (
        "3d",
        (1, 2, 7, 6, 9),
        (2, 2, 2, 3, 2),
        dict(padding="same", dilation=(1, 2, 1), stride=(1, 1, 2)),
    ),
]
CHUNKINGS = {
    "ones": 1,  # every chunk smaller than the halo
    "uneven-3": 3,
    "per-dim": "per-dim",  # batch and channels split, spatial chunks uneven
    "single": -1,
}


def _chunks(name: str, shape: tuple[int, ...]) -> Any:
    value = CHUNKINGS[name]
    if value == "per-dim":
        return (1, 1, *(max(1, n // 3 + 1) for n in shape[2:]))
    return value


@pytest.mark.parametrize("chunking", list(CHUNKINGS))
@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_equals_numpy_backend(case: Any, mode: str, chunking: str) -> None:
    _, xs, ws, kwargs = case
    rng = np.random.default_rng(len(xs) + len(mode))
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    expected = ck.conv(x, w, b, padding_mode=mode, backend="numpy", **kwargs)
    xd = da.from_array(x, chunks=_chunks(chunking, xs))
    y = ck.conv(xd, w, b, padding_mode=mode, **kwargs)
    assert isinstance(y, da.Array)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.compute(), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_convolve_and_correlate_chunkwise(mode: str, method: str) -> None:
    rng = np.random.default_rng(3)
    a, k = rng.standard_normal((50, 41)), rng.standard_normal((7, 4))
    ad = da.from_array(a, chunks=(9, 5))
    for op in (ck.convolve, ck.correlate):
        y = op(ad, k, mode, method=method)
        assert isinstance(y, da.Array)
        np.testing.assert_allclose(y.compute(), op(a, k, mode, backend="numpy"), atol=1e-10)


class Largest(Callback):  # type: ignore[misc]
    """The most bytes any one task's result held (tuples of arrays counted whole)."""

    def __init__(self) -> None:
        super().__init__()
        self.most = 0

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker: Any) -> None:
        if str(key).startswith("finalize-"):  # the computed result itself
            return
        parts = result if isinstance(result, tuple) else (result,)
        size = sum(p.nbytes for p in parts if isinstance(p, np.ndarray))
        self.most = max(self.most, size)


GRAD_CHUNKINGS = ["ones", "uneven-3", "per-dim"]


@pytest.mark.parametrize("chunking", GRAD_CHUNKINGS)
@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_gradients_are_chunked_and_equal_numpy(
    case: Any, mode: str, chunking: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, xs, ws, kwargs = case
    rng = np.random.default_rng(len(xs) * 7 + len(mode))
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    gy = rng.standard_normal(ck.conv(x, w, padding_mode=mode, backend="numpy", **kwargs).shape)
    expected = ck.conv_vjp(x, w, gy, bias=True, padding_mode=mode, backend="numpy", **kwargs)
    # far below the inputs: only the weights (and their gradients) may be computed whole
    monkeypatch.setenv("CONVKIT_DASK_COMPUTE_LIMIT", str(max(w.nbytes, 64)))
    # inline: each chunk's task reads its part, no task holds the whole array
    xd = da.from_array(x, chunks=_chunks(chunking, xs), inline_array=True)
    gyd = da.from_array(gy, chunks=_chunks(chunking, gy.shape), inline_array=True)
    gx, gw, gb = ck.conv_vjp(xd, w, gyd, bias=True, padding_mode=mode, **kwargs)
    assert isinstance(gx, da.Array) and gx.chunks == xd.chunks
    with Largest() as seen:
        got = dask.compute(gx)[0]
    np.testing.assert_allclose(got, expected[0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw, expected[1], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gb, expected[2], rtol=1e-10, atol=1e-10)
    spec = ConvSpec.build(xs, ws, padding_mode=mode, **kwargs)
    narrow = all(lo + hi < n for (lo, hi), n in zip(spec.padding, xs[2:], strict=True))
    if narrow and max(len(p) for p in ops.Blocks.for_input(xd.chunks, spec).spatial) > 1:
        # (with padding wider than the array, one block may hold all of it)
        assert seen.most < min(x.nbytes, gy.nbytes), "a task held a whole input"


def test_gradients_of_an_image_larger_than_compute_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # a 1024x768 two-channel image in 256^2 chunks, compute_limit 1 MiB: the weight
    # gradient's generic route needed grad_out (3, 1, 1024, 768) whole
    monkeypatch.setenv("CONVKIT_DASK_COMPUTE_LIMIT", "1MiB")
    rng = np.random.default_rng(14)
    x = rng.standard_normal((1, 2, 1024, 768))
    w = rng.standard_normal((3, 2, 5, 5))
    kw: dict[str, Any] = dict(padding="same", padding_mode="reflect", stride=1)
    gy = rng.standard_normal((1, 3, 1024, 768))
    xd = da.from_array(x, chunks=(1, 2, 256, 256), inline_array=True)
    gyd = da.from_array(gy, chunks=(1, 3, 256, 256), inline_array=True)
    assert min(x.nbytes, gy.nbytes) > 8 * 2**20
    with Largest() as seen:
        gx, gw, gb = ck.conv_vjp(xd, w, gyd, bias=True, **kw)
        got = gx.compute()
    expected = ck.conv_vjp(x, w, gy, bias=True, backend="numpy", **kw)
    for g, r in zip((got, gw, gb), expected, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-9)
    assert seen.most < 2 * 2**20, f"a task held {seen.most} bytes"


@pytest.mark.parametrize(
    ("xs", "ws", "kwargs", "chunks"),
    [
        ((1, 4, 17, 13), (4, 3, 5, 3), dict(stride=2, padding=2, output_padding=1), (1, 2, 4, 5)),
        ((2, 4, 6, 5), (4, 3, 3, 4), dict(groups=2, stride=(3, 2), padding=(1, 0)), 1),
        ((1, 2, 5, 6, 4), (2, 2, 2, 3, 2), dict(padding=1, stride=(1, 1, 2), dilation=2), 2),
        ((2, 3, 23), (3, 2, 3), dict(stride=3, dilation=2, padding=2, output_padding=2), 4),
    ],
)
def test_conv_transpose_is_lazy_and_equals_numpy(
    xs: tuple[int, ...], ws: tuple[int, ...], kwargs: dict[str, Any], chunks: Any
) -> None:
    rng = np.random.default_rng(sum(xs))
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[1] * kwargs.get("groups", 1))
    y = ck.conv_transpose(da.from_array(x, chunks=chunks), w, b, **kwargs)
    assert isinstance(y, da.Array)
    expected = ck.conv_transpose(x, w, b, backend="numpy", **kwargs)
    np.testing.assert_allclose(y.compute(), expected, rtol=1e-10, atol=1e-10)


def test_outer_boundary_only_never_at_seams() -> None:
    # a circular wrap reads the far end of the whole axis: chunk-local wrapping (the
    # dask-image#242 bug) would read the neighbouring chunk's end instead
    x = np.arange(12.0).reshape(1, 1, 12)
    w = np.array([[[1.0, 0.0, 0.0]]])  # picks the left neighbour
    y = ck.conv(da.from_array(x, chunks=4), w, padding=1, padding_mode="circular")
    assert y.compute()[0, 0].tolist() == [11.0, *np.arange(11.0)]


def test_stride_across_unaligned_seams_and_rechunked_minimum() -> None:
    x = np.random.default_rng(5).standard_normal((1, 1, 40))
    w = np.ones((1, 1, 7))
    xd = da.from_array(x, chunks=(1, 1, (5, 2, 9, 1, 13, 10)))
    y = ck.conv(xd, w, stride=3, padding=2, padding_mode="reflect")
    # chunks smaller than the halo (6) were merged; every output chunk is non-empty
    assert min(y.chunks[2]) >= 1 and len(y.chunks[2]) > 1
    assert_close(y.compute(), reference_conv(x, w, stride=3, padding=2, padding_mode="reflect"))


def test_plan_rejects_nothing_and_aligns_to_stride() -> None:
    pieces = ops.plan_axis(np.cumsum((5, 2, 9, 1, 13))[:-1], 44, 3, 7)
    bounds = np.cumsum(pieces)[:-1]
    assert sum(pieces) == 44 and all(b % 3 == 0 for b in bounds)
    assert min(pieces) >= 6 and pieces[-1] >= 7


# -- laziness, weights, mixed inputs ---------------------------------------------------


def test_dask_in_lazy_dask_out_and_weights_in_one_task() -> None:
    import dask

    x = da.ones((2, 3, 64, 64), chunks=(1, 3, 16, 16))
    w = np.random.default_rng(6).standard_normal((4, 3, 5, 5))
    y = ck.conv(x, w, padding="same")
    assert isinstance(y, da.Array) and y.numblocks == (2, 1, 4, 4)
    (opt,) = dask.optimize(y)
    graph = dict(opt.__dask_graph__())
    holders = [
        k
        for k, v in graph.items()
        if getattr(v, "value", None) is not None
        and isinstance(v.value, np.ndarray)
        and v.value.shape == w.shape
    ]
    assert len(holders) == 1, f"the weights must be one task of the graph, got {holders}"
    assert str(holders[0][0]).startswith("convkit-weight-")


def test_numpy_in_with_chunks_option_numpy_out() -> None:
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((2, 3, 20, 21)), rng.standard_normal((4, 3, 3, 3))
    with ck.use_backend("dask", chunks=(1, 2, 7, 5)):
        y = ck.conv(x, w, padding=1, padding_mode="symmetric")
    assert isinstance(y, np.ndarray)
    np.testing.assert_allclose(y, ck.conv(x, w, padding=1, padding_mode="symmetric"))


def test_dask_input_on_another_backend_is_computed_only_when_small(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x = da.ones((1, 1, 64, 64), chunks=16)
    w = np.ones((1, 1, 3, 3))
    y = ck.conv(x, w, backend="numpy")  # 32 KiB: below the limit, computed
    assert isinstance(y, da.Array)  # and comes back as the caller's type
    np.testing.assert_allclose(y.compute(), 9.0)
    monkeypatch.setenv("CONVKIT_DASK_COMPUTE_LIMIT", "1KiB")
    with pytest.raises(ck.BackendError, match=r"refusing to compute.*32768 bytes.*backend='dask'"):
        ck.conv(x, w, backend="numpy")
    # a NumPy input is the caller's memory already: its result is always computed
    z = ck.conv(np.ones((1, 1, 64, 64)), w, backend="dask")
    assert isinstance(z, np.ndarray)


def test_a_weight_too_large_for_memory_is_not_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVKIT_DASK_COMPUTE_LIMIT", "100")
    with pytest.raises(ck.BackendError, match=r"weight of shape \(1, 1, 5, 5\).*compute_limit=100"):
        ck.conv(da.ones((1, 1, 9, 9)), da.ones((1, 1, 5, 5)))


def test_set_backend_dask_does_not_recurse() -> None:
    ck.set_backend("dask", chunks=4)
    x = np.random.default_rng(8).standard_normal((1, 2, 9))
    w = np.ones((1, 2, 3))
    assert_close(ck.conv(x, w, padding=1), reference_conv(x, w, padding=1))


# -- options, settings and errors ------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (dict(inner="dask"), "inner='dask'.*not the dask backend itself"),
        (dict(chunks=0), "chunks=0.*positive int"),
        (dict(scheduler="thread"), "scheduler='thread' is neither"),
        (dict(compute_limit="lots"), "compute_limit='lots'.*not a size"),
        (dict(timeout=-1), "timeout=-1.*positive"),
    ],
)
def test_bad_options_are_clear_errors(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match), ck.use_backend("dask", **options):
        ck.conv(np.ones((1, 1, 5)), np.ones((1, 1, 3)))


def test_unreachable_scheduler_names_the_address_within_the_timeout() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    start = time.monotonic()
    with (
        pytest.raises(settings.SchedulerUnreachableError, match=f"{address}.*within 1 s"),
        ck.use_backend("dask", scheduler=address, timeout=1),
    ):
        ck.conv(np.ones((1, 1, 5)), np.ones((1, 1, 3)))
    assert time.monotonic() - start < 10


def test_settings_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "pyproject.toml"
    project.write_text('[tool.convkit.dask]\nscheduler = "tcp://cfg:8786"\n')
    monkeypatch.chdir(tmp_path)
    assert settings.setting("scheduler") == ("tcp://cfg:8786", "config file [tool.convkit.dask]")
    sel = ck.get_backend("dask")  # the core merges the table into the options
    assert sel.options["scheduler"] == "tcp://cfg:8786"
    monkeypatch.setenv("CONVKIT_DASK_SCHEDULER", "tcp://env:8786")
    assert settings.setting("scheduler", sel.options)[0] == "tcp://env:8786"
    assert settings.setting("scheduler", {"scheduler": "threads"}) == ("threads", "option")


LEVELS = ("option", "env", "file")
"""The levels a setting comes from, explicit option first; the default is the fourth."""

SETTING_LEVELS: dict[str, dict[str, Any]] = {
    # per level: what is given there (the option, the env var's text, the TOML value),
    # the value the setting then has, and what the backend makes of it
    "chunks": dict(option=(8, 8, 8), env=("32", 32, 32), file=("16", 16, 16), default="auto"),
    "compute_limit": dict(
        option=("2KiB", "2KiB", 2048),
        env=("1MiB", "1MiB", 2**20),
        file=('"4KiB"', "4KiB", 4096),
        default=256 * 2**20,
    ),
    "timeout": dict(
        option=(7.0, 7.0, 7.0), env=("2.5", 2.5, 2.5), file=("3.0", 3.0, 3.0), default=5.0
    ),
}
FROM_FILE = "config file [tool.convkit.dask]"


def _env_var(name: str) -> str:
    return f"CONVKIT_DASK_{name.upper()}"


def _parsed(name: str, options: Any) -> Any:
    """Setting ``name`` as the backend uses it."""

    if name == "chunks":
        x = registered_backend("dask").asarray(np.ones((1, 1, 100)), "float64", options)
        return x.chunks[-1][0] if x.chunks[-1] != (100,) else "auto"
    return {"compute_limit": settings.compute_limit, "timeout": settings.timeout}[name](options)


def _set_levels(
    name: str,
    levels: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: Any = None,
) -> dict[str, Any]:
    """Give setting ``name`` at each of ``levels``; returns the explicit options."""
    for var in [v for v in os.environ if v.startswith("CONVKIT_DASK_")]:
        monkeypatch.delenv(var)
    given = SETTING_LEVELS[name]
    if "env" in levels:
        monkeypatch.setenv(_env_var(name), given["env"][0])
    if "file" in levels:
        _use_config(tmp_path, monkeypatch, f"{name} = {given['file'][0]}")
    if "option" in levels:
        return {name: given["option"][0] if option is None else option}
    return {}


@pytest.mark.parametrize("name", sorted(SETTING_LEVELS))
@pytest.mark.parametrize(
    "levels",
    [tuple(lv for i, lv in enumerate(LEVELS) if mask >> i & 1) for mask in range(8)],
    ids=lambda levels: "+".join(levels) or "default",
)
def test_each_level_and_pair_of_levels(
    name: str, levels: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every combination of option, env var and config file: the first of those levels
    wins (the default where none is given), and an env value is parsed (``32`` is an
    int, ``2.5`` a float, ``1MiB`` a size)."""
    explicit = _set_levels(name, levels, tmp_path, monkeypatch)
    with ck.use_backend("dask", **explicit):
        sel = ck.get_backend()
        winner = next((lv for lv in LEVELS if lv in levels), "default")
        value = SETTING_LEVELS[name][winner]
        source = {
            "option": "option",
            "env": f"env var {_env_var(name)}",
            "file": FROM_FILE,
            "default": "default",
        }[winner]
        got, got_source = settings.setting(name, sel.options)
        assert got_source == source
        if winner != "default":
            assert got == value[1] and type(got) is type(value[1])
        assert _parsed(name, sel.options) == (value if winner == "default" else value[2])
        check_selection(sel)  # the backend accepts what it gets
    if "option" not in levels:  # the same without a selection's options
        assert settings.setting(name)[1] == source


@pytest.mark.parametrize("name", sorted(SETTING_LEVELS))
def test_an_explicit_option_equal_to_the_files_value_beats_the_env(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file_value = SETTING_LEVELS[name]["file"][1]
    explicit = _set_levels(name, LEVELS, tmp_path, monkeypatch, option=file_value)
    with ck.use_backend("dask", **explicit):
        sel = ck.get_backend()
        assert settings.setting(name, sel.options) == (file_value, "option")
        assert _parsed(name, sel.options) == SETTING_LEVELS[name]["file"][2]
    ck.set_backend("dask", **explicit)  # process-wide: explicit as well
    assert settings.setting(name, ck.get_backend().options) == (file_value, "option")
    ck.set_backend(None)
    # without the option, the env var beats the same file
    sel = ck.get_backend("dask")
    assert settings.setting(name, sel.options)[1] == f"env var {_env_var(name)}"


def test_env_chunks_reach_a_real_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """``CONVKIT_DASK_CHUNKS=32`` is the int 32: accepted by a call, and used for the
    blocks; a tuple literal gives one size per dimension."""
    monkeypatch.setenv("CONVKIT_DASK_CHUNKS", "32")
    x = np.random.default_rng(3).standard_normal((1, 2, 100))
    w = np.random.default_rng(4).standard_normal((3, 2, 5))
    assert_close(ck.conv(x, w, padding="same", backend="dask"), reference_conv(x, w, padding=2))
    dask_backend = registered_backend("dask")
    wrapped = dask_backend.asarray(x, "float64", ck.get_backend("dask").options)
    assert wrapped.chunks == ((1,), (2,), (32, 32, 32, 4))
    monkeypatch.setenv("CONVKIT_DASK_CHUNKS", "(1, 1, 25)")
    wrapped = dask_backend.asarray(x, "float64", ck.get_backend("dask").options)
    assert wrapped.chunks == ((1,), (1, 1), (25, 25, 25, 25))


def test_unavailable_without_dask_says_how_to_install() -> None:
    from convkit_dask import DaskBackend

    class Missing(DaskBackend):
        requires = ("dask_not_installed_here",)

    assert Missing().unavailable_reason() == (
        "missing module(s) dask_not_installed_here; install it with pip install -e '.[dask]' in the convkit checkout"
    )


# -- a real cluster --------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Any:
    """Two worker processes with one thread each, a scheduler, over loopback."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit="1GiB",
        ) as lc,
        distributed.Client(lc, set_as_default=False) as client,
    ):
        yield lc, client


def test_runs_on_a_local_cluster(cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    lc, client = cluster
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((2, 3, 40, 30)), rng.standard_normal((4, 3, 5, 3))
    monkeypatch.setenv("CONVKIT_DASK_SCHEDULER", lc.scheduler_address)
    with distributed.get_task_stream(client) as ts:
        y = ck.conv(x, w, padding="same", padding_mode="reflect", backend="dask")
    assert isinstance(y, np.ndarray)
    np.testing.assert_allclose(y, ck.conv(x, w, padding="same", padding_mode="reflect"))
    ran = {t["key"][0] if isinstance(t["key"], tuple) else t["key"] for t in ts.data}
    assert any(str(k).startswith("convkit-conv") for k in ran), ran
    workers = {t["worker"] for t in ts.data}
    assert workers <= set(client.scheduler_info()["workers"])


def _kill_a_busy_worker(client: Any, prefix: str, done: Any) -> None:
    """SIGKILL a worker process that is running tasks, once some task whose key starts
    with ``prefix`` has finished (while ``done()`` is still false)."""
    pids = client.run(os.getpid)
    victim = None
    deadline = time.monotonic() + 30
    while victim is None and time.monotonic() < deadline:
        busy = [addr for addr, keys in client.processing().items() if keys]
        finished = client.run_on_scheduler(
            lambda dask_scheduler: sum(
                ts.state == "memory" and str(ts.key[0]).startswith(prefix)
                for ts in dask_scheduler.tasks.values()
                if isinstance(ts.key, tuple)
            )
        )
        if busy and finished > 0:
            victim = busy[0]
        else:
            time.sleep(0.02)
    assert victim is not None and not done(), "the computation ended before the kill"
    os.kill(pids[victim], signal.SIGKILL)


def test_a_killed_worker_does_not_lose_the_result(cluster: Any) -> None:
    _, client = cluster
    rng = np.random.default_rng(10)
    x = rng.standard_normal((1, 1, 1536, 1536)).astype(np.float32)
    w = rng.standard_normal((1, 1, 15, 15)).astype(np.float32)
    y = ck.conv(da.from_array(x, chunks=192), w, padding="same", method="direct")
    future = client.compute(y)
    _kill_a_busy_worker(client, "convkit-conv", future.done)
    result = future.result(timeout=120)
    assert_close(result, ck.conv(x, w, padding="same", backend="numpy"), "float32")
    client.wait_for_workers(2, timeout=60)


# -- convkit filter on array files ------------------------------------------------------


def _filter(source: Path, target: Path, *args: str) -> int:
    return cli_main(["filter", str(source), str(target), *args])


def _zarr_input(path: Path, a: np.ndarray, chunks: tuple[int, ...]) -> None:
    z = zarr.create_array(str(path), shape=a.shape, dtype=a.dtype, chunks=chunks)
    z[...] = a


def test_filter_zarr_to_zarr_streams_and_equals_numpy(tmp_path: Path) -> None:
    a = np.random.default_rng(11).random((3, 150, 130)).astype(np.float32)
    _zarr_input(tmp_path / "in.zarr", a, (1, 40, 40))
    np.save(tmp_path / "in.npy", a)
    args = ["--kernel", "gaussian:sigma=2", "--padding-mode", "symmetric"]
    assert _filter(tmp_path / "in.zarr", tmp_path / "out.zarr", *args, "--backend", "dask") == 0
    assert _filter(tmp_path / "in.npy", tmp_path / "out.npy", *args, "--backend", "dask") == 0
    from convkit.adapters import image, kernels

    expected = image.filter(
        a, kernels.kernel("gaussian:sigma=2"), padding_mode="symmetric", backend="numpy"
    )
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    assert out.chunks == (1, 40, 40)
    np.testing.assert_allclose(out[...], expected, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.npy",
        "in.zarr",
        "out.npy",
        "out.zarr",
    ]


def test_filter_streams_on_a_cluster(
    cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lc, _ = cluster
    a = np.random.default_rng(12).random((200, 180)).astype(np.float32)
    _zarr_input(tmp_path / "in.zarr", a, (50, 60))
    monkeypatch.setenv("CONVKIT_DASK_SCHEDULER", lc.scheduler_address)
    _filter(
        tmp_path / "in.zarr", tmp_path / "o.zarr", "--kernel", "box:size=5", "--backend", "dask"
    )
    from convkit.adapters import image, kernels

    expected = image.filter(a[None], kernels.kernel("box:size=5"), backend="numpy")[0]
    np.testing.assert_allclose(zarr.open_array(str(tmp_path / "o.zarr"))[...], expected, atol=1e-6)


def test_a_failure_mid_write_leaves_no_output_and_keeps_the_old_one(tmp_path: Path) -> None:
    a = np.random.default_rng(13).random((256, 64)).astype(np.float32)
    _zarr_input(tmp_path / "in.zarr", a, (32, 64))
    chunk_files = sorted((tmp_path / "in.zarr").rglob("c/*/*"))
    assert len(chunk_files) == 8
    chunk_files[-1].write_bytes(b"not a zarr chunk")  # the last band cannot be read
    old = tmp_path / "out.zarr"
    _zarr_input(old, np.full((4, 4), 7.0, dtype=np.float32), (4, 4))
    args = ["--kernel", "box", "--backend", "dask", "--overwrite"]
    status = _filter(tmp_path / "in.zarr", old, *args)
    assert status == 1  # a runtime failure
    assert zarr.open_array(str(old), mode="r")[...].tolist() == np.full((4, 4), 7.0).tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr", "out.zarr"]
    status = _filter(
        tmp_path / "in.zarr", tmp_path / "new.zarr", "--kernel", "box", "--backend", "dask"
    )
    assert status == 1
    assert not (tmp_path / "new.zarr").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr", "out.zarr"]


def test_workers_write_their_own_blocks(
    cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lc, client = cluster
    a = np.random.default_rng(15).random((2, 256, 192)).astype(np.float32)
    _zarr_input(tmp_path / "in.zarr", a, (1, 64, 64))
    monkeypatch.setenv("CONVKIT_DASK_SCHEDULER", lc.scheduler_address)
    with distributed.get_task_stream(client) as ts:
        _filter(tmp_path / "in.zarr", tmp_path / "o.zarr", "--kernel", "box", "--backend", "dask")
    names = [str(t["key"][0] if isinstance(t["key"], tuple) else t["key"]) for t in ts.data]
    stores = [t for t, n in zip(ts.data, names, strict=True) if n.startswith("store-map")]
    # one write per output chunk, by the workers (the band path would compute the
    # result in this process and run no store task at all)
    assert len(stores) == 2 * 4 * 3
    # a "same" output keeps the input's chunks: the store's, so nothing is rechunked
    y = ck.conv(da.from_zarr(str(tmp_path / "in.zarr"))[:, None], np.ones((1, 1, 5, 5)), padding=2)
    assert y.chunks[2:] == ((64,) * 4, (64,) * 3)
    from convkit.adapters import image, kernels

    expected = image.filter(a, kernels.kernel("box"), backend="numpy")
    out = zarr.open_array(str(tmp_path / "o.zarr"), mode="r")
    assert out.chunks == (1, 64, 64)
    np.testing.assert_allclose(out[...], expected, atol=1e-6)


def test_save_array_writes_lazy_and_numpy_arrays(tmp_path: Path) -> None:
    from convkit.adapters.arrays import open_array, save_array

    a = np.arange(60.0).reshape(6, 10)
    lazy = ck.conv(da.from_array(a[None, None], chunks=(1, 1, 4, 3)), np.ones((1, 1, 3, 3)))
    save_array(lazy[0, 0], tmp_path / "lazy.zarr")
    save_array(lazy[0, 0], tmp_path / "lazy.npy")
    save_array(a, tmp_path / "eager.zarr", chunks=(4, 4))
    expected = ck.conv(a[None, None], np.ones((1, 1, 3, 3)), backend="numpy")[0, 0]
    np.testing.assert_allclose(open_array(tmp_path / "lazy.zarr")[...], expected)
    np.testing.assert_allclose(open_array(tmp_path / "lazy.npy"), expected)
    assert open_array(tmp_path / "eager.zarr").chunks == (4, 4)
    with pytest.raises(FileExistsError):
        save_array(a, tmp_path / "eager.zarr", overwrite=False)
    with pytest.raises(ValueError, match=r"unsupported array file"):
        save_array(a, tmp_path / "a.tif")
    with pytest.raises(ValueError, match=r"chunks=\(4,\) must be one positive int per axis"):
        save_array(a, tmp_path / "b.zarr", chunks=(4,))
    with pytest.raises(ValueError, match=r"chunks=\(0, 4\) must be one positive int"):
        save_array(a, tmp_path / "b.zarr", chunks=(0, 4))
    with pytest.raises(ValueError, match=r"only a Zarr store has chunks"):
        save_array(a, tmp_path / "b.npy", chunks=(4, 4))
    assert _entries(tmp_path) == ["eager.zarr", "lazy.npy", "lazy.zarr"]


def test_filter_file_band_bytes_is_deprecated(tmp_path: Path) -> None:
    from convkit.adapters import arrays

    np.save(tmp_path / "in.npy", np.ones((8, 8), dtype=np.float32))
    with pytest.warns(DeprecationWarning, match=r"band_bytes=\.\.\.\) is deprecated"):
        arrays.filter_file(tmp_path / "in.npy", tmp_path / "o.npy", np.ones((3, 3)), band_bytes=64)
    assert np.load(tmp_path / "o.npy").shape == (8, 8)


def _entries(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_a_failure_on_a_cluster_leaves_no_output(
    cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lc, _ = cluster
    a = np.random.default_rng(16).random((512, 64)).astype(np.float32)
    _zarr_input(tmp_path / "in.zarr", a, (32, 64))
    sorted((tmp_path / "in.zarr").rglob("c/*/*"))[5].write_bytes(b"not a zarr chunk")
    _zarr_input(tmp_path / "out.zarr", np.full((4, 4), 7.0, dtype=np.float32), (4, 4))
    monkeypatch.setenv("CONVKIT_DASK_SCHEDULER", lc.scheduler_address)
    args = ["--kernel", "box", "--backend", "dask", "--overwrite"]
    assert _filter(tmp_path / "in.zarr", tmp_path / "out.zarr", *args) == 1
    time.sleep(0.5)  # a straggling write would recreate its directory by now
    assert _entries(tmp_path) == ["in.zarr", "out.zarr"]
    assert (
        zarr.open_array(str(tmp_path / "out.zarr"))[...].tolist() == np.full((4, 4), 7.0).tolist()
    )


def test_a_killed_worker_with_no_retries_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from convkit.adapters import arrays

    a = np.random.default_rng(17).random((1536, 1536)).astype(np.float32)
    _zarr_input(tmp_path / "in.zarr", a, (192, 192))
    _zarr_input(tmp_path / "out.zarr", np.full((4, 4), 7.0, dtype=np.float32), (4, 4))
    kernel = np.full((15, 15), 1 / 225)
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",  # any free port: the module's cluster holds 8787
            memory_limit="1GiB",
        ) as lc,
        distributed.Client(lc, set_as_default=False) as client,
    ):
        monkeypatch.setenv("CONVKIT_DASK_SCHEDULER", lc.scheduler_address)
        errors: list[BaseException] = []

        def write() -> None:
            try:
                with ck.use_backend("dask", inner="numpy"):
                    arrays.filter_file(
                        tmp_path / "in.zarr", tmp_path / "out.zarr", kernel, backend="dask"
                    )
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=write)
        thread.start()
        _kill_a_busy_worker(client, "store-map", lambda: not thread.is_alive())
        thread.join(120)
    assert len(errors) == 1 and isinstance(errors[0], distributed.KilledWorker), errors
    assert _entries(tmp_path) == ["in.zarr", "out.zarr"]
    assert (
        zarr.open_array(str(tmp_path / "out.zarr"))[...].tolist() == np.full((4, 4), 7.0).tolist()
    )


def test_filter_rejects_bad_array_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "v.npy", np.ones(5))
    assert _filter(tmp_path / "v.npy", tmp_path / "o.zarr", "--kernel", "box") == 1
    assert (
        "expected an array of shape (H, W) or (C, H, W); got shape (5,)" in capsys.readouterr().err
    )
    assert _filter(tmp_path / "none.zarr", tmp_path / "o.zarr", "--kernel", "box") == 1
    assert "none.zarr: no such Zarr store" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists()


def test_a_zarr_array_is_wrapped_in_its_own_chunks(tmp_path: Path) -> None:
    from convkit_dask import DaskBackend

    _zarr_input(tmp_path / "a.zarr", np.ones((300, 200), dtype=np.float32), (64, 50))
    z = zarr.open_array(str(tmp_path / "a.zarr"), mode="r")
    wrapped = DaskBackend().asarray(z, "float32", {})
    assert wrapped.chunksize == (64, 50)
    assert DaskBackend().asarray(z, "float32", {"chunks": 100}).chunksize == (100, 100)
