"""Arrays on disk in and out: ``.npy`` files (read as a memory map) and Zarr stores.

:func:`filter_file` filters a ``(H, W)`` or ``(C, H, W)`` array with a 2-d kernel as
:func:`convkit.adapters.image.filter` does, without reading the array first: the
array is handed, as it lies on disk, to the selected backend's ``asarray``. A chunked
backend (``dask``) wraps it lazily, so its result is lazy too and is computed and written
one band of rows at a time; any other backend reads it into memory. The output is
written to a temporary sibling and moved into place only when complete.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from convkit import checks, ops, plugins
from convkit.fileio import atomic_directory, atomic_path

FORMATS = (".zarr", ".npy")


def open_array(path: str | os.PathLike[str]) -> Any:
    """The array stored at ``path`` without reading it: a read-only NumPy memmap for
    ``.npy``, a ``zarr.Array`` for a ``.zarr`` store. A missing file or store is a
    :class:`FileNotFoundError` naming it.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.npy"
    >>> np.save(p, np.arange(6.0).reshape(2, 3))
    >>> open_array(p).shape
    (2, 3)
    """
    source = Path(path)
    suffix = source.suffix.lower()
    if suffix == ".npy":
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such file")
        return np.load(source, mmap_mode="r")
    if suffix == ".zarr":
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such Zarr store")
        import zarr

        return zarr.open_array(str(source), mode="r")
    raise ValueError(f"{source}: unsupported array file; use one of {', '.join(FORMATS)}")


def save_array(
    array: Any,
    path: str | os.PathLike[str],
    *,
    chunks: tuple[int, ...] | None = None,
    overwrite: bool = True,
) -> None:
    """Write ``array`` (a NumPy array, or any backend's, lazy ones included) to a
    ``.npy`` file or a ``.zarr`` store, atomically (:mod:`convkit.fileio`): a failure
    leaves no output and an existing ``path`` as it was; with ``overwrite=False`` an
    existing ``path`` is refused with :class:`FileExistsError`.

    The array's backend writes it (:meth:`convkit.backend.Backend.store`): the dask
    backend computes a lazy result into a Zarr store on its scheduler, each block
    written by the worker that computed it. ``chunks`` are the Zarr store's, one
    positive size per axis (default: the array's own chunk size, the largest chunk of
    a Dask array, else about 16 MiB tiles over the last two axes); a ``.npy`` file has
    none.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> save_array(np.arange(6.0).reshape(2, 3), d / "a.zarr", chunks=(1, 3))
    >>> open_array(d / "a.zarr")[...].tolist()
    [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """
    from convkit import dispatch

    out = Path(path)
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"{out}: unsupported array file; use one of {', '.join(FORMATS)}")
    array = dispatch.as_array(array)
    owner = dispatch.owner_of(plugins.host(), array, "array")
    shape, dtype = tuple(int(n) for n in array.shape), owner.dtype_name(array)
    if chunks is not None:
        if out.suffix.lower() != ".zarr":
            raise ValueError(f"chunks={chunks!r}: only a Zarr store has chunks, not {out}")
        if len(chunks) != len(shape) or not all(
            isinstance(c, int | np.integer) and c > 0 for c in chunks
        ):
            raise ValueError(
                f"chunks={chunks!r} must be one positive int per axis of the array's shape {shape}"
            )
    if out.suffix.lower() == ".zarr":
        import zarr

        store_chunks = _store_chunks(array, np.dtype(dtype).itemsize, chunks)
        with atomic_directory(out, overwrite=overwrite) as tmp:
            target = zarr.create_array(str(tmp), shape=shape, dtype=dtype, chunks=store_chunks)
            owner.store(array, target)
        return
    with atomic_path(out, overwrite=overwrite) as name:
        mm = np.lib.format.open_memmap(name, mode="w+", dtype=dtype, shape=shape)
        owner.store(array, mm)
        mm.flush()
        del mm


def filter_file(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    kernel: Any,
    *,
    padding_mode: str = "reflect",
    backend: str | None = None,
    overwrite: bool = True,
    band_bytes: int | None = None,
) -> tuple[int, ...]:
    """Filter the ``(H, W)`` or ``(C, H, W)`` array in ``source`` (``.npy``/``.zarr``)
    with the 2-d ``kernel`` (a convolution, ``padding="same"``) into ``target``
    (``.npy``/``.zarr``); returns the array's shape. Results are float32 for integer
    input, else the input's dtype. The output keeps a Zarr input's chunks and is
    written by :func:`save_array`: with the dask backend, into Zarr, by the workers.
    ``band_bytes`` is deprecated and ignored (a Zarr output is no longer written in bands).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(d / "in.npy", np.ones((4, 5)))
    >>> filter_file(d / "in.npy", d / "out.npy", np.full((3, 3), 1 / 9))
    (4, 5)
    >>> np.load(d / "out.npy").round(6).min()
    np.float64(1.0)
    """
    if band_bytes is not None:
        warnings.warn(
            "filter_file(band_bytes=...) is deprecated and ignored: the output is written "
            "by save_array",
            DeprecationWarning,
            stacklevel=2,
        )
    arr = open_array(source)
    out = Path(target)
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"{out}: the output of an array file must be one of {', '.join(FORMATS)}")
    if len(arr.shape) not in (2, 3):
        raise ValueError(
            f"{source}: expected an array of shape (H, W) or (C, H, W); got shape {arr.shape}"
        )
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2:
        raise ValueError(f"an image kernel must be 2-d; got shape {k.shape}")
    dtype = str(arr.dtype) if np.dtype(arr.dtype).kind == "f" else "float32"
    sel = ops.get_backend(backend)
    checks.check_selection(sel)
    owner = None if sel.name == "auto" else plugins.host().registry.get(sel.name)
    x = np.asarray(arr, dtype=dtype) if owner is None else owner.asarray(arr, dtype, sel.options)
    planes = x[None, None] if len(arr.shape) == 2 else x[:, None]
    weight = np.ascontiguousarray(k[::-1, ::-1][None, None], dtype=dtype)
    y = ops.conv(planes, weight, padding="same", padding_mode=padding_mode, backend=backend)
    y = y[0, 0] if len(arr.shape) == 2 else y[:, 0]
    zarr_out = out.suffix.lower() == ".zarr"
    chunks = _store_chunks(arr, np.dtype(dtype).itemsize, None) if zarr_out else None
    save_array(y, out, chunks=chunks, overwrite=overwrite)
    return tuple(arr.shape)


def _store_chunks(arr: Any, itemsize: int, chunks: tuple[int, ...] | None) -> tuple[int, ...]:
    """``chunks``, else the array's own regular chunks (a Zarr array's, a Dask array's
    largest), else about 16 MiB tiles over the last two axes."""
    if chunks is not None:
        return tuple(int(c) for c in chunks)
    own = getattr(arr, "chunksize", None) or getattr(arr, "chunks", None)
    if (
        isinstance(own, tuple)
        and len(own) == len(arr.shape)
        and all(isinstance(c, int) for c in own)
    ):
        return own
    side = max(1, int(math.sqrt((16 << 20) / itemsize)))
    shape = tuple(arr.shape)
    return (*(1,) * (len(shape) - 2), *(max(1, min(n, side)) for n in shape[-2:]))
