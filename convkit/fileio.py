"""Atomic file output: a file appears complete under its name, or not at all.

Every writer in convkit goes through :func:`atomic_output` (an open file),
:func:`atomic_path` (a file name) or :func:`atomic_directory` (a directory such as a
Zarr store): the output is written to a temporary sibling, flushed to disk, renamed
over the target in one step, and the directory flushed too.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[IO[bytes]]:
    """Open a temporary file beside ``path`` for writing; on success it replaces
    ``path`` in one step, on failure it is removed and ``path`` is left as it was.

    The data is flushed to disk (``fsync``) before the rename, and the directory after
    it, so after a crash ``path`` holds the old content or the new, never a torn file.
    A symbolic link at ``path`` is written through, as ``cp`` does: the file it points
    to is replaced and the link kept. With ``overwrite=False`` an existing ``path`` is
    refused with :class:`FileExistsError`, checked again in the final, atomic step. Only
    the last step, flushing the directory, can fail after the rename: its error is
    raised with the new file in place (a file system that cannot flush directories is
    passed over).

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_output(target) as f:
    ...     _ = f.write(b"complete")
    >>> target.read_bytes()
    b'complete'
    """
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
        yield f


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """The name of a temporary file beside ``path``, for writers that want a file name
    rather than an open file (a memory map, a library's ``save(filename)``); on success
    it replaces ``path`` as :func:`atomic_output` does, on failure it is removed.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("complete")
    >>> target.read_text()
    'complete'
    """
    target = write_target(path)
    _check_parent(path, target)
    if not overwrite and os.path.lexists(target):
        raise _exists(path)
    if target.is_dir():
        raise IsADirectoryError(f"{path} is a directory; a file cannot replace it")
    # the temporary keeps the target's extension, for writers that go by it (np.save)
    fd, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=f".partial{target.suffix}"
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, _mode_for(target))  # mkstemp's 0600 is for the temporary only
        _place_file(tmp, target, path, overwrite)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(target.parent)


def write_target(path: str | os.PathLike[str]) -> Path:
    """Where a write to ``path`` goes: ``path`` itself, or, when it is a symbolic link,
    the path the link resolves to, as ``cp`` writes through a link; like ``open``, a
    link to a missing file is written through too, creating the file it names. A loop
    of links is an ``OSError`` that says so.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "link").symlink_to("real.txt")
    >>> write_target(d / "link") == (d / "real.txt").resolve()
    True
    """
    given = Path(path)
    if not given.is_symlink():
        return given
    try:
        return Path(os.path.realpath(given, strict=True))
    except FileNotFoundError:
        return Path(os.path.realpath(given))  # a dangling link: create what it names
    except OSError as exc:  # a loop of links, or one that cannot be read
        raise OSError(
            f"{given} is a symbolic link that cannot be followed ({exc.strerror})"
        ) from exc


def _check_parent(given: str | os.PathLike[str], target: Path) -> None:
    """A clear error for a target whose directory is missing (rather than one naming the
    temporary file that could not be created there)."""
    if not target.parent.is_dir():
        where = "" if Path(given) == target else f" (where the link {given} points)"
        raise FileNotFoundError(
            f"cannot write {target}{where}: the directory {target.parent} does not exist"
        )


def _exists(path: str | os.PathLike[str]) -> FileExistsError:
    return FileExistsError(f"{path} already exists; not replacing it (overwrite=False)")


def _place_file(tmp: Path, target: Path, given: str | os.PathLike[str], overwrite: bool) -> None:
    """Move the finished ``tmp`` to ``target`` in one step."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # fails, atomically, when target exists
    except FileExistsError:
        raise _exists(given) from None
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(target):
            raise _exists(given) from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def _fsync_file(path: Path) -> None:
    """Flush a file's data and metadata to the disk."""
    fd = os.open(path, os.O_RDWR)  # Windows wants write access to flush
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    """Flush a directory's entries (a rename in it) to the disk, where the platform and
    file system can; a file system that cannot (``EINVAL``) is passed over."""
    if os.name == "nt":  # directories cannot be opened there; NTFS journals renames
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Flush every file and directory under ``root`` (``root`` included) to the disk."""
    for folder, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            _fsync_file(Path(folder, name))
        _fsync_directory(Path(folder))


def _mode_for(target: Path) -> int:
    """The permissions an ordinary new file would get, or the replaced file's own."""
    try:
        return target.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Create a temporary directory beside ``path`` to fill; on success it takes the
    place of ``path`` (an existing directory there is replaced), on failure it is
    removed and ``path`` is left as it was.

    Every file and directory of the new tree is flushed to disk (``fsync``) before it
    is moved into place, and the parent directory after. An existing ``path`` is
    swapped with the new directory in one step where the system can (Linux's
    ``renameat2(RENAME_EXCHANGE)``), so at every instant ``path`` is the complete old
    directory or the complete new one; elsewhere the old one is moved aside first and
    moved back if the new one cannot be put in its place. If any step fails, the old
    one is what remains at ``path``. A symbolic link at ``path`` is written through
    (the directory it points to is replaced, the link kept); with ``overwrite=False``
    an existing ``path`` is refused with :class:`FileExistsError`.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.zarr"
    >>> with atomic_directory(target) as tmp:
    ...     _ = (tmp / "part").write_text("complete")
    >>> (target / "part").read_text()
    'complete'
    """
    target = write_target(path)
    _check_parent(path, target)
    if not overwrite and os.path.lexists(target):
        raise _exists(path)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 is for the temporary only
        _fsync_tree(tmp)
        if not os.path.lexists(target):
            _place_new(tmp, target, path, overwrite)
        elif not overwrite:
            raise _exists(path)
        elif not _exchange_in(tmp, target):
            _replace_in_two_steps(tmp, target)
    except _PreviousKeptError:
        raise
    except BaseException:
        _remove(tmp)
        raise
    _remove(tmp)  # after an exchange, the previous directory (or file)


def _remove(path: Path) -> None:
    """Delete a temporary tree or file, quietly: it is no one's data any more."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _place_new(tmp: Path, target: Path, given: str | os.PathLike[str], overwrite: bool) -> None:
    """Move the finished directory ``tmp`` to the free name ``target``; if the move
    cannot be flushed to disk, move it back (``target`` stays free)."""
    if overwrite:
        os.replace(tmp, target)
    else:
        try:
            renamed = _rename_noreplace(tmp, target)
        except FileExistsError:
            raise _exists(given) from None
        if not renamed:
            if os.path.lexists(target):
                raise _exists(given)
            os.replace(tmp, target)
    try:
        _fsync_directory(target.parent)
    except BaseException:
        os.replace(target, tmp)
        raise


