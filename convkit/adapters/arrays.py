"""Arrays on disk in and out: ``.npy`` files (read as a memory map) and Zarr stores.

:func:`filter_file` filters a ``(H, W)`` or ``(C, H, W)`` array with a 2-d kernel as
:func:`convkit.adapters.image.filter` does, without reading the array first: the
array is handed, as it lies on disk, to the selected backend's ``asarray``. A chunked
backend (``dask``) wraps it lazily, so its result is lazy too and is computed and written
one band of rows at a time; any other backend reads it into memory. The output is
written to a temporary sibling and moved into place only when complete.
"""

from __future__ import annotations

import contextlib
import math
import os
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


def filter_file(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    kernel: Any,
    *,
    padding_mode: str = "reflect",
    backend: str | None = None,
    band_bytes: int = 64 << 20,
    overwrite: bool = True,
) -> tuple[int, ...]:
    """Filter the ``(H, W)`` or ``(C, H, W)`` array in ``source`` (``.npy``/``.zarr``)
    with the 2-d ``kernel`` (a convolution, ``padding="same"``) into ``target``
    (``.npy``/``.zarr``); returns the array's shape. Results are float32 for integer
    input, else the input's dtype. A lazy result is computed one band of rows (about
    ``band_bytes``, whole output chunks) at a time, so memory holds one band. The
    output is written atomically (:mod:`convkit.fileio`); with ``overwrite=False`` an
    existing ``target`` is refused with :class:`FileExistsError`.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(d / "in.npy", np.ones((4, 5)))
    >>> filter_file(d / "in.npy", d / "out.npy", np.full((3, 3), 1 / 9))
    (4, 5)
    >>> np.load(d / "out.npy").round(6).min()
    np.float64(1.0)
    """
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
    chunks = _out_chunks(arr, np.dtype(dtype).itemsize)
    bands = _bands(tuple(arr.shape), chunks, np.dtype(dtype).itemsize, band_bytes)
    with _writer(out, tuple(arr.shape), dtype, chunks, overwrite) as write:
        for rows in bands:
            band = y[(..., rows, slice(None))]
            if owner is not None and owner.owns(band):
                band = owner.to_numpy(band)
            write(rows, np.asarray(band, dtype=dtype))
    return tuple(arr.shape)


def _out_chunks(arr: Any, itemsize: int) -> tuple[int, ...]:
    """The input's Zarr chunks, or about 16 MiB tiles."""
    chunks = getattr(arr, "chunks", None)
    if isinstance(chunks, tuple) and all(isinstance(c, int) for c in chunks):
        return chunks
    side = max(1, int(math.sqrt((16 << 20) / itemsize)))
    lead = (1,) if len(arr.shape) == 3 else ()
    return (*lead, *(min(n, side) for n in arr.shape[-2:]))


def _bands(
    shape: tuple[int, ...], chunks: tuple[int, ...], itemsize: int, band_bytes: int
) -> list[slice]:
    """Row ranges of whole output chunks, each about ``band_bytes`` (at least one chunk)."""
    row_bytes = math.prod(shape) // shape[-2] * itemsize
    step = chunks[-2] * max(1, band_bytes // max(1, row_bytes * chunks[-2]))
    return [slice(r, min(r + step, shape[-2])) for r in range(0, shape[-2], step)]


@contextlib.contextmanager
def _writer(
    out: Path, shape: tuple[int, ...], dtype: str, chunks: tuple[int, ...], overwrite: bool = True
) -> Any:
    """A ``write(rows, band)`` function into a temporary output that replaces ``out``
    (through :mod:`convkit.fileio`) only when the block exits without an error."""
    if out.suffix.lower() == ".zarr":
        import zarr

        with atomic_directory(out, overwrite=overwrite) as tmp:
            store = zarr.create_array(str(tmp), shape=shape, dtype=dtype, chunks=chunks)

            def write_zarr(rows: slice, band: np.ndarray) -> None:
                store[(..., rows, slice(None))] = band

            yield write_zarr
        return
    with atomic_path(out, overwrite=overwrite) as name:
        mm = np.lib.format.open_memmap(name, mode="w+", dtype=dtype, shape=shape)

        def write_npy(rows: slice, band: np.ndarray) -> None:
            mm[(..., rows, slice(None))] = band

        yield write_npy
        mm.flush()
