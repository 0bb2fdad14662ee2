"""The ``convkit`` command line.

Why this module is long: it is the argument parser and one short handler per
subcommand (backends, filter, exercises, bench, calibrate, explain), with their help
texts and the shared exit-status rules; each handler only parses and calls the library,
so splitting it would scatter one parser over several files.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from convkit import checks, ops, plugins, selection
from convkit.adapters.image import SCALES
from convkit.backend import Backend, BackendInfo

EXIT_RUNTIME = 1
"""Exit status of a command that failed while running: unreadable input, a file
system error, an output that exists (without ``--overwrite``), a backend failure."""

EXIT_USAGE = 2
"""Exit status of a bad command line or configuration: unknown option or value, an
unknown or unusable backend, a bad config file or environment variable."""

EPILOG = """\
exit status:
  0  success
  1  runtime failure: unreadable input, an existing output without --overwrite, a
     file system error, a backend that failed during the computation
  2  usage or configuration error: bad arguments or values, unknown or unavailable
     backend, bad config file (convkit.toml, pyproject.toml) or CONVKIT_* variable
"""


EXERCISES_BACKEND = "numpy"
"""The backend ``convkit exercises`` runs on when ``--backend`` is not given."""


class UsageError(Exception):
    """A bad argument or configuration: ``convkit`` exits with status 2."""


@contextlib.contextmanager
def _usage() -> Iterator[None]:
    """Inside, a ``ValueError`` or ``TypeError`` is the command line's fault (a
    :class:`UsageError`)."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from exc


def _check_backend(value: str | None) -> selection.Selection:
    """The selection ``--backend value`` (or the configured one) makes, checked usable
    now: an unknown or unavailable backend is a usage error."""
    with _usage():
        sel = ops.get_backend(value)
        try:
            checks.check_selection(sel)
        except checks.BackendUnavailableError as exc:
            raise ValueError(str(exc)) from exc
    return sel


