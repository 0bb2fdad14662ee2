"""The ``convkit`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from convkit import api, plugins
from convkit.backend import Backend, BackendInfo


def _backends(args: argparse.Namespace) -> int:
    infos = api.list_backends()
    registry = plugins.host().registry
    rows = [("backend", "available", "from", "dims", "dtypes", "devices")]
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
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for info in infos:
        if not info.available:
            print(f"\n{info.name}: unavailable: {info.reason}")
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
    selection = api.get_backend()
    print(f"\nactive: {selection}")
    if selection.name == "auto":
        print("  auto: each call runs on the backend that owns its input's array type")
    try:
        api.check_selection(selection)
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"  but it cannot be used: {exc}")
        return 1
    return 0


def _devices(backend: Backend | None, info: BackendInfo) -> str:
    """Declared devices, those absent from this machine marked ``(absent)``."""
    declared = info.capabilities.devices
    here = declared
    if backend is not None and info.available:
        try:
            here = backend.devices_here()
        except Exception:  # a broken probe must not break the listing
            here = ()
    return ",".join(d if d in here else f"{d}(absent)" for d in declared)


def _filter(args: argparse.Namespace) -> int:
    from convkit.adapters import arrays, audio, image, kernels

    source, target = Path(args.input), Path(args.output)
    if source.suffix.lower() in arrays.FORMATS:
        if target.exists() and target.resolve() == source.resolve() and not args.overwrite:
            raise ValueError(f"{target} is the input; pass --overwrite to replace it")
        k = kernels.kernel(args.kernel, domain="image")
        shape = arrays.filter_file(
            source, target, k, padding_mode=args.padding_mode, backend=args.backend
        )
        print(f"{source} {shape} -> {target} with {args.kernel} {k.shape}")
        return 0
    kind = "audio" if source.suffix.lower() in audio.FORMATS else "image"
    if kind == "image" and source.suffix.lower() not in image.FORMATS:
        known = sorted(audio.FORMATS) + sorted(image.FORMATS)
        raise ValueError(f"{source}: unsupported file type; use one of {', '.join(known)}")
    out_kind = "audio" if target.suffix.lower() in audio.FORMATS else "image"
    if out_kind != kind:
        raise ValueError(f"{target}: the output must be {kind} like the input {source}")
    if not source.is_file():
        raise ValueError(f"{source}: no such file")
    if target.exists() and target.resolve() == source.resolve() and not args.overwrite:
        raise ValueError(f"{target} is the input file; pass --overwrite to replace it")
    if kind == "image":
        img = image.load(source)
        k = kernels.kernel(args.kernel, domain="image")
        result = image.filter(img, k, padding_mode=args.padding_mode, backend=args.backend)
        image.save(target, result)
        print(f"{source} {img.shape} -> {target} with {args.kernel} {k.shape}")
    else:
        data, rate = audio.load(source)
        taps = kernels.kernel(args.kernel, rate=rate, domain="audio")
        result = audio.fir_filter(data, taps, backend=args.backend)
        audio.save(target, result, rate)
        print(
            f"{source} {data.shape} at {rate} Hz -> {target} with {args.kernel} ({len(taps)} taps)"
        )
    return 0


def _exercises(args: argparse.Namespace) -> int:
    from convkit import exercises

    results = exercises.run_all(args.only, backend=args.backend, out=args.out, quick=args.quick)
    print(exercises.summary(results))
    print(f"\nreport: {Path(args.out) / 'report.md'}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from convkit import bench

    rows, peak = bench.run(
        args.only, quick=args.quick, rounds=args.rounds, steady=not args.fresh_memory
    )
    print(bench.table(rows, peak))
    print()
    print(bench.summary(rows))
    if args.json:
        bench.write_json(rows, peak, args.json)
    if args.plot:
        bench.plot(rows, args.plot)
    return 0


def _explain(args: argparse.Namespace) -> int:
    from convkit import api

    kwargs: dict[str, object] = {}
    if args.op in ("conv", "conv_vjp"):
        kwargs = dict(
            stride=args.stride, padding=args.padding, dilation=args.dilation, groups=args.groups
        )
    else:
        kwargs = {"mode": args.mode}
    choice = api.explain(
        tuple(args.x), tuple(args.w), op=args.op, dtype=args.dtype, backend=args.backend, **kwargs
    )
    args_text = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    print(f"{args.op} x{tuple(args.x)} w{tuple(args.w)} {args.dtype} {args_text}")
    print(choice)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from convkit import calibration

    def progress(key: str) -> None:
        print(f"measuring {key} ...", file=sys.stderr, flush=True)

    models, versions, failures = calibration.calibrate(
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
    parser = argparse.ArgumentParser(
        prog="convkit", description="N-dimensional convolution with pluggable backends."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("backends", help="list the registered backends and the active choice")
    p.add_argument("-v", "--verbose", action="store_true", help="show plugin tracebacks")
    p.set_defaults(func=_backends)

    p = sub.add_parser(
        "filter",
        help="filter an image (PNG/JPEG), an array (.npy/.zarr) or audio file "
        "(WAV/FLAC/OGG) with a named kernel",
        description="Filter an image, an (H, W) or (C, H, W) array in a .npy file or Zarr "
        "store, or an audio file with a named kernel; the output is written atomically. "
        "With --backend dask an array streams through in chunks. Kernels: box, gaussian, sobel_x, sobel_y, laplacian, "
        "sharpen (images); lowpass, highpass, bandpass (audio).",
    )
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--kernel", required=True, help="e.g. gaussian:sigma=2 or lowpass:cutoff=1000")
    p.add_argument("--padding-mode", default="reflect", help="image border handling")
    p.add_argument("--backend", default=None, help="backend selection, e.g. scipy or torch:cuda")
    p.add_argument("--overwrite", action="store_true", help="allow OUTPUT to be INPUT")
    p.set_defaults(func=_filter)

    p = sub.add_parser(
        "exercises",
        help="run the chapter's exercises and write a report with numbers and figures",
    )
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these exercises")
    p.add_argument(
        "--backend",
        default="numpy",
        help="backend selection (default: numpy; 'auto' picks the fastest per call)",
    )
    p.add_argument("--out", default="out/exercises", help="directory for report.md and figures")
    p.add_argument("--quick", action="store_true", help="smaller data and shorter training")
    p.set_defaults(func=_exercises)

    p = sub.add_parser("bench", help="time convkit's backends and methods against the peers")
    p.add_argument("--only", nargs="+", metavar="WORKLOAD")
    p.add_argument("--quick", action="store_true", help="smaller workloads")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument(
        "--fresh-memory",
        action="store_true",
        help="leave the allocator as it is (large arrays then cost page faults on each call)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument("--plot", metavar="FILE", help="also draw a PNG chart")
    p.set_defaults(func=_bench)

    p = sub.add_parser(
        "calibrate",
        help="measure this machine's cost models for auto (kept in the user's cache)",
    )
    p.add_argument("--backend", nargs="+", metavar="NAME", help="only these backends")
    p.add_argument("--quick", action="store_true", help="smaller problems, less accurate")
    p.add_argument("--dry-run", action="store_true", help="measure and print, store nothing")
    p.set_defaults(func=_calibrate)

    p = sub.add_parser(
        "explain", help="what auto picks for a call, and the estimated cost of each alternative"
    )
    p.add_argument("--x", type=int, nargs="+", required=True, help="input shape (in1)")
    p.add_argument("--w", type=int, nargs="+", required=True, help="weight shape (in2)")
    p.add_argument("--op", default="conv", choices=("conv", "conv_vjp", "convolve", "correlate"))
    p.add_argument("--mode", default="full", help="convolve/correlate mode")
    p.add_argument("--backend", default=None, help="explain only this backend")
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--padding", type=int, default=0)
    p.add_argument("--dilation", type=int, default=1)
    p.add_argument("--groups", type=int, default=1)
    p.add_argument("--dtype", default="float32")
    p.set_defaults(func=_explain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``convkit`` command.

    >>> main(["backends"])  # doctest: +ELLIPSIS
    backend ...
    0
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        print(f"convkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
