"""Atomic output: every writer flushes a temporary sibling, renames it over the target and
flushes the directory; a failure at any step leaves the old file or directory in place;
symbolic links are written through."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from convkit import fileio
from convkit.fileio import atomic_directory, atomic_output, atomic_path

HAS_EXCHANGE = fileio._renameat2() is not None


def _eio(*_args: Any, **_kwargs: Any) -> None:
    raise OSError(errno.EIO, "injected failure")


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _old_store(path: Path) -> None:
    path.mkdir()
    (path / "data").write_text("old")
    (path / "sub").mkdir()
    (path / "sub" / "chunk").write_text("old chunk")


def _fill(folder: Path, text: str = "new") -> None:
    (folder / "data").write_text(text)


class Events:
    """What the file system was asked to do, in order: ``("fsync", inode)`` and
    ``("rename", target)`` (a replace, or an exchange that happened), each calling the
    real function."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log: list[tuple[str, object]] = []
        real_fsync, real_replace = os.fsync, os.replace
        real_exchange = fileio._rename_exchange

        def fsync(fd: int) -> None:
            self.log.append(("fsync", os.fstat(fd).st_ino))
            real_fsync(fd)

        def replace(src: Any, dst: Any, **kwargs: Any) -> None:
            real_replace(src, dst, **kwargs)
            self.log.append(("rename", os.path.abspath(dst)))

        def exchange(a: Path, b: Path) -> bool:
            done = real_exchange(a, b)
            if done:
                self.log.append(("rename", os.path.abspath(b)))
            return done

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(fileio, "_rename_exchange", exchange)

    def assert_committed(self, target: Path) -> None:
        """``target``'s content was flushed before it was renamed into place, and its
        directory after."""
        renamed = ("rename", os.path.abspath(target))
        assert renamed in self.log, f"{target} was not renamed into place: {self.log}"
        at = len(self.log) - 1 - self.log[::-1].index(renamed)
        assert ("fsync", target.stat().st_ino) in self.log[:at], "content not flushed first"
        assert ("fsync", target.parent.stat().st_ino) in self.log[at + 1 :], (
            "directory not flushed after the rename"
        )


# -- files ---------------------------------------------------------------------------------


def test_a_file_is_flushed_then_renamed_then_its_directory_flushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = Events(monkeypatch)
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    target.chmod(0o640)
    with atomic_output(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the replaced file's permissions
    events.assert_committed(target)
    assert _listing(tmp_path) == ["out.bin"]


def test_atomic_path_hands_out_a_name_for_writers_that_want_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = Events(monkeypatch)
    target = tmp_path / "a.npy"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".a.npy.")
        np.save(tmp, np.arange(3))  # a name with the suffix: np.save adds none
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    events.assert_committed(target)
    assert _listing(tmp_path) == ["a.npy"]


@pytest.mark.parametrize("step", ["write", "fsync", "chmod", "replace"])
def test_a_failed_step_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    if step != "write":
        monkeypatch.setattr(os, step, _eio)
    with pytest.raises(OSError, match="injected failure"), atomic_output(target) as f:
        f.write(b"half")
        if step == "write":
            _eio()
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert _listing(tmp_path) == ["out.bin"]


def test_a_failed_directory_flush_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the rename only the directory flush can fail: the error is raised (the new
    file is in place, its rename not known to be on disk)."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            _eio()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="injected failure"), atomic_output(tmp_path / "x") as f:
        f.write(b"new")
    assert _listing(tmp_path) == ["x"]


def test_a_file_system_without_directory_flush_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with atomic_output(tmp_path / "x") as f:
        f.write(b"new")
    assert (tmp_path / "x").read_bytes() == b"new"