def _exchange_in(tmp: Path, target: Path) -> bool:
    """Swap the finished directory ``tmp`` with the existing ``target`` in one step, so
    that ``tmp`` then holds the old directory; if the swap cannot be flushed to disk,
    swap back. ``False``, with nothing changed, where the system cannot swap."""
    if not _rename_exchange(tmp, target):
        return False
    try:
        _fsync_directory(target.parent)
    except BaseException as exc:
        try:
            restored = _rename_exchange(tmp, target)
            why = "" if restored else "the system refused a second exchange"
        except OSError as restore:
            why = str(restore)
        if why:
            raise _PreviousKeptError(
                f"{target}: the new directory could not be flushed to disk ({exc}) nor the "
                f"previous one put back ({why}); the previous directory is kept at {tmp}"
            ) from exc
        raise
    return True


class _PreviousKeptError(OSError):
    """The previous directory could not be put back and lies in the temporary one,
    which the clean-up must then leave alone."""


def _replace_in_two_steps(tmp: Path, target: Path) -> None:
    """Where directories cannot be exchanged: move the old one aside, the new one in;
    on any failure, the new one back out and the old one back in."""
    aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
    old = aside / target.name
    try:
        os.replace(target, old)
    except BaseException:
        os.rmdir(aside)
        raise
    placed = False
    try:
        os.replace(tmp, target)
        placed = True
        _fsync_directory(target.parent)
    except BaseException as exc:
        try:
            if placed:
                os.replace(target, tmp)
            os.replace(old, target)
        except OSError as restore:
            raise OSError(
                f"{target}: could not replace it ({exc}) nor put the previous directory "
                f"back ({restore}); the previous directory is kept at {old}"
            ) from exc
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """glibc's ``renameat2``, or ``None`` off Linux or where the C library lacks it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function: Callable[..., int] = libc.renameat2
    except (OSError, AttributeError):
        return None
    return function


def _renameat2_call(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2(src, dst, flags)``: ``True`` when done, ``False`` when this system or
    file system does not offer ``flags`` (nothing changed then), else an ``OSError``."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    if err == errno.EEXIST:
        raise FileExistsError(err, os.strerror(err), str(src), None, str(dst))
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def _rename_exchange(a: Path, b: Path) -> bool:
    """Swap the entries ``a`` and ``b`` in one step; ``False`` where the system cannot."""
    return _renameat2_call(a, b, _RENAME_EXCHANGE)


def _rename_noreplace(src: Path, dst: Path) -> bool:
    """Rename ``src`` to ``dst`` unless ``dst`` exists (``FileExistsError``), in one
    step; ``False`` where the system cannot."""
    return _renameat2_call(src, dst, _RENAME_NOREPLACE)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