def _backends(args: argparse.Namespace) -> int:
    infos = ops.list_backends()
    registry = plugins.host().registry
    rows = [("backend", "available", "from", "dims", "dtypes", "devices", "precision")]
    for info in infos:
        caps = info.capabilities
        origin = info.distribution or info.plugin
        if info.version:
            origin += f" {info.version}"
        rows.append(
            (
                info.name,
                "yes" if info.available else "no",
                origin,
                caps.describe_ndim(),
                ",".join(caps.dtypes),
                _devices(registry.get(info.name), info),
                ",".join(caps.precisions),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for info in infos:
        if not info.available:
            print(f"\n{info.name}: unavailable: {info.reason}")
            continue
        backend = registry.get(info.name)
        for line in backend.describe() if backend is not None else []:
            print(f"\n{info.name}: {line}")
    disabled = plugins.host().disabled
    if disabled:
        print(f"\ndisabled by CONVKIT_DISABLED_PLUGINS: {', '.join(disabled)}")
    for failure in plugins.failures():
        print(
            f"\nplugin {failure.plugin!r} (distribution {failure.distribution}) failed to "
            f"load: {failure.error}"
        )
        if args.verbose:
            print(failure.traceback)
    active = ops.get_backend()
    print(f"\nactive: {active}")
    if active.name == "auto":
        print(_auto_text(infos))
    try:
        checks.check_selection(active)
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"  but it cannot be used: {exc}")
        return EXIT_USAGE
    return 0


def _auto_text(infos: Sequence[BackendInfo]) -> str:
    """What ``auto`` does, naming the backends that may take host arrays here."""
    hosts = [i.name for i in infos if i.available and i.capabilities.host_arrays]
    return (
        "  auto: per call, the backend and method with the lowest estimated cost\n"
        "    (`convkit explain` shows the estimates). Host arrays (NumPy arrays, CPU tensors\n"
        "    that need no grad) may be computed by any available backend that takes host\n"
        f"    arrays: {', '.join(hosts) or '(none)'}. CUDA tensors, tensors that require grad,\n"
        "    Dask arrays, other plugins' arrays and integer convolve stay with the backend\n"
        "    that owns them."
    )


def _devices(backend: Backend | None, info: BackendInfo) -> str:
    """Declared devices, those absent from this machine marked ``(absent)`` (a kind is
    present when any device of it is: ``cuda`` when ``cuda:0`` is)."""
    declared = info.capabilities.devices
    here = declared
    if backend is not None and info.available:
        try:
            here = backend.devices_here()
        except Exception:  # a broken probe must not break the listing
            here = ()
    kinds = {d.partition(":")[0] for d in here}
    return ",".join(d if d in kinds else f"{d}(absent)" for d in declared)


def _filter(args: argparse.Namespace) -> int:
    import numpy as np

    from convkit.adapters import arrays, audio, image, kernels
    from convkit.padding import PADDING_MODES

    source, target = Path(args.input), Path(args.output)
    formats = {
        "array": sorted(arrays.FORMATS),
        "audio": sorted(audio.FORMATS),
        "image": sorted(image.FORMATS),
    }
    kind = _file_kind(source, formats)
    if kind is None:
        known = [suffix for suffixes in formats.values() for suffix in suffixes]
        raise UsageError(
            f"INPUT {source}: unsupported file type {source.suffix or '(none)'!r}; "
            f"expected one of {', '.join(known)}"
        )
    if _file_kind(target, formats) != kind:
        raise UsageError(
            f"OUTPUT {target}: the output of {kind} input {source} must be one of "
            f"{', '.join(sorted(formats[kind]))}"
        )
    if args.scale is not None and kind != "image":
        raise UsageError(
            f"--scale {args.scale}: scaling applies to image outputs (8-bit PNG/JPEG); "
            f"{target} is {kind}"
        )
    if kind == "audio" and args.padding_mode is not None:
        raise UsageError(
            f"--padding-mode {args.padding_mode}: padding modes apply to images and arrays "
            "only; audio is filtered causally from silence (as scipy.signal.lfilter)"
        )
    padding_mode = "reflect" if args.padding_mode is None else args.padding_mode
    if kind != "audio" and padding_mode not in PADDING_MODES:
        raise UsageError(
            f"--padding-mode {padding_mode!r} is not a padding mode; expected one of "
            f"{', '.join(PADDING_MODES)}"
        )
    _check_backend(args.backend)
    if kind != "audio":
        with _usage():
            k = kernels.kernel(args.kernel, domain="image")
    if kind != "array" and not source.is_file():  # arrays.open_array says it for arrays
        raise FileNotFoundError(f"INPUT {source}: no such file")
    _check_output(source, target, args.overwrite)
    if kind == "array":
        shape = arrays.filter_file(
            source,
            target,
            k,
            padding_mode=padding_mode,
            backend=args.backend,
            overwrite=args.overwrite,
        )
        print(f"{source} {shape} -> {target} with {args.kernel} {k.shape}")
    elif kind == "image":
        img = image.load(source)
        result = image.filter(img, k, padding_mode=padding_mode, backend=args.backend)
        scale = args.scale or "clip"
        scaling = image.save(target, result, scale=scale, overwrite=args.overwrite)
        hint = ""
        if scale == "clip" and scaling.clipped and scaling.low < 0:
            hint = " (the result is signed: --scale minmax or --scale abs keeps it)"
        print(f"{source} {img.shape} -> {target} with {args.kernel} {k.shape}; {scaling}{hint}")
    else:
        data, rate = audio.load(source)
        with _usage():
            taps = kernels.kernel(args.kernel, rate=rate, domain="audio")
        result = audio.fir_filter(data, taps, backend=args.backend)
        clipped = 0
        if target.suffix.lower() != ".ogg":  # PCM holds [-1, 1]: clip, and say how much
            clipped = int(np.count_nonzero(np.abs(result) > 1))
            result = np.clip(result, -1, 1)
        audio.save(target, result, rate, overwrite=args.overwrite)
        note = f"; {clipped} samples beyond full scale clipped to [-1, 1]" if clipped else ""
        print(
            f"{source} {data.shape} at {rate} Hz -> {target} with {args.kernel} "
            f"({len(taps)} taps){note}"
        )
    return 0


def _file_kind(path: Path, formats: dict[str, list[str]]) -> str | None:
    """The kind (a key of ``formats``) that ``path``'s extension names, or ``None``."""
    suffix = path.suffix.lower()
    return next((kind for kind, known in formats.items() if suffix in known), None)


def _check_output(source: Path, target: Path, overwrite: bool) -> None:
    """Refuse an existing ``target`` (a dangling link included) unless ``overwrite``."""
    if overwrite or not os.path.lexists(target):
        return
    if source.exists() and target.exists() and target.resolve() == source.resolve():
        raise FileExistsError(f"OUTPUT {target} is the input; pass --overwrite to replace it")
    raise FileExistsError(f"OUTPUT {target} already exists; pass --overwrite to replace it")


def _exercises(args: argparse.Namespace) -> int:
    from convkit import exercises

    with _usage():
        exercises.check_names(args.only)
    if args.backend is None:
        backend = EXERCISES_BACKEND
        source = f"the command's default (--backend {EXERCISES_BACKEND})"
    else:
        backend, source = args.backend, "--backend"
    _check_backend(backend)
    if args.audio is not None and not Path(args.audio).is_file():
        raise UsageError(f"--audio {args.audio}: no such file")
    results = exercises.run_all(
        args.only,
        backend=backend,
        out=args.out,
        quick=args.quick,
        backend_source=source,
        audio=args.audio,
    )
    print(f"backend: {backend} (from {source})")
    print(exercises.summary(results))
    print(f"\nreport: {Path(args.out) / 'report.md'}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from convkit import bench

    unknown = sorted(set(args.only or []) - {w.name for w in bench.WORKLOADS})
    if unknown:
        raise UsageError(
            f"--only {' '.join(unknown)}: unknown workload(s); expected some of "
            f"{', '.join(w.name for w in bench.WORKLOADS)}"
        )
    if args.rounds is not None and args.rounds < 1:
        raise UsageError(f"--rounds {args.rounds}: expected a positive number of rounds")
    with _usage():  # a device that is not there is the arguments' fault
        bench.Device(args.device)
    rows, peak = bench.run(
        args.only,
        quick=args.quick,
        rounds=args.rounds,
        steady=not args.fresh_memory,
        device=args.device,
    )
    print(bench.table(rows, peak, args.device))
    print()
    print(bench.summary(rows))
    if args.json:
        bench.write_json(rows, peak, args.json, args.device)
    if args.plot:
        bench.plot(rows, args.plot)
    return 0


def _explain(args: argparse.Namespace) -> int:
    kwargs: dict[str, object] = {}
    if args.op in ("conv", "conv_vjp"):
        kwargs = dict(
            stride=args.stride, padding=args.padding, dilation=args.dilation, groups=args.groups
        )
    else:
        kwargs = {"mode": args.mode}
    if args.backend is not None:
        _check_backend(args.backend)
    with _usage():  # explain computes nothing: whatever it refuses is the arguments' fault
        choice = ops.explain(
            tuple(args.x),
            tuple(args.w),
            op=args.op,
            dtype=args.dtype,
            backend=args.backend,
            **kwargs,
        )
    args_text = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    print(f"{args.op} x{tuple(args.x)} w{tuple(args.w)} {args.dtype} {args_text}")
    print(choice)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from convkit import calibrate, calibration

    infos = {info.name: info for info in ops.list_backends()}
    for name in args.backend or []:
        with _usage():
            checks.registered_backend(name)
        if not infos[name].available:
            raise UsageError(f"--backend {name}: not available here: {infos[name].reason}")

    def progress(key: str) -> None:
        print(f"measuring {key} ...", file=sys.stderr, flush=True)

    models, versions, failures = calibrate.calibrate(
        args.backend, quick=args.quick, progress=progress
    )
    for key, model in models.items():
        rates = ", ".join(f"{k}={v:.3g}" for k, v in vars(model).items() if v is not None)
        print(f"{key:12} {rates}")
    for key, why in failures.items():
        print(f"{key:12} not calibrated: {why}")
    if models and not args.dry_run:
        print(f"stored in {calibration.save(models, versions)}")
    return 1 if failures and not models else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``convkit`` command."""
    import convkit

    parser = argparse.ArgumentParser(
        prog="convkit",
        description="N-dimensional convolution with pluggable backends.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"convkit {convkit.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    common: dict[str, Any] = {
        "epilog": EPILOG,
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }
    p = sub.add_parser(
        "backends", help="list the registered backends and the active choice", **common
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show plugin tracebacks")
    p.set_defaults(func=_backends)

    p = sub.add_parser(
        "filter",
        help="filter an image (PNG/JPEG), an array (.npy/.zarr) or audio file "
        "(WAV/FLAC/OGG) with a named kernel",
        description=textwrap.fill(
            "Filter an image, an (H, W) or (C, H, W) array in a .npy file or Zarr store, or "
            "an audio file with a named kernel. The output is written atomically (a "
            "temporary file, flushed to disk, renamed into place; a symbolic link is written "
            "through) and an existing OUTPUT is refused unless --overwrite is given. With "
            "--backend dask an array streams through in chunks. Kernels: box, gaussian, "
            "sobel_x, sobel_y, laplacian, sharpen (images); lowpass, highpass, bandpass "
            "(audio).",
            78,
        ),
        **common,
    )
    p.add_argument("input", metavar="INPUT", help="image (.png/.jpg), array (.npy/.zarr) or audio")
    p.add_argument("output", metavar="OUTPUT", help="a file of the same kind as INPUT")
    p.add_argument("--kernel", required=True, help="e.g. gaussian:sigma=2 or lowpass:cutoff=1000")
    p.add_argument(
        "--padding-mode",
        default=None,
        metavar="MODE",
        help="border handling of images and arrays: zeros, reflect, symmetric, replicate or "
        "circular (default: reflect); not for audio, which is filtered causally",
    )
    p.add_argument("--backend", default=None, help="backend selection, e.g. scipy or torch:cuda")
    p.add_argument(
        "--scale",
        choices=SCALES,
        default=None,
        help="how an image result is mapped to 8-bit [0, 1]: clip (default: values kept, "
        "those outside [0, 1] clipped; right for blurs and sharpening), minmax (smallest "
        "value to 0, largest to 1; shows a signed result such as sobel_x whole) or abs "
        "(|value|, clipped at 1: edges of either sign bright). The output line says which "
        "scaling was applied and how many pixels were clipped",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace OUTPUT if it exists (even if it is INPUT)"
    )
    p.set_defaults(func=_filter)

    p = sub.add_parser(
        "exercises",
        help="run the chapter's exercises and write a report with numbers and figures",
        **common,
    )
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these exercises")
    p.add_argument(
        "--backend",
        default=None,
        help=f"backend selection (default: {EXERCISES_BACKEND}, whatever convkit.toml or "
        "CONVKIT_BACKEND say; 'auto' picks the fastest per call). The report names the "
        "backend and whether it came from this option or the default",
    )
    p.add_argument("--out", default="out/exercises", help="directory for report.md and figures")
    p.add_argument("--quick", action="store_true", help="smaller data and shorter training")
    p.add_argument(
        "--audio",
        default=None,
        metavar="PATH",
        help="a recording of yours (WAV, FLAC or OGG; the first 20 s) that the audio exercise "
        "also denoises: white noise is added, the first 70%% trains, the rest is held out",
    )
    p.set_defaults(func=_exercises)

    p = sub.add_parser(
        "bench", help="time convkit's backends and methods against the peers", **common
    )
    p.add_argument("--only", nargs="+", metavar="WORKLOAD")
    p.add_argument("--quick", action="store_true", help="smaller workloads")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument(
        "--fresh-memory",
        action="store_true",
        help="leave the allocator as it is (large arrays then cost page faults on each call)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu (NumPy arrays, every backend and peer) or a torch device such as cuda or "
        "cuda:1 (tensors there: the torch backend and auto against torch's functions, "
        "synchronised timing, device memory)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument("--plot", metavar="FILE", help="also draw a PNG chart")
    p.set_defaults(func=_bench)

    p = sub.add_parser(
        "calibrate",
        help="measure this machine's cost models for auto (kept in the user's cache)",
        **common,
    )
    p.add_argument("--backend", nargs="+", metavar="NAME", help="only these backends")
    p.add_argument("--quick", action="store_true", help="smaller problems, less accurate")
    p.add_argument("--dry-run", action="store_true", help="measure and print, store nothing")
    p.set_defaults(func=_calibrate)

    p = sub.add_parser(
        "explain",
        help="what auto picks for a call, and the estimated cost of each alternative",
        **common,
    )
    p.add_argument("--x", type=int, nargs="+", required=True, help="input shape (in1)")
    p.add_argument("--w", type=int, nargs="+", required=True, help="weight shape (in2)")
    p.add_argument("--op", default="conv", choices=("conv", "conv_vjp", "convolve", "correlate"))
    p.add_argument("--mode", default="full", help="convolve/correlate mode")
    p.add_argument("--backend", default=None, help="explain only this backend")
    p.add_argument(
        "--stride", type=_ints("--stride"), default=1, help="an int, or one per dimension: 2,1"
    )
    p.add_argument(
        "--padding",
        type=_padding,
        default=0,
        help="same, valid, an int (3), one int per dimension (1,2), or LOW:HIGH pairs per "
        "dimension (1:2,0:0; mixing is fine: 1,0:2), as conv's padding= takes them "
        "(default: 0)",
    )
    p.add_argument(
        "--dilation", type=_ints("--dilation"), default=1, help="an int, or one per dimension"
    )
    p.add_argument("--groups", type=int, default=1)
    p.add_argument("--dtype", default="float32")
    p.set_defaults(func=_explain)
    return parser


def _padding(text: str) -> int | str | tuple[int | tuple[int, int], ...]:
    """``--padding`` as :func:`convkit.conv` takes it: ``same``/``valid``, an int, one
    int per dimension (``1,2``), or ``LOW:HIGH`` pairs (``1:2,0:0``), mixed as needed.

    >>> _padding("same"), _padding("3"), _padding("1,2"), _padding("1:2,0")
    ('same', 3, (1, 2), ((1, 2), 0))
    """
    value = text.strip()
    if value in ("same", "valid"):
        return value
    expected = (
        "expected same, valid, an int (3), one int per dimension (1,2) or LOW:HIGH pairs (1:2,0:0)"
    )
    entries: list[int | tuple[int, int]] = []
    try:
        for item in value.split(","):
            if ":" in item:
                low, high = item.split(":")
                entries.append((int(low), int(high)))
            else:
                entries.append(int(item))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--padding {text!r}: {expected}") from None
    if "," not in value and isinstance(entries[0], int):
        return entries[0]
    return tuple(entries)


def _ints(option: str) -> Callable[[str], int | tuple[int, ...]]:
    """An argparse type for an int or comma-separated ints per dimension."""

    def parse(text: str) -> int | tuple[int, ...]:
        try:
            values = tuple(int(item) for item in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{option} {text!r}: expected an int (2) or one per dimension (2,1)"
            ) from None
        return values[0] if len(values) == 1 else values

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``convkit`` command; returns its exit status: 0 on success, 1 for a
    runtime failure, 2 for a usage or configuration error (see ``convkit --help``).

    >>> main(["backends"])  # doctest: +ELLIPSIS
    backend ...
    0
    """
    args = build_parser().parse_args(argv)  # usage errors exit with 2 here
    try:
        return int(args.func(args))
    except (UsageError, selection.ConfigError) as exc:
        print(f"convkit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        print(f"convkit: error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print("convkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