def test_overwrite_false_refuses_an_existing_file_even_one_that_appears_meanwhile(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with (
        pytest.raises(FileExistsError, match=r"out.bin already exists"),
        atomic_output(target, overwrite=False) as f,
    ):
        f.write(b"new")
    target.unlink()
    with (
        pytest.raises(FileExistsError, match=r"out.bin already exists"),
        atomic_output(target, overwrite=False) as f,
    ):
        f.write(b"new")
        target.write_bytes(b"someone else's")  # appears before the final step
    assert target.read_bytes() == b"someone else's"
    assert _listing(tmp_path) == ["out.bin"]
    with atomic_output(tmp_path / "fresh", overwrite=False) as f:
        f.write(b"new")
    assert (tmp_path / "fresh").read_bytes() == b"new"


def test_a_directory_is_not_replaced_by_a_file(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with (
        pytest.raises(IsADirectoryError, match=r"out is a directory; a file cannot replace it"),
        atomic_output(tmp_path / "out") as f,
    ):
        f.write(b"new")
    assert _listing(tmp_path) == ["out"]


# -- symbolic links ----------------------------------------------------------------------


def test_a_symlinked_file_is_written_through(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "data.bin"
    real.write_bytes(b"old")
    link = tmp_path / "out.bin"
    link.symlink_to(Path("real") / "data.bin")  # relative, as ln -s makes them
    with atomic_output(link) as f:
        f.write(b"new")
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "data.bin")
    assert real.read_bytes() == b"new"
    assert _listing(tmp_path) == ["out.bin", "real"]
    assert _listing(tmp_path / "real") == ["data.bin"]


def test_a_chain_of_links_and_a_dangling_link_are_written_through(tmp_path: Path) -> None:
    real = tmp_path / "real.bin"
    (tmp_path / "b").symlink_to(real)  # dangling: the write creates what it names
    (tmp_path / "a").symlink_to(tmp_path / "b")
    with atomic_output(tmp_path / "a") as f:
        f.write(b"new")
    assert real.read_bytes() == b"new"
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()


def test_a_link_loop_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with (
        pytest.raises(OSError, match=r"a is a symbolic link that cannot be followed"),
        atomic_output(tmp_path / "a") as f,
    ):
        f.write(b"new")
    assert _listing(tmp_path) == ["a", "b"]


def test_a_symlinked_directory_is_written_through(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    _old_store(tmp_path / "real" / "store.zarr")
    link = tmp_path / "out.zarr"
    link.symlink_to(Path("real") / "store.zarr", target_is_directory=True)
    with atomic_directory(link) as tmp:
        _fill(tmp)
    assert link.is_symlink()
    assert (tmp_path / "real" / "store.zarr" / "data").read_text() == "new"
    assert _listing(tmp_path / "real" / "store.zarr") == ["data"]
    assert _listing(tmp_path) == ["out.zarr", "real"]
    assert _listing(tmp_path / "real") == ["store.zarr"]


# -- directories ---------------------------------------------------------------------------


def test_a_new_directory_is_flushed_and_placed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = Events(monkeypatch)
    target = tmp_path / "out.zarr"
    with atomic_directory(target) as tmp:
        _fill(tmp)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "chunk").write_text("c")
    assert (target / "data").read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~fileio._umask()
    events.assert_committed(target)
    assert ("fsync", (target / "sub" / "chunk").stat().st_ino) in events.log
    assert _listing(tmp_path) == ["out.zarr"]


@pytest.mark.skipif(not HAS_EXCHANGE, reason="renameat2(RENAME_EXCHANGE) is Linux's")
def test_an_existing_directory_is_exchanged_never_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before and after every rename the target is a complete directory, old or new."""
    target = tmp_path / "out.zarr"
    _old_store(target)
    seen: list[str] = []

    def check() -> None:
        data = (target / "data").read_text()
        assert data == "new" or (target / "sub" / "chunk").read_text() == "old chunk"
        seen.append(data)

    real_replace, real_exchange = os.replace, fileio._rename_exchange

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        check()
        real_replace(src, dst, **kwargs)
        check()

    def exchange(a: Path, b: Path) -> bool:
        check()
        done = real_exchange(a, b)
        check()
        return done

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(fileio, "_rename_exchange", exchange)
    with atomic_directory(target) as tmp:
        _fill(tmp)
    assert seen == ["old", "new"]  # one exchange, no two-step rename
    assert _listing(target) == ["data"]
    assert _listing(tmp_path) == ["out.zarr"]


def _fail_nth(monkeypatch: pytest.MonkeyPatch, name: str, n: int, module: Any = os) -> None:
    """Make the ``n``-th call (1-based) of ``module.name`` fail; the others go through."""
    real = getattr(module, name)
    calls = iter(range(1, 1_000_000))

    def fake(*args: Any, **kwargs: Any) -> Any:
        if next(calls) == n:
            _eio()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, fake)


def _fail_directory_fsync(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    real_fsync, inode = os.fsync, folder.stat().st_ino

    def fsync(fd: int) -> None:
        if os.fstat(fd).st_ino == inode:
            _eio()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def _no_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    """The system as one without renameat2: the two-rename fallback runs."""
    monkeypatch.setattr(fileio, "_rename_exchange", lambda a, b: False)


@pytest.mark.parametrize(
    "step",
    [
        "fill",  # the writer fails
        "fsync-tree",  # flushing the new tree fails
        "replace-aside",  # fallback: moving the old directory aside fails
        "replace-in",  # fallback: moving the new directory in fails
        "fsync-parent",  # fallback: flushing the parent after moving in fails
        "exchange",  # the exchange itself fails
        "exchange-fsync-parent",  # flushing the parent after the exchange fails
    ],
)
def test_any_failed_step_leaves_the_old_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    target = tmp_path / "out.zarr"
    _old_store(target)
    if step.startswith("exchange"):
        if not HAS_EXCHANGE:
            pytest.skip("renameat2(RENAME_EXCHANGE) is Linux's")
        if step == "exchange":
            monkeypatch.setattr(fileio, "_rename_exchange", _eio)
        else:
            _fail_directory_fsync(monkeypatch, tmp_path)
    else:
        _no_exchange(monkeypatch)
        if step == "fsync-tree":
            _fail_nth(monkeypatch, "fsync", 1)
        elif step == "replace-aside":
            _fail_nth(monkeypatch, "replace", 1)
        elif step == "replace-in":
            _fail_nth(monkeypatch, "replace", 2)
        elif step == "fsync-parent":
            _fail_directory_fsync(monkeypatch, tmp_path)
    with pytest.raises(OSError, match="injected failure"), atomic_directory(target) as tmp:
        _fill(tmp)
        if step == "fill":
            _eio()
    monkeypatch.undo()
    assert (target / "data").read_text() == "old"
    assert (target / "sub" / "chunk").read_text() == "old chunk"
    assert _listing(tmp_path) == ["out.zarr"]


def test_the_fallback_replaces_the_old_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_exchange(monkeypatch)
    target = tmp_path / "out.zarr"
    _old_store(target)
    with atomic_directory(target) as tmp:
        _fill(tmp)
    assert _listing(target) == ["data"] and (target / "data").read_text() == "new"
    assert _listing(tmp_path) == ["out.zarr"]


def test_a_restore_that_fails_too_says_where_the_old_directory_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_exchange(monkeypatch)
    _fail_nth(monkeypatch, "replace", 2)  # moving the new one in
    _fail_nth(monkeypatch, "replace", 3)  # and then moving the old one back
    target = tmp_path / "out.zarr"
    _old_store(target)
    with (
        pytest.raises(OSError, match=r"the previous directory is kept at (\S+)") as info,
        atomic_directory(target) as tmp,
    ):
        _fill(tmp)
    kept = Path(str(info.value).rsplit(" ", 1)[-1])
    assert (kept / "data").read_text() == "old"


@pytest.mark.parametrize("exchange", [True, False])
def test_a_file_in_the_way_is_replaced_by_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        _no_exchange(monkeypatch)
    target = tmp_path / "out.zarr"
    target.write_text("a file")
    with atomic_directory(target) as tmp:
        _fill(tmp)
    assert (target / "data").read_text() == "new"
    assert _listing(tmp_path) == ["out.zarr"]


def test_overwrite_false_refuses_an_existing_directory(tmp_path: Path) -> None:
    target = tmp_path / "out.zarr"
    _old_store(target)
    with (
        pytest.raises(FileExistsError, match=r"out.zarr already exists"),
        atomic_directory(target, overwrite=False) as tmp,
    ):
        _fill(tmp)
    assert (target / "data").read_text() == "old"
    fresh = tmp_path / "fresh.zarr"
    with (
        pytest.raises(FileExistsError, match=r"fresh.zarr already exists"),
        atomic_directory(fresh, overwrite=False) as tmp,
    ):
        _fill(tmp)
        _old_store(fresh)  # appears before the final step
    assert (fresh / "data").read_text() == "old"
    assert _listing(tmp_path) == ["fresh.zarr", "out.zarr"]


# -- every writer in convkit ---------------------------------------------------------------


def _write_image(path: Path) -> Path:
    from convkit.adapters import image

    image.save(path / "x.png", np.full((1, 4, 4), 0.5))
    return path / "x.png"


def _write_audio(path: Path) -> Path:
    from convkit.adapters import audio

    audio.save(path / "x.wav", np.zeros((1, 100)), 8000)
    return path / "x.wav"


def _write_npy(path: Path) -> Path:
    from convkit.adapters import arrays

    np.save(path / "in.npy", np.ones((6, 5), dtype=np.float32))
    arrays.filter_file(path / "in.npy", path / "x.npy", np.full((3, 3), 1 / 9))
    return path / "x.npy"


def _write_zarr(path: Path) -> Path:
    pytest.importorskip("zarr")
    from convkit.adapters import arrays

    np.save(path / "in.npy", np.ones((6, 5), dtype=np.float32))
    arrays.filter_file(path / "in.npy", path / "x.zarr", np.full((3, 3), 1 / 9))
    return path / "x.zarr"


def _write_module(path: Path) -> Path:
    from convkit.nn import Conv1d

    Conv1d(1, 1, 3).save(path / "x.npz")
    return path / "x.npz"


def _write_costs(path: Path) -> Path:
    from convkit import calibration
    from convkit.costs import CostModel

    assert calibration.costs_path().parent == path  # CONVKIT_CACHE_DIR, set by the test
    return calibration.save({"numpy:cpu": CostModel()}, {"numpy:cpu": "test"})


def _write_report(path: Path) -> Path:
    from convkit.exercises import Context, Result, write_report

    write_report([Result("n", "N", "fine", "1")], Context(out=path), {"n": 0.1})
    return path / "report.md"


def _write_figure(path: Path) -> Path:
    from convkit.exercises.common import Context, pyplot, save_figure

    save_figure(pyplot().figure(), Context(out=path), "f")
    return path / "figures" / "f.png"


def _write_bench_json(path: Path) -> Path:
    from convkit import bench

    bench.write_json([], 0.0, path / "x.json")
    return path / "x.json"


WRITERS: dict[str, Callable[[Path], Path]] = {
    "image.save": _write_image,
    "audio.save": _write_audio,
    "arrays .npy": _write_npy,
    "arrays .zarr": _write_zarr,
    "nn save": _write_module,
    "calibration.save": _write_costs,
    "exercise report": _write_report,
    "exercise figure": _write_figure,
    "bench json": _write_bench_json,
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_writer_flushes_renames_and_flushes_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    monkeypatch.setenv("CONVKIT_CACHE_DIR", str(tmp_path))
    (tmp_path / "figures").mkdir()
    events = Events(monkeypatch)
    target = WRITERS[writer](tmp_path)
    events.assert_committed(target)
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")], "a temporary left"


@pytest.mark.filterwarnings("ignore:.*costs.json cannot be used")  # the "old" costs.json
@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_writer_keeps_the_old_output_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    monkeypatch.setenv("CONVKIT_CACHE_DIR", str(tmp_path))
    (tmp_path / "figures").mkdir()
    target = WRITERS[writer](tmp_path)  # where it writes: then put an old output there
    if target.is_dir():
        import shutil

        shutil.rmtree(target)
        _old_store(target)
    else:
        target.write_bytes(b"old")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    _no_exchange(monkeypatch)
    monkeypatch.setattr(os, "replace", _eio)
    with pytest.raises(OSError, match="injected failure"):
        WRITERS[writer](tmp_path)
    monkeypatch.undo()
    if target.is_dir():
        assert (target / "data").read_text() == "old"
    else:
        assert target.read_bytes() == b"old"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
